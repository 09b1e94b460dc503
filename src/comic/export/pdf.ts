import { PDFDocument, ReadingDirection } from 'pdf-lib';
import sharp from 'sharp';
import { z } from 'zod';
import { log } from '../../log.ts';
import type { ComicExportMetadata } from './cbz.ts';
import type { LoadedComic } from './load.ts';

/**
 * A print-ready PDF: one PDF page per comic page, sized so the page's pixels print at 300 dpi
 * (points = px / 300 × 72). Pages are embedded as PNG; when the file must fit a size budget (a Discord
 * upload limit), they are re-encoded as JPEG at decreasing quality until it fits, or we give up and
 * say so, so the caller can store the file somewhere else and say where.
 */
export const PRINT_DPI = 300;
const POINTS_PER_INCH = 72;

/** JPEG qualities tried in turn when the PNG version is over the budget. */
const JPEG_QUALITY_LADDER = [90, 80, 70, 60, 50, 40, 30] as const;

export function pixelsToPoints(px: number, dpi = PRINT_DPI): number {
  return (px / dpi) * POINTS_PER_INCH;
}

export interface PdfPage {
  png: Buffer;
  width: number;
  height: number;
}

export const PdfOptions = z.object({
  title: z.string().trim().min(1),
  author: z.string().trim().min(1).nullable().default(null),
  subject: z.string().trim().nullable().default(null),
  keywords: z.array(z.string()).default([]),
  languageISO: z.string().trim().min(1).nullable().default(null),
  rtl: z.boolean().default(false),
  /** The largest file the caller can use, in bytes; no limit when absent. */
  maxBytes: z.number().int().positive().optional(),
  /** Creation date in the metadata; fixed in tests for reproducible files. */
  date: z.date().optional(),
});
export type PdfOptions = z.input<typeof PdfOptions>;

export interface PdfResult {
  bytes: Uint8Array;
  /** False when even the smallest JPEG version is over maxBytes: the bytes are that smallest version. */
  fits: boolean;
  imageFormat: 'png' | 'jpeg';
  jpegQuality: number | null;
}

async function assemblePdf(
  pages: PdfPage[],
  images: { data: Buffer; format: 'png' | 'jpeg' }[],
  options: z.infer<typeof PdfOptions>,
): Promise<Uint8Array> {
  const doc = await PDFDocument.create();
  const date = options.date ?? new Date();
  doc.setTitle(options.title, { showInWindowTitleBar: true });
  doc.setAuthor(options.author ?? 'ComicMaster');
  if (options.subject) doc.setSubject(options.subject);
  if (options.keywords.length > 0) doc.setKeywords(options.keywords);
  if (options.languageISO) doc.setLanguage(options.languageISO);
  doc.setCreator('ComicMaster');
  doc.setProducer('ComicMaster with pdf-lib');
  doc.setCreationDate(date);
  doc.setModificationDate(date);
  // Right-to-left comics open and turn pages the manga way in viewers that honour /Direction.
  if (options.rtl) doc.catalog.getOrCreateViewerPreferences().setReadingDirection(ReadingDirection.R2L);

  for (const [index, page] of pages.entries()) {
    const image = images[index]!;
    const embedded = image.format === 'png' ? await doc.embedPng(image.data) : await doc.embedJpg(image.data);
    const width = pixelsToPoints(page.width);
    const height = pixelsToPoints(page.height);
    const pdfPage = doc.addPage([width, height]);
    pdfPage.drawImage(embedded, { x: 0, y: 0, width, height });
  }
  return doc.save();
}

/** A PDF's bytes beyond its images: page objects, metadata, cross-reference table. Generous. */
const PDF_OVERHEAD_BYTES = 4096;

export async function buildPdf(pages: PdfPage[], input: PdfOptions): Promise<PdfResult> {
  const options = PdfOptions.parse(input);
  const { maxBytes } = options;
  const pngBytes = pages.reduce((n, p) => n + p.png.length, 0);
  // pdf-lib re-deflates PNG pixel data, so the PNG version is about the size of the PNG files: when
  // those alone are well over the budget, skip straight to JPEG.
  let smallest: PdfResult | null = null;
  if (maxBytes === undefined || pngBytes <= maxBytes * 1.1) {
    const asPng = await assemblePdf(
      pages,
      pages.map((p) => ({ data: p.png, format: 'png' as const })),
      options,
    );
    if (maxBytes === undefined || asPng.length <= maxBytes)
      return { bytes: asPng, fits: true, imageFormat: 'png', jpegQuality: null };
    smallest = { bytes: asPng, fits: false, imageFormat: 'png', jpegQuality: null };
  }

  // Decode each page once; every quality on the ladder encodes from the same pixels.
  const decoded = await Promise.all(
    pages.map((p) =>
      sharp(p.png).flatten({ background: '#ffffff' }).raw().toBuffer({ resolveWithObject: true }),
    ),
  );
  for (const [step, quality] of JPEG_QUALITY_LADDER.entries()) {
    const jpegs = await Promise.all(
      decoded.map(async ({ data, info }) => ({
        data: await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
          .jpeg({ quality, chromaSubsampling: '4:2:0' })
          .toBuffer(),
        format: 'jpeg' as const,
      })),
    );
    const estimate = jpegs.reduce((n, j) => n + j.data.length, 0) + PDF_OVERHEAD_BYTES * pages.length;
    const last = step === JPEG_QUALITY_LADDER.length - 1;
    // Assembling is cheap for JPEG, but skip it when the images alone cannot fit (except at the end,
    // where the caller still gets the smallest file we can make).
    if (maxBytes !== undefined && estimate > maxBytes * 1.05 && !last) continue;
    const bytes = await assemblePdf(pages, jpegs, options);
    log().debug({ quality, bytes: bytes.length, maxBytes }, 'pdf re-encoded as jpeg');
    if (maxBytes === undefined || bytes.length <= maxBytes)
      return { bytes, fits: true, imageFormat: 'jpeg', jpegQuality: quality };
    if (!smallest || bytes.length < smallest.bytes.length)
      smallest = { bytes, fits: false, imageFormat: 'jpeg', jpegQuality: quality };
  }
  return smallest!;
}

/** The PDF of a local comic, with its title, logline and the member as author. */
export async function exportPdf(
  comic: LoadedComic,
  extra: ComicExportMetadata & { maxBytes?: number; date?: Date } = {},
): Promise<PdfResult> {
  const { manifest } = comic;
  return buildPdf(comic.pages, {
    title: manifest.script.title,
    author: extra.writer ?? null,
    subject: manifest.script.logline,
    keywords: [extra.genre, ...manifest.script.cast.map((c) => c.name)].filter((k): k is string =>
      Boolean(k),
    ),
    languageISO: extra.languageISO ?? null,
    rtl: manifest.options.rtl,
    maxBytes: extra.maxBytes,
    date: extra.date,
  });
}
