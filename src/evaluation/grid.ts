/**
 * Evaluation grids with sharp: rows = checkpoints by epoch, columns = baseline + strengths, one grid per
 * test prompt, labelled on both axes with the lettering font (src/comic/fonts.ts) so the labels stay
 * legible after Discord's preview scaling.
 *
 * Speed and memory: every render is decoded once, straight to a cell-sized raw buffer (libvips
 * shrinks on load for JPEG and reduces PNGs as it streams), and the whole grid is one composite of raw
 * buffers onto a raw white canvas, encoded once. Grids are photographs, so JPEG is the encoding: fast
 * and several times smaller than PNG. A grid over the upload limit is split by rows into parts that
 * each fit, rather than shrunk until the faces are unreadable.
 */
import sharp, { type OverlayOptions } from 'sharp';
import { encodeUnderLimit } from '../comic/encode.ts';
import { renderText, type RenderedText } from '../comic/fonts.ts';

export interface GridSpec {
  title: string;
  rowLabels: readonly string[];
  columnLabels: readonly string[];
  /** cells[row][column]: an encoded image of any size (cropped to a square), or null for a missing cell. */
  cells: readonly (readonly (Buffer | null)[])[];
  /** Side of one cell in the grid, in pixels. */
  cellSize: number;
}

export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 3;
}

export interface EncodedGrid {
  data: Buffer;
  format: 'jpeg' | 'webp' | 'png';
  width: number;
  height: number;
  /** First and last row (0-based, inclusive) of the spec this part shows. */
  rows: [number, number];
}

const GAP = 4;
const WHITE = { r: 255, g: 255, b: 255 };
const MISSING = { r: 200, g: 200, b: 200 };
export const GRID_JPEG_QUALITY = 88;

function labelSize(cellSize: number): number {
  return Math.max(14, Math.round(cellSize / 14));
}

/** One cell: decoded once, cropped to a centred square and shrunk to the cell size, as raw RGB. */
async function cellPixels(image: Buffer | null, size: number): Promise<Buffer> {
  if (!image) {
    return sharp({ create: { width: size, height: size, channels: 3, background: MISSING } })
      .raw()
      .toBuffer();
  }
  return sharp(image, { failOn: 'error' })
    .resize(size, size, { fit: 'cover', position: 'centre', fastShrinkOnLoad: true })
    .flatten({ background: WHITE })
    .removeAlpha()
    .raw()
    .toBuffer();
}

/** The grid as raw RGB pixels (compose once, encode by the caller). */
export async function composeGridRaw(spec: GridSpec): Promise<RawImage> {
  const { cellSize } = spec;
  const textSize = labelSize(cellSize);
  const rowTexts = await Promise.all(
    spec.rowLabels.map((label) =>
      renderText(label, {
        role: 'dialogue',
        size: textSize,
        wrapWidth: Math.max(80, cellSize * 0.6),
        align: 'right',
      }),
    ),
  );
  const columnTexts = await Promise.all(
    spec.columnLabels.map((label) =>
      renderText(label, { role: 'dialogue', size: textSize, wrapWidth: cellSize - 8 }),
    ),
  );
  const title = await renderText(spec.title, {
    role: 'dialogue',
    size: Math.round(textSize * 1.2),
    align: 'left',
    wrapWidth: Math.max(200, cellSize * spec.columnLabels.length),
  });

  const gutter = Math.max(...rowTexts.map((t) => t.width), 40) + 2 * GAP + 8;
  const headerTop = title.height + 2 * GAP;
  const header = headerTop + Math.max(...columnTexts.map((t) => t.height), 10) + 2 * GAP;
  const columns = spec.columnLabels.length;
  const rows = spec.rowLabels.length;
  const width = gutter + columns * (cellSize + GAP);
  const height = header + rows * (cellSize + GAP);

  const overlays: OverlayOptions[] = [];
  const text = (t: RenderedText, left: number, top: number) =>
    overlays.push({
      input: t.data,
      raw: { width: t.width, height: t.height, channels: 4 },
      left: Math.max(0, Math.round(left)),
      top: Math.max(0, Math.round(top)),
    });

  text(title, GAP * 2, GAP);
  columnTexts.forEach((t, c) =>
    text(t, gutter + c * (cellSize + GAP) + (cellSize - t.width) / 2, headerTop + GAP),
  );
  rowTexts.forEach((t, r) =>
    text(t, gutter - GAP - 8 - t.width, header + r * (cellSize + GAP) + (cellSize - t.height) / 2),
  );

  // Decode the cells a row at a time: bounded memory (one row of full renders at once), parallel
  // enough to keep libvips' threads busy.
  for (let r = 0; r < rows; r++) {
    const row = spec.cells[r] ?? [];
    const pixels = await Promise.all(
      Array.from({ length: columns }, (_, c) => cellPixels(row[c] ?? null, cellSize)),
    );
    pixels.forEach((data, c) =>
      overlays.push({
        input: data,
        raw: { width: cellSize, height: cellSize, channels: 3 },
        left: gutter + c * (cellSize + GAP),
        top: header + r * (cellSize + GAP),
      }),
    );
  }

  const data = await sharp({ create: { width, height, channels: 3, background: WHITE } })
    .composite(overlays)
    .removeAlpha()
    .raw()
    .toBuffer();
  return { data, width, height, channels: 3 };
}

async function encodeRaw(image: RawImage, quality = GRID_JPEG_QUALITY): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .jpeg({ quality, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

/**
 * The grid encoded under `maxBytes`, split by rows into as many parts as needed (each part keeps the
 * title, with "part i/n", and the column labels). A single row that still does not fit is re-encoded
 * smaller by encodeUnderLimit.
 */
export async function composeGridParts(spec: GridSpec, maxBytes: number): Promise<EncodedGrid[]> {
  const raw = await composeGridRaw(spec);
  const whole = await encodeRaw(raw);
  const rows = spec.rowLabels.length;
  if (whole.length <= maxBytes)
    return [{ data: whole, format: 'jpeg', width: raw.width, height: raw.height, rows: [0, rows - 1] }];
  if (rows <= 1) {
    const fitted = await encodeUnderLimit(whole, { maxBytes, prefer: 'jpeg' });
    return [
      { data: fitted.data, format: fitted.format, width: fitted.width, height: fitted.height, rows: [0, 0] },
    ];
  }
  // Aim a little under the limit: the per-part header repeats and JPEG size is not exactly linear.
  const partCount = Math.min(rows, Math.ceil((whole.length * 1.15) / maxBytes));
  const perPart = Math.ceil(rows / partCount);
  const parts: EncodedGrid[] = [];
  for (let start = 0; start < rows; start += perPart) {
    const end = Math.min(rows, start + perPart);
    const sub: GridSpec = {
      ...spec,
      title: `${spec.title} (part ${parts.length + 1}/${Math.ceil(rows / perPart)})`,
      rowLabels: spec.rowLabels.slice(start, end),
      cells: spec.cells.slice(start, end),
    };
    for (const part of await composeGridParts(sub, maxBytes)) {
      parts.push({ ...part, rows: [start + part.rows[0], start + part.rows[1]] });
    }
  }
  return parts;
}
