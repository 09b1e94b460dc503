import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/env.ts';
import { ComicManifest } from '../src/comic/manifest.ts';
import { describeModels, localModelHasher, rebuildComic } from '../src/comic/rebuild.ts';
import { runLocalComic } from '../src/comic/run-comic.ts';
import { StoryboardRenderer } from '../src/gpu/storyboard-renderer.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'comicmaster-rebuild-'));
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(dir, { recursive: true, force: true });
});
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

const config = parseConfig({ DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'silent' });
let comicDir = '';
let manifest: ComicManifest;

function writeManifestCopy(name: string, change: (m: ComicManifest) => ComicManifest): string {
  // The copy sits in the comic folder so its page and panel paths still resolve.
  const file = join(comicDir, name);
  writeFileSync(file, JSON.stringify(change(structuredClone(manifest)), null, 2));
  return file;
}

beforeAll(async () => {
  const result = await runLocalComic(
    {
      story: 'A robot learns to paint in a flooded city',
      pages: 2,
      panelsPerPage: 2,
      rtl: true,
      out: join(dir, 'comic'),
    },
    { config, renderer: new StoryboardRenderer() },
  );
  comicDir = result.outDir;
  manifest = ComicManifest.parse(JSON.parse(readFileSync(result.manifestFile, 'utf8')));
}, 120_000);

describe('rebuild from the manifest', () => {
  it('re-makes a storyboard comic byte for byte, every panel and every page', async () => {
    const outDir = join(dir, 'rebuilt');
    const report = await rebuildComic(join(comicDir, 'manifest.json'), {
      renderer: new StoryboardRenderer(),
      outDir,
    });
    expect(report.deterministic).toBe(true);
    expect(report.panels).toHaveLength(4);
    expect(report.pages).toHaveLength(2);
    expect(report.identical).toBe(true);
    expect(report.failed).toBe(false);
    expect(report.warnings).toEqual([]);

    // The files themselves, not only the report: the same bytes as the originals.
    for (const page of manifest.pages) {
      for (const panel of page.panels) {
        expect(
          readFileSync(join(outDir, panel.imageFile)).equals(readFileSync(join(comicDir, panel.imageFile))),
        ).toBe(true);
      }
      expect(readFileSync(join(outDir, page.file)).equals(readFileSync(join(comicDir, page.file)))).toBe(
        true,
      );
    }
    // The rebuild is itself a comic folder with a valid manifest.
    const rebuilt = ComicManifest.parse(JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')));
    expect(rebuilt.pages.map((p) => p.sha256)).toEqual(manifest.pages.map((p) => p.sha256));
  });

  it('records no model files for a storyboard comic', () => {
    expect(manifest.models).toEqual({ files: [], note: 'storyboard sketches use no model files' });
  });

  it('reports a deterministic rebuild that produced other bytes as failed', async () => {
    const tampered = writeManifestCopy('manifest-tampered.json', (m) => {
      m.pages[1]!.sha256 = '0'.repeat(64);
      return m;
    });
    const report = await rebuildComic(tampered, {
      renderer: new StoryboardRenderer(),
      outDir: join(dir, 'rebuilt-tampered'),
    });
    expect(report.identical).toBe(false);
    expect(report.failed).toBe(true);
    expect(report.pages.find((p) => p.page === 2)!.match).toBe(false);
    expect(report.panels.every((p) => p.match)).toBe(true);
  });

  it('warns when a model file differs from the one the comic was made with', async () => {
    const checkpoint = manifest.pages[0]!.panels[0]!.recipe.models;
    if (checkpoint.kind !== 'checkpoint') throw new Error('expected an SDXL recipe');
    const modelsDir = join(dir, 'models');
    mkdirSync(join(modelsDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(modelsDir, 'checkpoints', checkpoint.checkpoint), 'the weights on this box');
    const hereHash = sha256('the weights on this box');
    const recordModels = (hash: string) => (m: ComicManifest) => ({
      ...m,
      models: {
        files: [{ role: 'checkpoint' as const, file: checkpoint.checkpoint, sha256: hash, note: null }],
        note: null,
      },
    });

    const changed = writeManifestCopy(
      'manifest-changed-model.json',
      recordModels(sha256('the weights it was made with')),
    );
    const modelHashes = localModelHasher({ modelsDir });
    const report = await rebuildComic(changed, {
      renderer: new StoryboardRenderer(),
      outDir: join(dir, 'rebuilt-model'),
      modelHashes,
    });
    expect(report.warnings).toHaveLength(1);
    expect(report.warnings[0]).toContain(`model ${checkpoint.checkpoint}`);
    expect(report.warnings[0]).toContain(
      'differs from the one the comic was made with: pixels will not match',
    );

    const same = writeManifestCopy('manifest-same-model.json', recordModels(hereHash));
    const sameReport = await rebuildComic(same, {
      renderer: new StoryboardRenderer(),
      outDir: join(dir, 'rebuilt-same'),
      modelHashes,
    });
    expect(sameReport.warnings).toEqual([]);
  });

  it('records model file hashes for ComfyUI renders from the models folder, and says why one is missing', async () => {
    const recipes = manifest.pages.flatMap((p) => p.panels.map((q) => q.recipe));
    const checkpoint = recipes[0]!.models;
    if (checkpoint.kind !== 'checkpoint') throw new Error('expected an SDXL recipe');
    const modelsDir = join(dir, 'models-comfy');
    mkdirSync(join(modelsDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(modelsDir, 'checkpoints', checkpoint.checkpoint), 'checkpoint bytes');

    const found = await describeModels('comfyui', recipes, localModelHasher({ modelsDir }));
    expect(found.files).toEqual([
      { role: 'checkpoint', file: checkpoint.checkpoint, sha256: sha256('checkpoint bytes'), note: null },
    ]);

    const missing = await describeModels(
      'comfyui',
      recipes,
      localModelHasher({ modelsDir: join(dir, 'empty') }),
    );
    expect(missing.files[0]!.sha256).toBeNull();
    expect(missing.files[0]!.note).toContain('was not found');

    const unknown = await describeModels('comfyui', recipes);
    expect(unknown.files[0]!.sha256).toBeNull();
    expect(unknown.files[0]!.note).toContain('ComfyUI does not report model file hashes');
  });
});

describe('comicmaster rebuild', () => {
  const cli = resolve('bin/comicmaster.js');
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: join(dir, 'data'),
    LOG_LEVEL: 'silent',
  };

  it('prints the comparison and exits 0 when every image is identical', async () => {
    const outDir = join(dir, 'cli-rebuilt');
    const { stdout } = await run(
      process.execPath,
      [cli, 'rebuild', join(comicDir, 'manifest.json'), '--out', outDir],
      { env, cwd: dir },
    );
    expect(stdout).toContain('6 of 6 images are byte-identical to the original.');
    expect(
      readFileSync(join(outDir, 'pages', 'page-01.png')).equals(
        readFileSync(join(comicDir, 'pages', 'page-01.png')),
      ),
    ).toBe(true);
  });

  it('exits non-zero when the deterministic renderer produced different bytes', async () => {
    const tampered = writeManifestCopy('manifest-cli-tampered.json', (m) => {
      m.pages[0]!.panels[1]!.imageSha256 = 'f'.repeat(64);
      return m;
    });
    const failure = await run(
      process.execPath,
      [cli, 'rebuild', tampered, '--out', join(dir, 'cli-tampered')],
      { env, cwd: dir },
    ).catch((e: { code: number; stdout: string }) => e);
    expect('code' in failure && failure.code).toBe(1);
    expect((failure as { stdout: string }).stdout).toMatch(/DIFFERENT page 1 panel 2/);
  });
});
