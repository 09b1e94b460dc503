import { z } from 'zod';
import type { Shot } from '../agents/script-schema.ts';
import { InputError } from '../errors.ts';

/**
 * Page layout: which frame each panel gets. Pages are built from rows (a classic comic grid): each row
 * holds 1–3 frames of the same height, rows and frames are separated by one gutter width everywhere.
 * The template is chosen by the panels' shots — establishing and wide shots want a full-width row,
 * close-ups are happy to share one — and frame widths and row heights are weighted by shot too.
 */
export const PageGeometry = z
  .object({
    width: z.number().int().min(200).max(10_000),
    height: z.number().int().min(200).max(10_000),
    /** Blank paper around the panels. */
    margin: z.number().int().min(0).max(2_000),
    /** Blank paper between frames, the same horizontally and vertically. */
    gutter: z.number().int().min(0).max(1_000),
    /** Frame border line width, drawn inside each frame. */
    border: z.number().int().min(0).max(100),
  })
  .refine(
    (g) =>
      g.width - 2 * g.margin >= 3 * 50 + 2 * g.gutter && g.height - 2 * g.margin >= 4 * 50 + 3 * g.gutter,
    {
      message: 'page too small for its margins and gutters',
    },
  );
export type PageGeometry = z.infer<typeof PageGeometry>;

/** A US comic page at 300 dpi (6.625 × 10.1875 in). */
export const DEFAULT_GEOMETRY: PageGeometry = {
  width: 1988,
  height: 3056,
  margin: 100,
  gutter: 44,
  border: 7,
};

export interface Frame {
  /** Reading-order index; panel i of the page goes into frame i. */
  index: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** How much horizontal room a shot wants next to its neighbours in a row. */
const WIDTH_WEIGHT: Record<Shot, number> = {
  'extreme-close-up': 0.75,
  'close-up': 0.85,
  medium: 1,
  cowboy: 1,
  full: 1.05,
  wide: 1.35,
  establishing: 1.45,
};

/** How tall a row wants to be, from the panels it holds. */
const HEIGHT_WEIGHT: Record<Shot, number> = {
  'extreme-close-up': 0.85,
  'close-up': 0.9,
  medium: 1,
  cowboy: 1,
  full: 1.1,
  wide: 1.05,
  establishing: 1.2,
};

/** Score for a shot given how many frames share its row: wide shots want the row alone. */
function shotFit(shot: Shot, rowSize: number): number {
  const wideness = {
    'extreme-close-up': -1.2,
    'close-up': -1,
    medium: 0,
    cowboy: 0,
    full: 0.3,
    wide: 2,
    establishing: 2.5,
  }[shot];
  if (rowSize === 1) return wideness;
  return -wideness * (rowSize - 1) * 0.6;
}

/** All ways to cut n panels into consecutive rows of 1–3, at most 4 rows. */
function rowTemplates(n: number): number[][] {
  const out: number[][] = [];
  const walk = (left: number, rows: number[]) => {
    if (left === 0) {
      out.push(rows);
      return;
    }
    if (rows.length === 4) return;
    for (let k = 1; k <= Math.min(3, left); k++) walk(left - k, [...rows, k]);
  };
  walk(n, []);
  return out;
}

function scoreTemplate(rows: number[], shots: Shot[]): number {
  let score = 0;
  let i = 0;
  for (const k of rows) {
    for (let j = 0; j < k; j++) score += shotFit(shots[i + j] ?? 'medium', k);
    if (k === 3) score -= 2.5; // three frames in a row get too narrow for lettering on a portrait page
    i += k;
  }
  // Portrait pages read best in 2–3 tiers; one giant frame row or four thin tiers only when shots ask.
  const ideal = shots.length <= 2 ? shots.length : 3;
  score -= Math.abs(rows.length - ideal) * 1.5;
  return score;
}

/** Splits `total` pixels into integer parts proportional to `weights`, summing exactly to `total`. */
function split(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const parts = weights.map((w) => Math.floor((total * w) / sum));
  let rest = total - parts.reduce((a, b) => a + b, 0);
  for (let i = 0; rest > 0; i = (i + 1) % parts.length, rest--) parts[i] = (parts[i] ?? 0) + 1;
  return parts;
}

export function resolveGeometry(options: Partial<PageGeometry> = {}): PageGeometry {
  const parsed = PageGeometry.safeParse({ ...DEFAULT_GEOMETRY, ...options });
  if (!parsed.success) {
    throw new InputError('The page size, margins or gutters do not leave room for panels.', {
      operatorMessage: `bad page geometry: ${parsed.error.message}`,
    });
  }
  return parsed.data;
}

export function layoutPage(shots: Shot[], options: Partial<PageGeometry> & { rtl?: boolean } = {}): Frame[] {
  const { rtl = false, ...geometryOptions } = options;
  const g = resolveGeometry(geometryOptions);
  if (shots.length < 1 || shots.length > 6) {
    throw new InputError('A page holds 1 to 6 panels.', {
      operatorMessage: `layoutPage got ${shots.length} shots`,
    });
  }

  let best: number[] = [shots.length];
  let bestScore = -Infinity;
  for (const rows of rowTemplates(shots.length)) {
    const s = scoreTemplate(rows, shots);
    if (s > bestScore) {
      best = rows;
      bestScore = s;
    }
  }

  const innerW = g.width - 2 * g.margin;
  const innerH = g.height - 2 * g.margin;
  const rowShots: Shot[][] = [];
  let i = 0;
  for (const k of best) {
    rowShots.push(shots.slice(i, i + k));
    i += k;
  }
  // Clamp row weights so no tier gets squashed next to a tall one.
  const rowWeights = rowShots.map((r) => Math.max(...r.map((s) => HEIGHT_WEIGHT[s])));
  const heights = split(innerH - (best.length - 1) * g.gutter, rowWeights);

  const frames: Frame[] = [];
  let y = g.margin;
  rowShots.forEach((row, r) => {
    const h = heights[r] ?? 0;
    const widths = split(
      innerW - (row.length - 1) * g.gutter,
      row.map((s) => WIDTH_WEIGHT[s]),
    );
    let x = g.margin;
    for (const w of widths) {
      // Right-to-left pages are the mirror image: the first frame of a row sits at the right.
      const fx = rtl ? g.width - x - w : x;
      frames.push({ index: frames.length, x: fx, y, width: w, height: h });
      x += w + g.gutter;
    }
    y += h + g.gutter;
  });
  return frames;
}
