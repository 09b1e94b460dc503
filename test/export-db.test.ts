/**
 * Exports of comics made in Discord: rows in a real PostgreSQL, pages in the artifact store on a temp
 * folder. What a reader gets: a CBZ that opens with a zip library and says its page count and reading
 * direction in ComicInfo.xml, a print PDF with one page per comic page, and a clear refusal for a
 * comic still being made — from the library and from `comicmaster export <id>`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { unzipSync } from 'fflate';
import { PDFDocument } from 'pdf-lib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTemplateScript } from '../src/agents/template-writer.ts';
import { buildComicExport, loadComicFromDatabase } from '../src/comic/export/from-db.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { runMigrations } from '../src/db/migrate.ts';
import { comics, pages, type Comic } from '../src/db/schema.ts';
import { InputError } from '../src/errors.ts';
import { artifactKeys } from '../src/store/keys.ts';
import { createArtifactStore, type ArtifactStore } from '../src/store/index.ts';
import { createTestDatabase } from './helpers/database.ts';

const run = promisify(execFile);
const PAGE = { width: 300, height: 460 };

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;
let database: Database;
let store: ArtifactStore;

beforeAll(async () => {
  testDb = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'cm-export-db-'));
  database = await openDatabase({ databaseUrl: testDb.url, dataDir });
  await runMigrations(database);
  store = createArtifactStore({ dataDir });
}, 60_000);

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function pageImage(number: number): Promise<Buffer> {
  const shade = 40 * number;
  return sharp({ create: { ...PAGE, channels: 3, background: { r: 250 - shade, g: 240, b: 200 + number } } })
    .png()
    .toBuffer();
}

/** A comic as the Discord flow leaves it: the row with its script, page rows, page images in the store. */
async function seedComic(opts: {
  pages: number;
  rtl?: boolean;
  status?: Comic['status'];
  donePages?: number;
  /** Page numbers stored as WebP under their .png key, as an over-limit encode does. */
  webpPages?: number[];
}): Promise<Comic> {
  const script = writeTemplateScript({
    story: 'A lighthouse keeper teaches a crab to read the stars',
    pages: opts.pages,
    panelsPerPage: 1,
  });
  const [comic] = await database.db
    .insert(comics)
    .values({
      guildId: '1000',
      channelId: '2000',
      userId: '3000',
      prompt: 'A lighthouse keeper teaches a crab to read the stars',
      options: {
        pages: opts.pages,
        panelsPerPage: 1,
        style: null,
        modelFamily: 'illustrious',
        rtl: opts.rtl ?? false,
      },
      script,
      writer: 'template',
      status: opts.status ?? 'done',
    })
    .returning();
  const done = opts.donePages ?? opts.pages;
  for (let number = 1; number <= opts.pages; number++) {
    const isDone = number <= done;
    const key = artifactKeys.page(comic!.id, number);
    if (isDone) {
      const png = await pageImage(number);
      await store.put(
        key,
        opts.webpPages?.includes(number) ? await sharp(png).webp({ quality: 80 }).toBuffer() : png,
      );
    }
    await database.db.insert(pages).values({
      comicId: comic!.id,
      number,
      layout: {},
      status: isDone ? 'done' : 'rendering',
      artifactKey: isDone ? key : null,
    });
  }
  return comic!;
}

function comicInfoOf(zip: Record<string, Uint8Array>): string {
  return new TextDecoder().decode(zip['ComicInfo.xml']!);
}

describe('exporting a comic made in Discord', () => {
  it('builds a CBZ of its pages in order, with ComicInfo.xml from the row', async () => {
    const row = await seedComic({ pages: 3, webpPages: [2] });
    const comic = await loadComicFromDatabase(database.db, store, row.id, {
      resolveWriter: async () => 'alice',
    });
    const file = await buildComicExport(comic, 'cbz');

    const zip = unzipSync(file.bytes);
    expect(Object.keys(zip)).toEqual(['001.png', '002.png', '003.png', 'ComicInfo.xml']);
    for (const number of [1, 2, 3]) {
      // Page 2 was stored as WebP: the archive still holds a PNG of the same page.
      const meta = await sharp(Buffer.from(zip[`00${number}.png`]!)).metadata();
      expect(meta.format).toBe('png');
      expect([meta.width, meta.height]).toEqual([PAGE.width, PAGE.height]);
    }
    const xml = comicInfoOf(zip);
    expect(xml).toContain('<PageCount>3</PageCount>');
    expect(xml).toContain(`<Title>${row.script!.title.replace(/&/g, '&amp;')}</Title>`);
    expect(xml).toContain('<Writer>alice</Writer>');
    expect(xml).toContain('<Manga>No</Manga>');
    expect(xml.match(/<Page Image=/g)).toHaveLength(3);
    expect(file.filename).toMatch(new RegExp(`-${row.id.slice(0, 8)}\\.cbz$`));
  });

  it('marks a right-to-left comic as manga in the CBZ', async () => {
    const row = await seedComic({ pages: 1, rtl: true });
    const file = await buildComicExport(await loadComicFromDatabase(database.db, store, row.id), 'cbz');
    const xml = comicInfoOf(unzipSync(file.bytes));
    expect(xml).toContain('<Manga>YesAndRightToLeft</Manga>');
    expect(xml).toContain('<PageCount>1</PageCount>');
    expect(xml).toContain('<Writer>ComicMaster</Writer>');
  });

  it('builds a print PDF: one page per comic page at 300 dpi, titled', async () => {
    const row = await seedComic({ pages: 2 });
    const file = await buildComicExport(await loadComicFromDatabase(database.db, store, row.id), 'pdf');
    const pdf = await PDFDocument.load(file.bytes);
    expect(pdf.getPageCount()).toBe(2);
    const size = pdf.getPage(0).getSize();
    expect(size.width).toBeCloseTo((PAGE.width / 300) * 72, 3);
    expect(size.height).toBeCloseTo((PAGE.height / 300) * 72, 3);
    expect(pdf.getTitle()).toBe(row.script!.title);
    expect(file.fits).toBe(true);
  });

  it('says how far a comic still being made is', async () => {
    const row = await seedComic({ pages: 3, donePages: 2, status: 'assembling' });
    const attempt = loadComicFromDatabase(database.db, store, row.id);
    await expect(attempt).rejects.toBeInstanceOf(InputError);
    await expect(attempt).rejects.toMatchObject({
      userMessage: `Comic \`${row.id}\` is still being made: 2 of 3 pages are ready.`,
    });
  });

  it('refuses unknown ids, comics of another guild, and cancelled comics, saying which', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    await expect(loadComicFromDatabase(database.db, store, unknown)).rejects.toMatchObject({
      userMessage: expect.stringContaining('There is no comic'),
    });
    const row = await seedComic({ pages: 1 });
    await expect(
      loadComicFromDatabase(database.db, store, row.id, { guildId: 'another' }),
    ).rejects.toMatchObject({
      userMessage: expect.stringContaining('on this server'),
    });
    const cancelled = await seedComic({ pages: 2, donePages: 1, status: 'cancelled' });
    await expect(loadComicFromDatabase(database.db, store, cancelled.id)).rejects.toMatchObject({
      userMessage: expect.stringContaining('was cancelled'),
    });
  });
});

describe('comicmaster export <id>', () => {
  const bin = resolve('bin/comicmaster.js');
  const env = () => ({ ...process.env, DATABASE_URL: testDb.url, DATA_DIR: dataDir, LOG_LEVEL: 'silent' });

  it('writes the CBZ of a comic from the database', async () => {
    const row = await seedComic({ pages: 2, rtl: true });
    const out = join(dataDir, 'out', 'comic.cbz');
    const { stdout } = await run(
      process.execPath,
      [bin, 'export', row.id, '--format', 'cbz', '--out', out, '--writer', 'bob'],
      { env: env() },
    );
    expect(stdout).toContain('2 page(s)');
    const zip = unzipSync(await readFile(out));
    expect(Object.keys(zip).filter((name) => name.endsWith('.png'))).toHaveLength(2);
    expect(comicInfoOf(zip)).toContain('<Manga>YesAndRightToLeft</Manga>');
    expect(comicInfoOf(zip)).toContain('<Writer>bob</Writer>');
  });

  it('exits non-zero with the clear message for a comic still being made', async () => {
    const row = await seedComic({ pages: 3, donePages: 1, status: 'rendering' });
    const out = join(dataDir, 'out', 'never.pdf');
    const failure = await run(process.execPath, [bin, 'export', row.id, '--format', 'pdf', '--out', out], {
      env: env(),
    }).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).not.toBe(0);
    expect(failure?.stderr).toContain('is still being made: 1 of 3 pages are ready');
    await expect(readFile(out)).rejects.toThrow();
  });
});
