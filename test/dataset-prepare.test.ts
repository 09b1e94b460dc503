import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sentenceCaption, tagCaption, DEFAULT_STYLE_WORDS } from '../src/dataset/captions.ts';
import { prepareDataset } from '../src/dataset/prepare.ts';
import { formatReport } from '../src/dataset/report.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { makePicture } from './fixtures/dataset/build.ts';

let root: string;
/** A folder of 22 distinct pictures, 320×384 (upscaled on preparation). */
let picturesDir: string;
const FAKE_SD_SCRIPTS = join(import.meta.dirname, 'fakes', 'wd14-tagger');

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cm-dataset-prepare-'));
  picturesDir = join(root, 'pictures');
  await mkdir(picturesDir);
  for (let i = 0; i < 22; i++) {
    await writeFile(
      join(picturesDir, `p${String(i).padStart(2, '0')}.${i % 2 ? 'jpg' : 'png'}`),
      await makePicture(2000 + i, 320, 384, i % 2 ? 'jpeg' : 'png'),
    );
  }
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
/** A copy of the fake sd-scripts checkout in the temp root, with or without the tagger's model folder. */
async function fakeSdScripts(name: string, withModel: boolean): Promise<string> {
  const sdScripts = join(root, name);
  await mkdir(join(sdScripts, 'finetune'), { recursive: true });
  await writeFile(
    join(sdScripts, 'finetune', 'tag_images_by_wd14_tagger.py'),
    await readFile(join(FAKE_SD_SCRIPTS, 'finetune', 'tag_images_by_wd14_tagger.py')),
  );
  if (withModel) {
    const model = join(sdScripts, 'wd14_tagger_model', 'SmilingWolf_wd-v1-4-convnext-tagger-v2');
    await mkdir(model, { recursive: true });
    await writeFile(join(model, 'model.onnx'), 'fake');
    await writeFile(join(model, 'selected_tags.csv'), 'tag_id,name,category,count\n');
  }
  return sdScripts;
}

function freshOut(): string {
  return join(root, `out-${++counter}`);
}

async function sizeOf(path: string): Promise<[number, number]> {
  const { width, height, format } = await sharp(path).metadata();
  expect(format).toBe('png');
  return [width, height];
}

describe('preparation', () => {
  it('writes <repeats>_<trigger>/NNNN.png with a caption each, upscaling small images with a warning', async () => {
    const out = freshOut();
    const report = await prepareDataset([picturesDir], {
      trigger: 'ohwx',
      out,
      repeats: 8,
      captionExtension: '.caption',
    });

    expect(report.status).toBe('prepared');
    expect(report.imageFolder).toBe('8_ohwx');
    const files = (await readdir(join(out, '8_ohwx'))).sort();
    expect(files).toHaveLength(44);
    expect(files.slice(0, 4)).toEqual(['0001.caption', '0001.png', '0002.caption', '0002.png']);
    // 320×384 → short side 1024, aspect kept (not cropped to a square).
    expect(await sizeOf(join(out, '8_ohwx', '0001.png'))).toEqual([1024, 1229]);
    expect(await readFile(join(out, '8_ohwx', '0001.caption'), 'utf8')).toBe('ohwx\n');
    expect(
      report.warnings.some((w) => /22 images under 1024 px on the short side were upscaled/.test(w)),
    ).toBe(true);
    expect(report.warnings.some((w) => /Only 22 images: .* 50 or more/.test(w))).toBe(true);
    expect(report.accepted[0]).toMatchObject({
      file: '8_ohwx/0001.png',
      width: 1024,
      height: 1229,
      upscaledFrom: { width: 320, height: 384 },
    });
    expect(formatReport(report)).toMatch(/Prepared 22 images for the style "ohwx"/);
  });

  it('applies EXIF orientation, brings large images down to the target, caps the long side, converts to PNG', async () => {
    const dir = join(root, 'orient');
    await mkdir(dir);
    // Stored landscape 1500×1200 with orientation 6: it is a portrait once turned.
    await writeFile(join(dir, 'a-rotated.jpg'), await makePicture(1, 1500, 1200, 'jpeg', { orientation: 6 }));
    await writeFile(join(dir, 'b-large.webp'), await makePicture(2, 3000, 1500, 'webp'));
    const out = freshOut();
    const report = await prepareDataset([dir], { trigger: 'ohwx', out, minImages: 2 });

    expect(report.status).toBe('prepared');
    expect(await sizeOf(join(out, '10_ohwx', '0001.png'))).toEqual([1024, 1280]);
    expect(await sizeOf(join(out, '10_ohwx', '0002.png'))).toEqual([2048, 1024]);
    expect(report.warnings.some((w) => /upscaled/.test(w))).toBe(false);
  });

  it('refuses small images instead of upscaling them with --min-side-policy refuse', async () => {
    const out = freshOut();
    const report = await prepareDataset([picturesDir], { trigger: 'ohwx', out, minSidePolicy: 'refuse' });
    expect(report.status).toBe('refused');
    expect(report.refused).toHaveLength(22);
    expect(report.refused[0]?.reason).toBe(
      '320×384 is under 1024 px on the short side (the setting refuses small images)',
    );
    expect(await readdir(out)).toEqual([]);
  });

  it('removes duplicates and near-duplicates, keeping the larger picture', async () => {
    const dir = join(root, 'dups');
    await mkdir(dir);
    const original = await makePicture(2000, 320, 384, 'png'); // the same picture as p00.png
    await writeFile(join(dir, 'big.png'), await sharp(original).resize(1000, 1200).png().toBuffer());
    await writeFile(
      join(dir, 'small-recompressed.jpg'),
      await sharp(original).resize(200, 240).jpeg({ quality: 60 }).toBuffer(),
    );
    const out = freshOut();
    const report = await prepareDataset(
      [picturesDir, dir],
      { trigger: 'ohwx', out, minSidePolicy: 'upscale' },
      { limits: { minSide: 128 } },
    );

    const duplicates = report.refused.filter((r) => r.code === 'duplicate');
    expect(duplicates.map((d) => d.source.split('/').pop()).sort()).toEqual([
      'p00.png',
      'small-recompressed.jpg',
    ]);
    expect(duplicates[0]?.reason).toMatch(
      /duplicate or near-duplicate of .*big\.png \(the larger one was kept\)/,
    );
    expect(report.counts.duplicates).toBe(2);
    expect(report.accepted).toHaveLength(22);
    expect(report.accepted.some((a) => a.source.endsWith('big.png'))).toBe(true);
  });

  it('refuses fewer than 20 images and says how many more are needed, writing nothing', async () => {
    const files = (await readdir(picturesDir)).slice(0, 12).map((f) => join(picturesDir, f));
    const out = freshOut();
    const report = await prepareDataset(files, { trigger: 'ohwx', out });
    expect(report.status).toBe('refused');
    expect(report.message).toBe(
      'Refused: only 12 usable images, and a style needs at least 20. Add 8 more (50 or more is better).',
    );
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses a non-empty output folder and a trigger that is not one word', async () => {
    const out = freshOut();
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    await expect(prepareDataset([picturesDir], { trigger: 'ohwx', out })).rejects.toMatchObject({
      userMessage: expect.stringMatching(/is not empty/),
    });
    await expect(
      prepareDataset([picturesDir], { trigger: 'two words', out: freshOut() }),
    ).rejects.toMatchObject({
      userMessage: expect.stringMatching(/trigger must be one word/),
    });
    expect(await readFile(join(out, 'keep.txt'), 'utf8')).toBe('mine');
  });
});

describe('captions', () => {
  it('puts the trigger first and drops style tags from tag captions', () => {
    expect(
      tagCaption(
        'ohwx',
        ['1girl', 'monochrome', 'greyscale', 'short_hair', 'comic', 'lineart', 'ohwx', 'traditional media'],
        DEFAULT_STYLE_WORDS,
      ),
    ).toBe('ohwx, 1girl, short hair');
  });

  it('removes style phrases from sentences and keeps the rest readable', () => {
    expect(
      sentenceCaption(
        'ohwx',
        'An anime style illustration of a girl with short hair, in monochrome, smiling at a cat.',
        DEFAULT_STYLE_WORDS,
      ),
    ).toBe('ohwx, A picture of a girl with short hair, smiling at a cat.');
    expect(
      sentenceCaption(
        'ohwx',
        'A black and white sketch of two robots, drawn in ink and screentone.',
        DEFAULT_STYLE_WORDS,
      ),
    ).toBe('ohwx, A picture of two robots.');
    expect(sentenceCaption('ohwx', 'Anime.', DEFAULT_STYLE_WORDS)).toBe('ohwx');
    expect(sentenceCaption('ohwx', 'ohwx, a knight on a horse. Manga sketch.', DEFAULT_STYLE_WORDS)).toBe(
      'ohwx, a knight on a horse.',
    );
  });

  it('wd14: runs the tagger script offline with an argument array, then trigger first and style tags gone', async () => {
    const out = freshOut();
    const python = process.env.TRAINER_PYTHON ?? 'python3';

    // Without the model folder the tagger would download; we refuse first and say what to install.
    const bare = await fakeSdScripts('sd-scripts-bare', false);
    await expect(
      prepareDataset(
        [picturesDir],
        { trigger: 'ohwx', out, captions: 'wd14' },
        { wd14: { sdScriptsDir: bare, python } },
      ),
    ).rejects.toMatchObject({
      userMessage: expect.stringMatching(
        /WD14 tagger model is not installed: .*SmilingWolf_wd-v1-4-convnext-tagger-v2\/model\.onnx is missing/,
      ),
    });

    const wd14 = { sdScriptsDir: await fakeSdScripts('sd-scripts', true), python };
    const out2 = freshOut();
    const report = await prepareDataset(
      [picturesDir],
      { trigger: 'ohwx', out: out2, captions: 'wd14', captionExtension: '.caption' },
      { wd14 },
    );

    expect(report.status).toBe('prepared');
    const folder = join(out2, '10_ohwx');
    const names = await readdir(folder);
    expect(names.filter((n) => n.endsWith('.caption'))).toHaveLength(22);
    expect(names.filter((n) => n.endsWith('.txt'))).toEqual([]);
    const caption = await readFile(join(folder, '0005.caption'), 'utf8');
    expect(caption).toBe('ohwx, 1girl, solo, short hair, smile, looking at viewer\n');
    expect(report.accepted.every((a) => a.caption.startsWith('ohwx, '))).toBe(true);
  });

  it('wd14: a crashing tagger is reported as a failure', async () => {
    const sdScripts = await fakeSdScripts('sd-scripts-crash', true);
    const previous = process.env.FAKE_TAGGER_FAIL;
    process.env.FAKE_TAGGER_FAIL = '1';
    try {
      await expect(
        prepareDataset(
          [picturesDir],
          { trigger: 'ohwx', out: freshOut(), captions: 'wd14' },
          { wd14: { sdScriptsDir: sdScripts, python: 'python3' } },
        ),
      ).rejects.toMatchObject({ userMessage: 'The WD14 tagger failed (exit code 1).' });
    } finally {
      if (previous === undefined) delete process.env.FAKE_TAGGER_FAIL;
      else process.env.FAKE_TAGGER_FAIL = previous;
    }
  });

  it('llm: sends each image as a data URL to a vision model and cleans its answer', async () => {
    const fake = await startFakeOpenAI({
      apiKey: 'sk-test-caption',
      fallback: {
        kind: 'text',
        content: 'A monochrome manga illustration of a boy running through rain, lineart.',
      },
    });
    try {
      const out = freshOut();
      const report = await prepareDataset(
        [picturesDir],
        { trigger: 'zkstyle', out, captions: 'llm' },
        { llm: { baseURL: fake.url, apiKey: 'sk-test-caption', model: 'test-model', timeoutMs: 10_000 } },
      );
      expect(report.status).toBe('prepared');
      expect(await readFile(join(out, '10_zkstyle', '0001.txt'), 'utf8')).toBe(
        'zkstyle, A picture of a boy running through rain.\n',
      );
      const requests = fake.completions();
      expect(requests).toHaveLength(22);
      const content = requests[0]?.messages[0]?.content as { type: string; image_url?: { url: string } }[];
      const image = content.find((p) => p.type === 'image_url');
      expect(image?.image_url?.url).toMatch(/^data:image\/jpeg;base64,\/9j\//);
      const sent = Buffer.from(image!.image_url!.url.split(',')[1]!, 'base64');
      const { width, height } = await sharp(sent).metadata();
      expect(Math.max(width, height)).toBe(768);
    } finally {
      await fake.close();
    }
  });
});
