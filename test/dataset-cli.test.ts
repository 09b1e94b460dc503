import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildZip, listTree, makePicture } from './fixtures/dataset/build.ts';

// `comicmaster dataset prepare` as a person runs it: the real bin script in a child process.

const BIN = join(import.meta.dirname, '..', 'bin', 'comicmaster.js');
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cm-dataset-cli-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'silent' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('comicmaster dataset prepare', () => {
  it('prepares a zip, prints the JSON report, and writes only inside --out', async () => {
    const pictures = await Promise.all(
      Array.from({ length: 20 }, (_, i) => makePicture(3000 + i, 300, 300, 'jpeg')),
    );
    await writeFile(
      join(root, 'upload.zip'),
      buildZip([
        { name: '../escape.png', data: pictures[0]! },
        { name: 'readme.png', data: Buffer.from('hello') },
        ...pictures.map((data, i) => ({ name: `art/${i}.jpg`, data })),
      ]),
    );
    const before = listTree(root);

    const { code, stdout } = await run([
      'dataset',
      'prepare',
      'upload.zip',
      '--trigger',
      'zkart',
      '--out',
      'ds',
      '--json',
      '--caption-extension',
      '.caption',
    ]);

    expect(code).toBe(0);
    const report = JSON.parse(stdout) as {
      status: string;
      refused: { source: string; reason: string }[];
      accepted: unknown[];
      captionExtension: string;
    };
    expect(report.status).toBe('prepared');
    expect(report.accepted).toHaveLength(20);
    expect(report.captionExtension).toBe('.caption');
    expect(report.refused).toEqual([
      {
        source: 'upload.zip:../escape.png',
        code: 'zip_unsafe_path',
        reason: 'refused: an unsafe path in the archive (a ".." that points outside the folder)',
      },
      { source: 'upload.zip:readme.png', code: 'not_image', reason: 'not an image (text)' },
    ]);
    expect(listTree(root).filter((f) => !before.includes(f) && !f.startsWith('ds/'))).toEqual([]);
    expect((await readdir(join(root, 'ds', '10_zkart'))).length).toBe(40);
  });

  it('exits non-zero with the reason when there are too few images', async () => {
    await writeFile(join(root, 'one.png'), await makePicture(1, 300, 300));
    const { code, stdout } = await run([
      'dataset',
      'prepare',
      'one.png',
      '--trigger',
      'zkart',
      '--out',
      'few',
    ]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^Refused: only 1 usable image, and a style needs at least 20\. Add 19 more/);
  });
});
