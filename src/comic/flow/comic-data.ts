import { z } from 'zod';
import { ComicScript } from '../../agents/script-schema.ts';
import { InputError } from '../../errors.ts';
import { ComicOptions } from '../../db/json.ts';
import type { Comic, PageRow } from '../../db/schema.ts';
import { PageGeometry } from '../layout.ts';

/**
 * The comic's options as the pipeline reads them: ComicOptions plus `safe` (stored by startComic with
 * setComicOutputSafety). A comic without the key renders safe for any audience.
 */
export const PipelineComicOptions = ComicOptions.extend({ safe: z.boolean().default(true) });
export type PipelineComicOptions = z.infer<typeof PipelineComicOptions>;

export function comicOptionsOf(comic: Comic): PipelineComicOptions {
  const parsed = PipelineComicOptions.safeParse(comic.options);
  if (!parsed.success) {
    throw new InputError('This comic’s settings are damaged, so it cannot be made.', {
      operatorMessage: `comic ${comic.id} has invalid options: ${z.prettifyError(parsed.error)}`,
    });
  }
  return parsed.data;
}

export function comicScriptOf(comic: Comic): ComicScript | undefined {
  if (comic.script === null) return undefined;
  return ComicScript.parse(comic.script);
}

const Frame = z.object({
  index: z.number().int().min(0),
  x: z.number().int().min(0),
  y: z.number().int().min(0),
  width: z.number().int().min(1),
  height: z.number().int().min(1),
});

/** What pages.layout holds: the frames of the page as laid out once, and what they were laid out for. */
export const StoredPageLayout = z.object({
  version: z.literal(1),
  geometry: PageGeometry,
  rtl: z.boolean(),
  frames: z.array(Frame).min(1).max(6),
});
export type StoredPageLayout = z.infer<typeof StoredPageLayout>;

export function pageLayoutOf(page: PageRow): StoredPageLayout {
  const parsed = StoredPageLayout.safeParse(page.layout);
  if (!parsed.success) {
    throw new InputError(`The layout of page ${page.number} is missing or damaged.`, {
      operatorMessage: `page ${page.comicId}/${page.number} has an invalid layout: ${z.prettifyError(parsed.error)}`,
    });
  }
  return parsed.data;
}
