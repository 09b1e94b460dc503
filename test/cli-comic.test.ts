import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { ComicManifest } from '../src/comic/manifest.ts';

// The README's first command, run the way a newcomer runs it: a child process, no LLM, no ComfyUI.
const work = mkdtempSync(join(tmpdir(), 'cm-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cleanEnv: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  LOG_LEVEL: 'warn',
  DATA_DIR: join(work, 'data'),
};

function cli(args: string[]) {
  return spawnSync(process.execPath, [join(process.cwd(), 'bin', 'comicmaster.js'), ...args], {
    cwd: work,
    env: cleanEnv,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('comicmaster comic', () => {
  const out = join(work, 'robot');
  const run = cli([
    'comic',
    'A retired robot opens a noodle bar on Mars and its first customer is a lost astronaut',
    '--pages',
    '2',
    '--panels-per-page',
    '4',
    '--out',
    out,
  ]);

  it('writes lettered pages at comic page size and says where they are', async () => {
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('template writer');
    const pages = readdirSync(join(out, 'pages')).sort();
    expect(pages).toEqual(['page-01.png', 'page-02.png']);
    for (const page of pages) {
      expect(run.stdout).toContain(join(out, 'pages', page));
      const meta = await sharp(join(out, 'pages', page)).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 1988, 3056]);
    }
  });

  it('writes the script, one recipe and one image per panel, and a manifest that describes them', async () => {
    const manifest = ComicManifest.parse(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    expect(manifest.renderer.kind).toBe('storyboard');
    expect(manifest.writer.kind).toBe('template');
    expect(manifest.pages).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(out, 'script.json'), 'utf8'))).toEqual(manifest.script);
    for (const page of manifest.pages) {
      expect(page.panels).toHaveLength(4);
      for (const panel of page.panels) {
        expect(existsSync(join(out, panel.recipeFile))).toBe(true);
        // Each panel is kept as rendered, at the recipe's resolution, before cropping into its frame.
        const meta = await sharp(join(out, panel.imageFile)).metadata();
        expect([meta.width, meta.height]).toEqual([panel.recipe.width, panel.recipe.height]);
      }
    }
  });

  it('is repeatable: the same story and options give the same pages', () => {
    const again = join(work, 'robot-again');
    const second = cli([
      'comic',
      'A retired robot opens a noodle bar on Mars and its first customer is a lost astronaut',
      '--pages',
      '2',
      '--panels-per-page',
      '4',
      '--out',
      again,
    ]);
    expect(second.status).toBe(0);
    for (const page of ['page-01.png', 'page-02.png']) {
      expect(readFileSync(join(again, 'pages', page)).equals(readFileSync(join(out, 'pages', page)))).toBe(
        true,
      );
    }
  });

  it('prints the ComfyUI graph for a recipe it wrote', () => {
    const result = cli(['workflow', join(out, 'recipes', 'p01-01.json')]);
    expect(result.status).toBe(0);
    const graph = JSON.parse(result.stdout) as Record<string, { class_type: string }>;
    const classes = Object.values(graph).map((n) => n.class_type);
    expect(classes).toContain('CheckpointLoaderSimple');
    expect(classes).toContain('KSampler');
    expect(classes).toContain('SaveImage');
  });

  it.each([
    ['an empty story', ['comic', ''], /story is empty/i],
    ['a 10 000-character story', ['comic', 'x'.repeat(10_000)], /too long/i],
    ['9 pages', ['comic', 'a story', '--pages', '9'], /A comic has 1 to 8 pages/],
    ['0 panels', ['comic', 'a story', '--panels-per-page', '0'], /A page has 1 to 6 panels/],
    ['pages in words', ['comic', 'a story', '--pages', 'two'], /whole number/],
    [
      'an unknown model',
      ['comic', 'a story', '--model', 'sd15'],
      /Allowed choices are illustrious, noobai, flux/,
    ],
  ] as const)('refuses %s with a clear message and a non-zero exit', (_label, args, message) => {
    const result = cli([...args]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace for a user's mistake
  });

  it('refuses an experimental model family the operator has not enabled, and says why', () => {
    const result = cli(['comic', 'a story', '--model', 'ponyv7']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Pony/);
    expect(result.stderr).toMatch(/ENABLE_EXPERIMENTAL_FAMILIES/);
  });

  it('explains a missing recipe file instead of crashing', () => {
    const result = cli(['workflow', join(work, 'nope.json')]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/not readable/);
  });
});
