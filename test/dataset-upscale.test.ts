/**
 * Low-resolution dataset images re-made on the GPU runner with an upscale model (Real-ESRGAN through
 * ComfyUI's upscale-model nodes) instead of the plain resize prepareDataset did, against the fake
 * ComfyUI: with a model, each enlarged file becomes the model's output brought to the planned size;
 * without one, the plain resize stays and the note says so.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readLowresManifest } from '../src/dataset/lowres.ts';
import { prepareDataset } from '../src/dataset/prepare.ts';
import { ComfyClient } from '../src/gpu/comfy-client.ts';
import { upscaleDatasetOnRunner } from '../src/gpu/dataset-upscale.ts';
import { parseObjectInfo } from '../src/gpu/object-info.ts';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';

const silent = pino({ level: 'silent' });
let root: string;
let fake: FakeComfyUI | undefined;
let client: ComfyClient | undefined;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cm-dataset-upscale-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
afterEach(async () => {
  await client?.close();
  await fake?.close();
  client = undefined;
  fake = undefined;
});

let datasets = 0;
/** A prepared dataset: one small picture (enlarged, its original kept) and one already big enough. */
async function preparedDataset() {
  const dir = join(root, `in-${++datasets}`);
  await mkdir(dir);
  await sharp({ create: { width: 128, height: 192, channels: 3, background: '#c04020' } })
    .composite([
      {
        input: Buffer.from(
          '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="30" fill="#203080"/></svg>',
        ),
        left: 20,
        top: 40,
      },
    ])
    .png()
    .toFile(join(dir, 'small.png'));
  await sharp({ create: { width: 300, height: 300, channels: 3, background: '#40c080' } })
    .png()
    .toFile(join(dir, 'big.png'));
  const out = join(root, `ds-${datasets}`);
  const report = await prepareDataset(
    [dir],
    { trigger: 'ohwx', out, minImages: 1, recommendedImages: 1, targetShortSide: 256, maxLongSide: 512 },
    { limits: { minSide: 64 } },
  );
  return { out, report };
}

async function connect(options: Parameters<typeof startFakeComfyUI>[0]) {
  fake = await startFakeComfyUI({
    objectInfoPath: false,
    timing: { stepMs: 0 },
    dataDir: join(root, `comfy-${datasets}`),
    ...options,
  });
  client = new ComfyClient({ baseUrl: fake.url, logger: silent });
  await client.connect();
  return { client, objectInfo: parseObjectInfo(await client.getObjectInfo()) };
}

describe('dataset upscaling on the runner', () => {
  it('prepareDataset keeps the original pixels of an enlarged image next to the dataset, out of the image folder', async () => {
    const { out, report } = await preparedDataset();
    const small = report.accepted.find((a) => a.upscaledFrom);
    expect(small).toMatchObject({
      upscaledFrom: { width: 128, height: 192 },
      width: 256,
      height: 384,
      original: '.lowres/0002.png',
    });
    expect(report.accepted.filter((a) => a.original)).toHaveLength(1);
    const original = await sharp(join(out, small!.original!)).metadata();
    expect([original.width, original.height]).toEqual([128, 192]);
    expect(await readLowresManifest(out)).toEqual([
      {
        file: small!.file,
        original: '.lowres/0002.png',
        originalWidth: 128,
        originalHeight: 192,
        width: 256,
        height: 384,
      },
    ]);
    expect((await readdir(join(out, '10_ohwx'))).sort()).toEqual([
      '0001.png',
      '0001.txt',
      '0002.png',
      '0002.txt',
    ]);
  });

  it('with an upscale model, the enlarged file becomes the model output at the planned size; others are untouched', async () => {
    const { out, report } = await preparedDataset();
    const small = report.accepted.find((a) => a.upscaledFrom)!;
    const big = report.accepted.find((a) => !a.upscaledFrom)!;
    const plain = await readFile(join(out, small.file));
    const bigBefore = await readFile(join(out, big.file));
    const comfy = await connect({ upscaleModels: ['RealESRGAN_x2.pth'] });

    const outcome = await upscaleDatasetOnRunner(out, comfy, { runnerId: 'gpu-1', logger: silent });

    expect(outcome).toMatchObject({ kind: 'model', images: 1, model: 'RealESRGAN_x2.pth' });
    expect(outcome.note).toMatch(/1 low-resolution image upscaled with RealESRGAN_x2\.pth/);
    // The fake's model output (×2 of the 128×192 original) is the file ComfyUI saved for the prompt.
    const outputs = (await readdir(join(root, `comfy-${datasets}`, 'output'), { recursive: true })).filter(
      (f) => f.endsWith('.png'),
    );
    expect(outputs).toHaveLength(1);
    const modelOutput = await readFile(join(root, `comfy-${datasets}`, 'output', outputs[0]!));
    expect(await sharp(modelOutput).metadata()).toMatchObject({ width: 256, height: 384 });
    const expected = await sharp(modelOutput)
      .resize(256, 384, { fit: 'fill', kernel: 'lanczos3' })
      .flatten({ background: '#ffffff' })
      .raw()
      .toBuffer();
    const now = await readFile(join(out, small.file));
    expect(now.equals(plain)).toBe(false);
    expect(await sharp(now).metadata()).toMatchObject({ format: 'png', width: 256, height: 384 });
    expect((await sharp(now).raw().toBuffer()).equals(expected)).toBe(true);
    expect((await readFile(join(out, big.file))).equals(bigBefore)).toBe(true);
  });

  it('without an upscale model (or without ComfyUI) the plain resize is kept and the note says why', async () => {
    const { out, report } = await preparedDataset();
    const small = report.accepted.find((a) => a.upscaledFrom)!;
    const plain = await readFile(join(out, small.file));
    const comfy = await connect({ upscaleModels: [] });

    const outcome = await upscaleDatasetOnRunner(out, comfy, { runnerId: 'gpu-1', logger: silent });
    expect(outcome.kind).toBe('resized');
    expect(outcome.note).toMatch(
      /1 low-resolution image kept their plain resize: the GPU runner has no upscale model/,
    );
    expect((await readFile(join(out, small.file))).equals(plain)).toBe(true);

    const noComfy = await upscaleDatasetOnRunner(out, null, { runnerId: 'gpu-1', logger: silent });
    expect(noComfy).toMatchObject({ kind: 'resized', note: expect.stringMatching(/no ComfyUI/) });
  });

  it('a dataset without enlarged images needs nothing', async () => {
    const dir = join(root, 'plain');
    await mkdir(dir);
    await writeFile(join(dir, 'a.txt'), 'not a dataset of small images');
    expect(await upscaleDatasetOnRunner(dir, null, { runnerId: 'gpu-1', logger: silent })).toEqual({
      kind: 'none',
      images: 0,
    });
  });
});
