import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareDataset } from '../src/dataset/prepare.ts';
import type { DatasetReport } from '../src/dataset/report.ts';
import { buildZip, listTree, makePicture, pixelBombPng } from './fixtures/dataset/build.ts';

// Hostile inputs: each is refused with a reason a person understands, and nothing lands outside the
// dataset folder. Every test works in its own temporary root; the dataset folder is <root>/out.

let root: string;
let good: Buffer[];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cm-dataset-hostile-'));
  good = await Promise.all(
    Array.from({ length: 21 }, (_, i) => makePicture(1000 + i, 320, 384, i % 2 ? 'jpeg' : 'png')),
  );
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function workspace(name: string): Promise<{ dir: string; out: string }> {
  const dir = join(root, name);
  await mkdir(dir);
  return { dir, out: join(dir, 'out') };
}

async function truncated(image: Promise<Buffer>): Promise<Buffer> {
  const bytes = await image;
  return bytes.subarray(0, Math.floor(bytes.length * 0.6));
}

function reasonFor(report: DatasetReport, sourceEnd: string): string | undefined {
  return report.refused.find((r) => r.source.endsWith(sourceEnd))?.reason;
}

/** Everything in `dir` that is not inside `out` and was not there before. */
function writtenOutside(dir: string, before: string[]): string[] {
  return listTree(dir).filter((f) => !f.startsWith('out/') && !before.includes(f));
}

describe('zip archives', () => {
  it('refuses entries whose names escape the folder (zip slip) and writes nothing outside it', async () => {
    const { dir, out } = await workspace('slip');
    const zip = buildZip([
      { name: '../evil.png', data: good[0]! },
      { name: '/abs.png', data: good[1]! },
      { name: 'C:\\x.png', data: good[2]! },
      { name: 'pics/..\\..\\win.png', data: good[3]! },
      { name: 'pics/ok/../../../deep.png', data: good[4]! },
      ...good.slice(5).map((data, i) => ({ name: `pics/${i}.png`, data })),
      ...good.slice(0, 5).map((data, i) => ({ name: `more/${i}.png`, data })),
    ]);
    const zipPath = join(dir, 'upload.zip');
    await writeFile(zipPath, zip);
    const before = listTree(dir);

    const report = await prepareDataset([zipPath], { trigger: 'ohwx', out });

    expect(reasonFor(report, ':../evil.png')).toMatch(/unsafe path.*"\.\."/);
    expect(reasonFor(report, ':/abs.png')).toMatch(/unsafe path.*absolute/);
    expect(reasonFor(report, ':C:\\x.png')).toMatch(/unsafe path.*drive letter/);
    expect(reasonFor(report, 'win.png')).toMatch(/unsafe path.*backslash/);
    expect(reasonFor(report, 'deep.png')).toMatch(/unsafe path/);
    expect(report.status).toBe('prepared');
    expect(report.accepted).toHaveLength(21);
    expect(writtenOutside(dir, before)).toEqual([]);
    expect(existsSync(join(root, 'evil.png'))).toBe(false);
    expect(existsSync('/abs.png')).toBe(false);
    // Inside out/ there is only the kohya folder (numbered PNGs and their captions) and the originals
    // of the enlarged images (.lowres/NNNN.png and its manifest).
    const files = await readdir(join(out, '10_ohwx'));
    expect(files.every((f) => /^\d{4}\.(png|txt)$/.test(f))).toBe(true);
    expect((await readdir(out)).sort()).toEqual(['.lowres', '10_ohwx']);
    expect((await readdir(join(out, '.lowres'))).every((f) => /^(\d{4}\.png|manifest\.json)$/.test(f))).toBe(
      true,
    );
  });

  it('refuses a bomb by the bytes it really inflates to, even when its header lies', async () => {
    const { dir, out } = await workspace('bomb');
    const zeros = Buffer.alloc(60 * 1024 * 1024); // 60 MB of zeros deflate to ~60 KB
    const zip = buildZip([
      { name: 'bomb.png', data: zeros },
      { name: 'liar.png', data: zeros, declaredSize: 1234 },
      { name: 'fine.png', data: good[0]! },
    ]);
    const zipPath = join(dir, 'bomb.zip');
    await writeFile(zipPath, zip);
    expect(zip.length).toBeLessThan(1024 * 1024);
    const before = listTree(dir);

    // With the default limits the ratio (1000:1) gives it away after the first few MB.
    const report = await prepareDataset([zipPath], { trigger: 'ohwx', out });
    expect(reasonFor(report, ':bomb.png')).toMatch(/compresses more than 100:1 .*archive bombs/);
    expect(reasonFor(report, ':liar.png')).toMatch(/compresses more than 100:1/);
    expect(report.refused.find((r) => r.source.endsWith(':bomb.png'))?.code).toBe('zip_bomb');
    expect(report.refused.some((r) => r.source.endsWith(':fine.png'))).toBe(false);
    expect(report.status).toBe('refused');
    expect(writtenOutside(dir, before)).toEqual([]);

    // Without a ratio limit, the per-file limit counts the inflated bytes; the liar's 1234 is ignored.
    const noRatio = await prepareDataset(
      [zipPath],
      { trigger: 'ohwx', out: join(dir, 'out2') },
      {
        limits: {
          zip: {
            maxEntries: 2000,
            maxEntryBytes: 50 * 1024 * 1024,
            maxTotalBytes: 2 ** 31,
            maxRatio: 1e9,
            ratioFloorBytes: 1 << 20,
          },
        },
      },
    );
    expect(reasonFor(noRatio, ':bomb.png')).toBe(
      'inflates to more than the 50 MB per-file limit (archive bomb?)',
    );
    expect(reasonFor(noRatio, ':liar.png')).toBe(
      'inflates to more than the 50 MB per-file limit (archive bomb?)',
    );
    expect(writtenOutside(dir, before).filter((f) => !f.startsWith('out2/'))).toEqual([]);
  });

  it('stops reading an archive whose entries together inflate past the total limit', async () => {
    const { dir, out } = await workspace('total');
    // Incompressible data, so only the total budget can stop it.
    const chunk = await sharp({
      create: {
        width: 1024,
        height: 1024,
        channels: 3,
        background: '#000',
        noise: { type: 'gaussian', mean: 128, sigma: 60 },
      },
    })
      .raw()
      .toBuffer();
    const zipPath = join(dir, 'big.zip');
    await writeFile(
      zipPath,
      buildZip(
        Array.from({ length: 6 }, (_, i) => ({ name: `part${i}.bin`, data: chunk, method: 0 as const })),
      ),
    );

    const report = await prepareDataset(
      [zipPath],
      { trigger: 'ohwx', out },
      {
        limits: {
          zip: {
            maxEntries: 2000,
            maxEntryBytes: 50e6,
            maxTotalBytes: 8 * 1024 * 1024,
            maxRatio: 100,
            ratioFloorBytes: 1 << 20,
          },
        },
      },
    );

    expect(report.refused.find((r) => r.source === zipPath)?.reason).toMatch(
      /remaining entries were not read/,
    );
    // Two 3 MB entries fit; the third breaks the 8 MB budget, and the rest are never looked at.
    expect(
      report.refused
        .filter((r) => r.source.startsWith(`${zipPath}:`))
        .map((r) => r.source.slice(zipPath.length + 1)),
    ).toEqual(['part0.bin', 'part1.bin', 'part2.bin']);
  });

  it('refuses an archive with too many entries before inflating any of them', async () => {
    const { dir, out } = await workspace('entries');
    const zipPath = join(dir, 'many.zip');
    await writeFile(
      zipPath,
      buildZip(Array.from({ length: 2001 }, (_, i) => ({ name: `${i}.png`, data: Buffer.from('x') }))),
    );

    const report = await prepareDataset([zipPath], { trigger: 'ohwx', out });

    expect(report.refused).toEqual([
      {
        source: zipPath,
        code: 'zip_too_many_entries',
        reason: '2001 entries is over the 2000-entry limit for an archive',
      },
    ]);
    expect(report.counts.lookedAt).toBe(0);
    expect(report.message).toMatch(/Add 20 more/);
  });

  it('refuses a damaged archive and a damaged entry with a reason', async () => {
    const { dir, out } = await workspace('damaged');
    const whole = buildZip([{ name: 'a.png', data: good[0]! }]);
    await writeFile(join(dir, 'cut.zip'), whole.subarray(0, whole.length - 30));
    const flipped = Buffer.from(whole);
    flipped[60] = (flipped[60] ?? 0) ^ 0xff; // inside the deflated data
    await writeFile(join(dir, 'flipped.zip'), flipped);

    const report = await prepareDataset([join(dir, 'cut.zip'), join(dir, 'flipped.zip')], {
      trigger: 'ohwx',
      out,
    });

    expect(reasonFor(report, 'cut.zip')).toMatch(/not a readable zip archive/);
    expect(reasonFor(report, 'flipped.zip:a.png')).toMatch(/damaged|checksum|says/);
  });
});

describe('hostile image files', () => {
  it('refuses a pixel bomb, a truncated JPEG, text named .png and other formats, each with its reason', async () => {
    const { dir, out } = await workspace('files');
    const files: Record<string, Buffer> = {
      'huge.png': pixelBombPng(40000, 40000),
      'broken.jpg': await truncated(makePicture(7, 1200, 900, 'jpeg')),
      'photo.png': Buffer.from('this is a shopping list, not a photo\n'),
      'anim.gif': Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'),
      'empty.jpg': Buffer.alloc(0),
      'tiny.png': await makePicture(8, 64, 64),
      'noise.webp': Buffer.from([0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0x00, 0x00]),
    };
    const paths = [];
    for (const [name, data] of Object.entries(files)) {
      await writeFile(join(dir, name), data);
      paths.push(join(dir, name));
    }
    const before = listTree(dir);

    const report = await prepareDataset(paths, { trigger: 'ohwx', out });

    expect(reasonFor(report, 'huge.png')).toBe('40000×40000 pixels is over the 50 MP limit');
    expect(reasonFor(report, 'broken.jpg')).toBe('truncated or corrupt JPEG');
    expect(reasonFor(report, 'photo.png')).toBe('not an image (text)');
    expect(reasonFor(report, 'anim.gif')).toBe('a GIF; only JPEG, PNG and WebP are accepted');
    expect(reasonFor(report, 'empty.jpg')).toBe('not an image (empty file)');
    expect(reasonFor(report, 'tiny.png')).toMatch(/64×64 is too small to train on/);
    expect(reasonFor(report, 'noise.webp')).toBe('not an image (unrecognised data)');
    expect(report.status).toBe('refused');
    expect(report.message).toMatch(/only 0 usable images.*Add 20 more/);
    expect(writtenOutside(dir, before)).toEqual([]);
  });

  it('refuses a file over the size limit without reading it', async () => {
    const { dir, out } = await workspace('size');
    await writeFile(join(dir, 'big.png'), Buffer.concat([good[0]!, Buffer.alloc(2 * 1024 * 1024)]));
    const report = await prepareDataset(
      [join(dir, 'big.png')],
      { trigger: 'ohwx', out },
      { limits: { maxFileBytes: 1024 * 1024 } },
    );
    expect(reasonFor(report, 'big.png')).toMatch(/^2(\.\d)? MB is over the 1 MB per-file limit$/);
  });

  it('2 000 tiny files: looks at 2 000, accepts at most 300, and says why for the rest', async () => {
    const { dir, out } = await workspace('flood');
    const folder = join(dir, 'flood');
    await mkdir(folder);
    const tiny = await makePicture(9, 300, 300);
    for (let i = 0; i < 2001; i++) await writeFile(join(folder, `${String(i).padStart(4, '0')}.png`), tiny);
    const before = listTree(dir);

    // At their own size (no upscaling) so the test spends its time on the limits, not on resizing.
    const report = await prepareDataset([folder], { trigger: 'ohwx', out, targetShortSide: 300 });

    expect(report.counts.lookedAt).toBe(2000);
    expect(report.refused.filter((r) => r.code === 'over_count_limit')).toHaveLength(1700);
    expect(reasonFor(report, '1999.png')).toBe('over the 300-image limit for one dataset (not read)');
    expect(report.refused.find((r) => r.code === 'over_entry_limit')?.reason).toBe(
      'stopped after looking at 2000 files; the rest were not read',
    );
    // The 300 accepted are the same picture: one is kept, and one image is not a dataset.
    expect(report.refused.filter((r) => r.code === 'duplicate')).toHaveLength(299);
    expect(report.message).toMatch(/only 1 usable image, and a style needs at least 20\. Add 19 more/);
    expect(writtenOutside(dir, before)).toEqual([]);
  });
});
