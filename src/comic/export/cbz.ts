import { zipSync, type Zippable } from 'fflate';
import { buildComicInfoXml, type ComicInfoInput } from './comicinfo.ts';
import type { LoadedComic } from './load.ts';

/**
 * A CBZ is a zip of the pages in reading order plus ComicInfo.xml. PNGs are stored, not deflated:
 * they are compressed already, and readers open stored entries faster.
 */

/** Zip timestamps are fixed so the same comic always exports to the same bytes. */
const FIXED_MTIME = new Date(Date.UTC(2000, 0, 1));

export interface CbzPage {
  png: Buffer;
  width: number;
  height: number;
}

export type CbzMetadata = Omit<ComicInfoInput, 'pages'>;

export interface CbzResult {
  bytes: Uint8Array;
  /** Entry names in the archive, in order. */
  entries: string[];
  comicInfoXml: string;
}

export function pageEntryName(index: number, count: number): string {
  return `${String(index + 1).padStart(Math.max(3, String(count).length), '0')}.png`;
}

export function buildCbz(pages: CbzPage[], metadata: CbzMetadata): CbzResult {
  const comicInfoXml = buildComicInfoXml({
    ...metadata,
    pages: pages.map((p) => ({ width: p.width, height: p.height, bytes: p.png.length })),
  });
  const files: Zippable = {};
  const entries: string[] = [];
  pages.forEach((page, index) => {
    const name = pageEntryName(index, pages.length);
    files[name] = [
      new Uint8Array(page.png.buffer, page.png.byteOffset, page.png.length),
      { level: 0, mtime: FIXED_MTIME },
    ];
    entries.push(name);
  });
  files['ComicInfo.xml'] = [new TextEncoder().encode(comicInfoXml), { level: 6, mtime: FIXED_MTIME }];
  entries.push('ComicInfo.xml');
  return { bytes: zipSync(files), entries, comicInfoXml };
}

export interface ComicExportMetadata {
  /** The member who made the comic, for Writer/Author; "ComicMaster" when unknown. */
  writer?: string | null;
  genre?: string | null;
  languageISO?: string | null;
}

/** ComicInfo fields from a comic's manifest: title, logline, cast, reading direction. */
export function comicInfoFromComic(comic: LoadedComic, extra: ComicExportMetadata = {}): CbzMetadata {
  const { manifest } = comic;
  return {
    title: manifest.script.title,
    summary: manifest.script.logline,
    writer: extra.writer ?? null,
    genre: extra.genre ?? null,
    languageISO: extra.languageISO ?? null,
    characters: manifest.script.cast.map((c) => c.name),
    notes: `Made with ComicMaster (${manifest.comicId}); panels by ${manifest.renderer.kind}.`,
    rtl: manifest.options.rtl,
  };
}

export function exportCbz(comic: LoadedComic, extra: ComicExportMetadata = {}): CbzResult {
  return buildCbz(comic.pages, comicInfoFromComic(comic, extra));
}
