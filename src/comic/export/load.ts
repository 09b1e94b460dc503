import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { InputError } from '../../errors.ts';
import { ComicManifest } from '../manifest.ts';

/** One lettered page of a comic, read from disk, in reading order. */
export interface ComicPageFile {
  number: number;
  path: string;
  png: Buffer;
  width: number;
  height: number;
  /** False when the file on disk is not the one the manifest recorded (edited or re-made since). */
  matchesManifest: boolean;
}

export interface LoadedComic {
  dir: string;
  manifestFile: string;
  manifest: ComicManifest;
  pages: ComicPageFile[];
}

/** Accepts a comic folder (holding manifest.json) or the manifest file itself. */
export async function resolveManifestPath(target: string): Promise<string> {
  const path = resolve(target);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new InputError(`${target} does not exist: give a comic folder or its manifest.json.`);
  return info.isDirectory() ? join(path, 'manifest.json') : path;
}

export async function readManifest(manifestFile: string): Promise<ComicManifest> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(manifestFile, 'utf8'));
  } catch (error) {
    throw new InputError(
      `${basename(manifestFile)} could not be read as JSON: is this a comic folder made by \`comicmaster comic\`?`,
      {
        cause: error,
        operatorMessage: `reading ${manifestFile}: ${(error as Error).message}`,
      },
    );
  }
  const parsed = ComicManifest.safeParse(json);
  if (!parsed.success) {
    throw new InputError(`${basename(manifestFile)} is not a ComicMaster manifest.`, {
      operatorMessage: `${manifestFile}: ${z.prettifyError(parsed.error)}`,
    });
  }
  return parsed.data;
}

/** A path from the manifest, which must stay inside the comic folder. */
function insideComic(dir: string, file: string): string {
  const path = resolve(dir, file);
  if (!path.startsWith(dir + '/') && path !== dir) {
    throw new InputError(`The manifest names a file outside the comic folder (${file}).`);
  }
  return path;
}

/** Reads a local comic: its manifest and its lettered pages, checking each page against its sha256. */
export async function loadComic(target: string): Promise<LoadedComic> {
  const manifestFile = await resolveManifestPath(target);
  const manifest = await readManifest(manifestFile);
  const dir = dirname(manifestFile);
  const ordered = [...manifest.pages].sort((a, b) => a.number - b.number);
  const pages = await Promise.all(
    ordered.map(async (page): Promise<ComicPageFile> => {
      const path = insideComic(dir, page.file);
      const png = await readFile(path).catch((error: unknown) => {
        throw new InputError(`Page ${page.number} (${page.file}) is missing from the comic folder.`, {
          cause: error,
        });
      });
      const meta = await sharp(png).metadata();
      if (!meta.width || !meta.height)
        throw new InputError(`Page ${page.number} (${page.file}) is not a readable image.`);
      const matchesManifest = createHash('sha256').update(png).digest('hex') === page.sha256;
      return { number: page.number, path, png, width: meta.width, height: meta.height, matchesManifest };
    }),
  );
  return { dir, manifestFile, manifest, pages };
}
