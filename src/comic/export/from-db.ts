import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { ComicScript } from '../../agents/script-schema.ts';
import type { AppConfig } from '../../config/env.ts';
import { openDatabase, type Db } from '../../db/client.ts';
import { getComic } from '../../db/comics.ts';
import { listPages } from '../../db/pages.ts';
import type { Comic, PageRow } from '../../db/schema.ts';
import { InputError } from '../../errors.ts';
import { ArtifactNotFoundError, createArtifactStore, type ArtifactStore } from '../../store/index.ts';
import { buildCbz, type CbzMetadata, type CbzResult, type ComicExportMetadata } from './cbz.ts';
import { buildPdf, type PdfResult } from './pdf.ts';

/**
 * Exports of comics made in Discord. Their script and options are on the `comics` row and each
 * assembled page is in the artifact store under its page row's `artifact_key`. The files produced are
 * the same as for a local comic folder (same ComicInfo.xml fields, same print PDF), built with the
 * same buildCbz/buildPdf.
 */

export type ExportFormat = 'pdf' | 'cbz';

/** Where an export too big to upload is kept, so an operator can fetch it. */
export function exportArtifactKey(comicId: string, format: ExportFormat): string {
  return `exports/${comicId}.${format}`;
}

/** Whether a CLI argument is a comic id (a UUID) rather than a folder or manifest path. */
export function isComicId(value: string): boolean {
  return z.uuid().safeParse(value).success;
}

/** One assembled page, as PNG (whatever the store holds), in reading order. */
export interface DbComicPage {
  number: number;
  png: Buffer;
  width: number;
  height: number;
  /** The format the store held: pages over Discord's limit are stored as WebP or JPEG under a .png key. */
  storedFormat: string;
}

export interface DbComic {
  comic: Comic;
  script: ComicScript;
  pages: DbComicPage[];
  /** The member's name for Writer/Author, when the caller could resolve it; else "ComicMaster". */
  writer: string | null;
}

export interface FindExportableOptions {
  /** Only a comic of this guild; another guild's comic is "not found" (ids are not a way to peek). */
  guildId?: string;
}

/**
 * The comic row and its finished page rows, or an InputError saying why it cannot be exported yet.
 * Touches only the database, so the bot can refuse quickly (ephemerally) before deferring.
 */
export async function findExportableComic(
  db: Db,
  comicId: string,
  options: FindExportableOptions = {},
): Promise<{ comic: Comic; script: ComicScript; pages: PageRow[] }> {
  const comic = await getComic(db, comicId);
  if (!comic || (options.guildId !== undefined && comic.guildId !== options.guildId)) {
    const where = options.guildId !== undefined ? ' on this server' : '';
    throw new InputError(
      `There is no comic \`${comicId}\`${where}. The id is in the comic's status message.`,
    );
  }
  const rows = await listPages(db, comic.id);
  const ready = rows.filter((p) => p.status === 'done' && p.artifactKey);
  const parsedScript = comic.script ? ComicScript.safeParse(comic.script) : undefined;
  const expected = parsedScript?.success ? parsedScript.data.pages.length : comic.options.pages;
  const total = Math.max(expected, rows.length);

  if (comic.status === 'cancelled' || comic.status === 'failed') {
    const what = comic.status === 'cancelled' ? 'was cancelled' : 'failed';
    throw new InputError(
      `Comic \`${comic.id}\` ${what} before it was finished (${ready.length} of ${total} pages were made), so there is nothing to export.`,
    );
  }
  if (comic.status !== 'done' || !parsedScript?.success || ready.length < total) {
    throw new InputError(
      `Comic \`${comic.id}\` is still being made: ${ready.length} of ${total} pages are ready.`,
      {
        operatorMessage: `export of comic ${comic.id}: status ${comic.status}, ${ready.length}/${total} pages done, script ${parsedScript?.success ? 'valid' : 'missing or invalid'}`,
      },
    );
  }
  return { comic, script: parsedScript.data, pages: ready };
}

/**
 * Reads a comic made in Discord: its row, its script and every assembled page from the store as PNG,
 * in page order. `resolveWriter` turns the member's id into a name (the bot asks Discord; the CLI
 * takes --writer).
 */
export async function loadComicFromDatabase(
  db: Db,
  store: ArtifactStore,
  comicId: string,
  options: FindExportableOptions & { resolveWriter?: (userId: string) => Promise<string | null> } = {},
): Promise<DbComic> {
  const { comic, script, pages: rows } = await findExportableComic(db, comicId, options);
  const pages: DbComicPage[] = [];
  // One page at a time: pages are large once decoded and the box is small.
  for (const row of rows) pages.push(await readPage(store, comic.id, row));
  const writer = options.resolveWriter ? await options.resolveWriter(comic.userId).catch(() => null) : null;
  return { comic, script, pages, writer };
}

async function readPage(store: ArtifactStore, comicId: string, row: PageRow): Promise<DbComicPage> {
  const key = row.artifactKey!;
  let bytes: Buffer;
  try {
    bytes = await store.getBuffer(key);
  } catch (error) {
    if (!(error instanceof ArtifactNotFoundError)) throw error;
    throw new InputError(
      `Page ${row.number} of comic \`${comicId}\` is missing from the artifact store, so the comic cannot be exported.`,
      {
        cause: error,
        operatorMessage: `export of comic ${comicId}: page ${row.number} artifact ${key} not found`,
      },
    );
  }
  // The key says .png, but a page over the upload limit was stored as WebP or JPEG: trust the bytes.
  const meta = await sharp(bytes)
    .metadata()
    .catch((error: unknown) => {
      throw new InputError(`Page ${row.number} of comic \`${comicId}\` is not a readable image.`, {
        cause: error,
        operatorMessage: `export of comic ${comicId}: page ${row.number} artifact ${key} does not decode`,
      });
    });
  if (!meta.width || !meta.height || !meta.format) {
    throw new InputError(`Page ${row.number} of comic \`${comicId}\` is not a readable image.`);
  }
  const png = meta.format === 'png' ? bytes : await sharp(bytes).png({ compressionLevel: 6 }).toBuffer();
  return { number: row.number, png, width: meta.width, height: meta.height, storedFormat: meta.format };
}

/** The ComicInfo fields of a Discord comic: the same ones as a local comic's export. */
export function comicInfoFromDbComic(comic: DbComic, extra: ComicExportMetadata = {}): CbzMetadata {
  return {
    title: comic.script.title,
    summary: comic.script.logline,
    writer: extra.writer ?? comic.writer,
    genre: extra.genre ?? null,
    languageISO: extra.languageISO ?? null,
    characters: comic.script.cast.map((c) => c.name),
    notes: `Made with ComicMaster (${comic.comic.id}); script by the ${comic.comic.writer === 'llm' ? 'LLM' : 'template'} writer.`,
    rtl: comic.comic.options.rtl,
  };
}

export function exportDbCbz(comic: DbComic, extra: ComicExportMetadata = {}): CbzResult {
  return buildCbz(comic.pages, comicInfoFromDbComic(comic, extra));
}

export async function exportDbPdf(
  comic: DbComic,
  extra: ComicExportMetadata & { maxBytes?: number; date?: Date } = {},
): Promise<PdfResult> {
  const info = comicInfoFromDbComic(comic, extra);
  return buildPdf(comic.pages, {
    title: info.title,
    author: info.writer ?? null,
    subject: info.summary ?? null,
    keywords: [info.genre, ...(info.characters ?? [])].filter((k): k is string => Boolean(k)),
    languageISO: info.languageISO ?? null,
    rtl: info.rtl,
    maxBytes: extra.maxBytes,
    date: extra.date,
  });
}

export interface ComicExportFile {
  bytes: Uint8Array;
  filename: string;
  format: ExportFormat;
  pageCount: number;
  /** False when the file is over maxBytes (for a PDF: even with its pages as JPEG). */
  fits: boolean;
  /** For a PDF: how its pages are embedded. */
  imageFormat: 'png' | 'jpeg' | null;
  jpegQuality: number | null;
}

/** A file name safe on every system and in a Discord attachment: the title, then the id's start. */
export function exportFilename(comic: DbComic, format: ExportFormat): string {
  const slug = comic.script.title
    .normalize('NFKD')
    .replace(/[^\w\s-]/g, '')
    .trim()
    .replace(/[\s_-]+/g, '-')
    .slice(0, 60)
    .replace(/-+$/, '');
  return `${slug || 'comic'}-${comic.comic.id.slice(0, 8)}.${format}`;
}

/** Builds the export file of a loaded Discord comic, fitted under maxBytes when one is given. */
export async function buildComicExport(
  comic: DbComic,
  format: ExportFormat,
  extra: ComicExportMetadata & { maxBytes?: number; date?: Date } = {},
): Promise<ComicExportFile> {
  const filename = exportFilename(comic, format);
  const pageCount = comic.pages.length;
  if (format === 'cbz') {
    // PNG pages in a zip cannot shrink without changing the pages; a CBZ either fits or is stored.
    const cbz = exportDbCbz(comic, extra);
    const fits = extra.maxBytes === undefined || cbz.bytes.length <= extra.maxBytes;
    return { bytes: cbz.bytes, filename, format, pageCount, fits, imageFormat: null, jpegQuality: null };
  }
  const pdf = await exportDbPdf(comic, extra);
  return {
    bytes: pdf.bytes,
    filename,
    format,
    pageCount,
    fits: pdf.fits,
    imageFormat: pdf.imageFormat,
    jpegQuality: pdf.jpegQuality,
  };
}

/**
 * `comicmaster export <id>` on the server: opens the configured database and artifact store, builds
 * the file and writes it to `out`. No upload limit applies unless maxBytes is given.
 */
export async function exportComicFromDatabaseToFile(
  config: AppConfig,
  comicId: string,
  options: ComicExportMetadata & { format: ExportFormat; out: string; maxBytes?: number },
): Promise<ComicExportFile> {
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.dataDir });
  try {
    const comic = await loadComicFromDatabase(database.db, createArtifactStore(config), comicId);
    const file = await buildComicExport(comic, options.format, options);
    await mkdir(dirname(options.out), { recursive: true });
    await writeFile(options.out, file.bytes);
    return file;
  } finally {
    await database.close();
  }
}
