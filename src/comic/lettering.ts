import type { OverlayOptions } from 'sharp';
import type { BalloonKind, Panel, FramePosition } from '../agents/script-schema.ts';
import { countWords } from '../agents/script-schema.ts';
import { ComicMasterError } from '../errors.ts';
import { renderText, type FontRole, type RenderedText } from './fonts.ts';
import type { Frame } from './layout.ts';
import { balloonShapeSvg, sfxImage } from './lettering-shapes.ts';

/**
 * Lettering one frame: narration caption, dialogue balloons and SFX. Text is rendered by pango with the
 * comic TTFs and measured from the rendered image, so every box is sized from real metrics. Sizing goes
 * comfortable → smaller (down to a legible minimum) → split a long balloon in two; if even that cannot
 * fit, it fails with a message rather than letting text overflow or cover the art.
 */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export type LetterKind = BalloonKind | 'caption' | 'sfx';

export interface PlacedBalloon {
  /** Frame (= panel) index on the page. */
  panelIndex: number;
  kind: LetterKind;
  speaker: string | null;
  text: string;
  /** The shape's bounding box in page pixels (bumps and spikes included, tail excluded). */
  box: Rect;
  /** The rendered text's box in page pixels. */
  textBox: Rect;
  /** The ellipse the text sits in, for oval-based shapes. */
  ellipse: { cx: number; cy: number; rx: number; ry: number } | null;
  /** Where the tail (or the thought bubbles' trail) points, or null. */
  tail: { x: number; y: number } | null;
  fontSize: number;
  /** Second half of a balloon that was split to fit. */
  continued: boolean;
}

export interface LetteringOptions {
  rtl?: boolean;
  /** Largest share of the frame that caption + balloons may cover (see `coverage`). */
  maxCoverage?: number;
  /** Pixels per "300-dpi pixel": page width / 1988. Scales font sizes and line widths. */
  scale?: number;
  /** Frame border width, kept clear of lettering. */
  border?: number;
  /** Largest base font size to try (page-scaled pixels); a page passes its smallest so lettering is uniform. */
  startSize?: number;
}

export interface FrameLettering {
  balloons: PlacedBalloon[];
  /** SVG elements (page coordinates) for the balloon shapes, drawn over the art. */
  svg: string;
  /** Whole-pixel box (page coordinates) holding everything `svg` paints, or null when it paints nothing. */
  svgBounds: Rect | null;
  /** Text and SFX images to composite over the shapes. */
  overlays: OverlayOptions[];
  /** The base font size the frame was lettered at (before per-kind factors). */
  baseSize: number;
}

export type LetterablePanel = Pick<Panel, 'balloons' | 'caption' | 'sfx' | 'characters'>;

export const DEFAULT_MAX_COVERAGE = 0.35;
const START_SIZE = 46;
const MIN_SIZE = 28;
const SIZE_STEP = 3;
const MAX_SPLITS = 3;

export class LetteringError extends ComicMasterError {
  constructor(panelIndex: number, detail: string) {
    super(
      'lettering_overflow',
      `Panel ${panelIndex + 1} has more words than its frame can hold legibly; shorten its dialogue or caption.`,
      { operatorMessage: `lettering panel ${panelIndex}: ${detail}` },
    );
    this.name = 'LetteringError';
  }
}

interface Item {
  kind: Exclude<LetterKind, 'sfx'>;
  speaker: string | null;
  text: string;
  continued: boolean;
}

interface Measured extends Item {
  text: string;
  image: RenderedText;
  size: number;
  /** Shape half-extents around the centre (ellipse radii, plus bumps/spikes in ext*). */
  rx: number;
  ry: number;
  extX: number;
  extY: number;
}

interface Placed extends Measured {
  cx: number;
  cy: number;
  /** How far below its box the tail may reach without running into the next shelf. */
  tailRoom: number;
}

function fontFor(kind: Item['kind']): { role: FontRole; sizeFactor: number; color: string } {
  switch (kind) {
    case 'shout':
      return { role: 'shout', sizeFactor: 1.2, color: '#111111' };
    case 'whisper':
      return { role: 'whisper', sizeFactor: 0.88, color: '#4a4a4a' };
    case 'caption':
      return { role: 'dialogue', sizeFactor: 0.92, color: '#1a1a1a' };
    default:
      return { role: 'dialogue', sizeFactor: 1, color: '#111111' };
  }
}

/** Cuts a balloon's text in two near the middle, at a sentence end when there is one. */
export function splitText(text: string): [string, string] {
  const words = text.trim().split(/\s+/);
  const mid = words.length / 2;
  let cut = Math.max(1, Math.round(mid));
  let best = Infinity;
  words.forEach((w, i) => {
    if (i === 0 || i === words.length - 1) return;
    if (/[.!?…]$/.test(w) && Math.abs(i + 1 - mid) < best) {
      best = Math.abs(i + 1 - mid);
      cut = i + 1;
    }
  });
  if (best > words.length / 4) cut = Math.max(1, Math.round(mid));
  return [words.slice(0, cut).join(' '), words.slice(cut).join(' ')];
}

interface Area {
  inner: Rect;
  frame: Frame;
  scale: number;
}

async function measure(
  item: Item,
  size: number,
  area: Area,
  cache: Map<string, RenderedText>,
): Promise<Measured | null> {
  const font = fontFor(item.kind);
  const px = Math.round(size * font.sizeFactor);
  const text = item.text.toUpperCase();
  const style = {
    role: font.role,
    size: px,
    color: font.color,
    align: item.kind === 'caption' ? 'left' : 'centre',
  } as const;
  const key = (w: number | undefined) => `${item.kind}|${px}|${w ?? '-'}|${text}`;
  const render = async (wrapWidth?: number) => {
    const k = key(wrapWidth);
    let r = cache.get(k);
    if (!r) {
      r = await renderText(text, {
        ...style,
        lineSpacing: Math.round(px * 0.08),
        ...(wrapWidth ? { wrapWidth } : {}),
      });
      cache.set(k, r);
    }
    return r;
  };

  // A single unwrapped line measures its ink, not its line height, so estimate line height from the size.
  const line = await render();
  const lineHeight = px * 1.25;
  const pad = Math.round(px * 0.32);
  if (item.kind === 'caption') {
    const maxTextW = Math.floor(area.inner.width * 0.62 - 3.6 * pad);
    const lines = Math.max(1, Math.round(Math.sqrt(line.width / (4 * lineHeight))));
    const wrap = Math.min(maxTextW, Math.ceil(line.width / lines) + px);
    const img = line.width <= wrap ? line : await render(wrap);
    if (img.width > maxTextW) return null;
    const halfW = img.width / 2 + pad * 1.8;
    const halfH = img.height / 2 + pad * 1.2;
    return { ...item, text, image: img, size: px, rx: halfW, ry: halfH, extX: halfW, extY: halfH };
  }

  // Oval balloons: the smallest ellipse around a w×h text block has radii w/√2, h/√2; aim for a block
  // about twice as wide as tall so the ovals look like balloons, not pills or towers.
  const extra = item.kind === 'thought' ? 0.2 : item.kind === 'shout' ? 0.24 : 0;
  const maxRx = ((area.inner.width / 2) * 0.92) / (1 + extra);
  const maxTextW = Math.floor((maxRx - pad) * Math.SQRT2);
  if (maxTextW < px * 3) return null;
  const lines = Math.max(
    1,
    Math.round(Math.sqrt(line.width / ((item.kind === 'shout' ? 1.6 : 2.5) * lineHeight))),
  );
  const wrap = Math.min(maxTextW, Math.ceil(line.width / lines) + px);
  const img = line.width <= wrap ? line : await render(wrap);
  if (img.width > maxTextW) return null;
  const rx = (img.width / 2) * Math.SQRT2 + pad;
  const ry = (img.height / 2) * Math.SQRT2 + pad * 0.7;
  const bump = Math.min(rx, ry) * extra;
  const stroke = 5 * area.scale;
  return { ...item, text, image: img, size: px, rx, ry, extX: rx + bump + stroke, extY: ry + bump + stroke };
}

const SIDE_X: Record<FramePosition, number> = { left: 0.22, centre: 0.5, right: 0.78 };

/**
 * Places items in reading order on shelves across the top of the frame: along a shelf in the reading
 * direction, each a little lower than the one before, then the next shelf below. A lone item on a shelf
 * leans toward its speaker's side. Works in "reading space" (LTR) and mirrors for RTL.
 */
function place(
  items: Measured[],
  area: Area,
  rtl: boolean,
  speakerSide: (s: string | null) => FramePosition | null,
): Placed[] | null {
  const { inner } = area;
  const gap = Math.round(14 * area.scale);
  const stagger = Math.round(inner.height * 0.035);
  const shelves: Measured[][] = [];
  let shelf: Measured[] = [];
  let used = 0;
  for (const it of items) {
    const w = 2 * it.extX;
    if (shelf.length > 0 && used + gap + w > inner.width) {
      shelves.push(shelf);
      shelf = [];
      used = 0;
    }
    shelf.push(it);
    used += (shelf.length > 1 ? gap : 0) + w;
  }
  if (shelf.length) shelves.push(shelf);

  const placed: Placed[] = [];
  let top = inner.y;
  // Shelves above another one keep room under them for their balloons' tails.
  const tailRoom = Math.round(Math.max(...items.map((m) => m.size)) * 1.6);
  shelves.forEach((row, r) => {
    const last = r === shelves.length - 1;
    const rowStart = placed.length;
    let cursor = inner.x; // reading-space left edge of the next item
    let bottom = top;
    row.forEach((it, i) => {
      const w = 2 * it.extX;
      const after = row.slice(i + 1).reduce((n, r) => n + 2 * r.extX + gap, 0);
      const side = it.kind === 'caption' ? null : speakerSide(it.speaker);
      // Reading-space side: on an RTL page the image's left is the reading end.
      const u = side === null ? 0 : rtl ? 1 - SIDE_X[side] : SIDE_X[side];
      let x =
        row.length === 1 && it.kind !== 'caption' && !it.continued && side
          ? inner.x + inner.width * u - w / 2
          : cursor;
      // Spread the shelf, except a continuation, which stays next to the balloon it continues.
      if (row.length > 1 && i === row.length - 1 && it.kind !== 'caption' && !it.continued)
        x = inner.x + inner.width - w;
      x = Math.max(cursor, Math.min(x, inner.x + inner.width - after - w));
      const y = top + (it.kind === 'caption' ? 0 : i * stagger);
      const cxReading = x + it.extX;
      const cx = rtl ? inner.x + inner.width - (cxReading - inner.x) : cxReading;
      placed.push({ ...it, cx, cy: y + it.extY, tailRoom: 0 });
      cursor = x + w + gap;
      bottom = Math.max(bottom, y + 2 * it.extY);
    });
    const hasTails = row.some((it) => it.kind !== 'caption' && !it.continued);
    const room = last ? inner.y + inner.height - bottom : hasTails ? tailRoom : 0;
    for (const p of placed.slice(rowStart)) p.tailRoom = Math.max(0, bottom + room - (p.cy + p.extY));
    top = bottom + (last ? 0 : room) + gap;
  });
  if (top - gap > inner.y + inner.height) return null;
  return placed;
}

/**
 * The art a lettering shape hides: its box for captions, the ellipse filling its box for balloons
 * (bumps and spikes included in the box, so this errs on the side of covering more).
 */
export function shapeArea(kind: LetterKind, width: number, height: number): number {
  return kind === 'caption' || kind === 'sfx' ? width * height : (Math.PI / 4) * width * height;
}

/** Share of a frame's area covered by caption and balloons (SFX is lettering on the art, not over it). */
export function coverage(frame: Frame, balloons: PlacedBalloon[]): number {
  const covered = balloons
    .filter((b) => b.panelIndex === frame.index && b.kind !== 'sfx')
    .reduce((n, b) => n + shapeArea(b.kind, b.box.width, b.box.height), 0);
  return covered / (frame.width * frame.height);
}

function boxOf(p: Placed): Rect {
  return {
    x: Math.floor(p.cx - p.extX),
    y: Math.floor(p.cy - p.extY),
    width: Math.ceil(2 * p.extX) + 1,
    height: Math.ceil(2 * p.extY) + 1,
  };
}

export async function letterFrame(
  frame: Frame,
  panel: LetterablePanel,
  options: LetteringOptions = {},
): Promise<FrameLettering> {
  const rtl = options.rtl ?? false;
  const scale = options.scale ?? 1;
  const maxCoverage = options.maxCoverage ?? DEFAULT_MAX_COVERAGE;
  const border = options.border ?? Math.round(7 * scale);
  const margin = border + Math.round(Math.min(frame.width, frame.height) * 0.025);
  const inner: Rect = {
    x: frame.x + margin,
    y: frame.y + margin,
    width: frame.width - 2 * margin,
    height: frame.height - 2 * margin,
  };
  const area: Area = { inner, frame, scale };
  const sides = new Map(panel.characters.map((c) => [c.name.toLowerCase(), c.position]));
  const speakerSide = (s: string | null) => (s ? (sides.get(s.toLowerCase()) ?? null) : null);

  let items: Item[] = [
    ...(panel.caption
      ? [{ kind: 'caption' as const, speaker: null, text: panel.caption, continued: false }]
      : []),
    ...panel.balloons.map((b) => ({ kind: b.kind, speaker: b.speaker, text: b.text, continued: false })),
  ];
  const cache = new Map<string, RenderedText>();
  const frameArea = frame.width * frame.height;

  let fitted: Placed[] | null = null;
  let baseSize = 0;
  const startSize = Math.min(START_SIZE * scale, options.startSize ?? Infinity);
  for (let splits = 0; splits <= MAX_SPLITS && !fitted; splits++) {
    for (let size = startSize; size >= MIN_SIZE * scale - 0.01 && !fitted; size -= SIZE_STEP * scale) {
      baseSize = size;
      const measured = await Promise.all(items.map((it) => measure(it, size, area, cache)));
      if (measured.some((m) => m === null)) continue;
      const ms = measured as Measured[];
      const covered = ms.reduce((n, m) => n + shapeArea(m.kind, 2 * m.extX + 1, 2 * m.extY + 1), 0);
      if (covered > frameArea * maxCoverage) continue;
      fitted = place(ms, area, rtl, speakerSide);
    }
    if (fitted) break;
    // Still too big at the smallest legible size: split the wordiest balloon that can still be split.
    let target = -1;
    items.forEach((it, i) => {
      if (
        it.kind !== 'caption' &&
        countWords(it.text) >= 4 &&
        (target < 0 || countWords(it.text) > countWords(items[target]!.text))
      )
        target = i;
    });
    if (target < 0) break;
    const [a, b] = splitText(items[target]!.text);
    const orig = items[target]!;
    items = [
      ...items.slice(0, target),
      { ...orig, text: a },
      { ...orig, text: b, continued: true },
      ...items.slice(target + 1),
    ];
  }
  if (!fitted)
    throw new LetteringError(
      frame.index,
      `${items.length} items do not fit a ${frame.width}x${frame.height} frame`,
    );

  const balloons: PlacedBalloon[] = [];
  const outlines: string[] = [];
  const fills: string[] = [];
  let svgBounds: Rect | null = null;
  const overlays: OverlayOptions[] = [];
  let previous: Placed | null = null;
  for (const p of fitted) {
    const box = boxOf(p);
    const textBox = {
      x: Math.round(p.cx - p.image.width / 2),
      y: Math.round(p.cy - p.image.height / 2),
      width: p.image.width,
      height: p.image.height,
    };
    let tail: { x: number; y: number } | null = null;
    if (p.kind !== 'caption' && !p.continued) tail = tailTip(p, frame, inner, speakerSide(p.speaker));
    const bridgeFrom = p.continued && previous ? { x: previous.cx, y: previous.cy } : null;
    const shape = balloonShapeSvg({
      kind: p.kind,
      cx: p.cx,
      cy: p.cy,
      rx: p.rx,
      ry: p.ry,
      box,
      tail,
      bridgeFrom,
      scale,
      size: p.size,
    });
    outlines.push(shape.outline);
    fills.push(shape.fill);
    svgBounds = svgBounds ? unionRect(svgBounds, shape.bounds) : shape.bounds;
    overlays.push({
      input: p.image.data,
      raw: { width: p.image.width, height: p.image.height, channels: 4 },
      left: textBox.x,
      top: textBox.y,
    });
    balloons.push({
      panelIndex: frame.index,
      kind: p.kind,
      speaker: p.speaker,
      text: p.text,
      box,
      textBox,
      ellipse: p.kind === 'caption' ? null : { cx: p.cx, cy: p.cy, rx: p.rx, ry: p.ry },
      tail,
      fontSize: p.size,
      continued: p.continued,
    });
    previous = p;
  }

  if (panel.sfx) {
    const sfx = await placeSfx(panel.sfx, frame, inner, balloons, rtl, scale);
    if (sfx) {
      overlays.push(sfx.overlay);
      balloons.push(sfx.balloon);
    }
  }
  return {
    balloons,
    svg: outlines.join('') + fills.join(''),
    svgBounds,
    overlays,
    baseSize: fitted.length ? baseSize : startSize,
  };
}

/** The tail points from the balloon toward the speaker's side of the frame, a short way down. */
function tailTip(p: Placed, frame: Frame, inner: Rect, side: FramePosition | null): { x: number; y: number } {
  const targetX = frame.x + frame.width * (side ? SIDE_X[side] : 0.5);
  const targetY = frame.y + frame.height * 0.62;
  let dx = targetX - p.cx;
  let dy = Math.max(targetY - p.cy, p.ry * 1.5);
  const len = Math.hypot(dx, dy);
  dx /= len;
  dy /= len;
  // Leave the ellipse along that direction, then go on for a tail length.
  const t = 1 / Math.sqrt((dx * dx) / (p.rx * p.rx) + (dy * dy) / (p.ry * p.ry));
  let tailLen = Math.max(p.size * 1.8, p.ry * 0.7);
  // Keep the tip above the next shelf of balloons.
  const maxY = p.cy + p.extY + p.tailRoom - p.size * 0.2;
  if (p.cy + dy * (t + tailLen) > maxY) tailLen = Math.max(p.size * 0.8, (maxY - p.cy) / dy - t);
  const x = Math.min(inner.x + inner.width, Math.max(inner.x, p.cx + dx * (t + tailLen)));
  const y = Math.min(inner.y + inner.height, Math.max(inner.y, p.cy + dy * (t + tailLen)));
  return { x: Math.round(x), y: Math.round(y) };
}

/** The smallest rectangle holding both. */
function unionRect(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return {
    x,
    y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
  };
}

function intersects(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

async function placeSfx(
  text: string,
  frame: Frame,
  inner: Rect,
  taken: PlacedBalloon[],
  rtl: boolean,
  scale: number,
): Promise<{ overlay: OverlayOptions; balloon: PlacedBalloon } | null> {
  const angle = rtl ? 8 : -8;
  for (let size = Math.min(frame.height * 0.16, 200 * scale); size >= 60 * scale; size *= 0.85) {
    const img = await sfxImage(text.toUpperCase(), Math.round(size), angle, scale);
    if (img.width > inner.width * 0.7 || img.height > inner.height * 0.4) continue;
    const bottom = inner.y + inner.height - img.height;
    const end = rtl ? inner.x : inner.x + inner.width - img.width;
    const start = rtl ? inner.x + inner.width - img.width : inner.x;
    for (const x of [end, start]) {
      const box = { x: Math.round(x), y: Math.round(bottom), width: img.width, height: img.height };
      if (taken.some((b) => intersects(b.box, box))) continue;
      return {
        overlay: {
          input: img.data,
          raw: { width: img.width, height: img.height, channels: 4 },
          left: box.x,
          top: box.y,
        },
        balloon: {
          panelIndex: frame.index,
          kind: 'sfx',
          speaker: null,
          text,
          box,
          textBox: box,
          ellipse: null,
          tail: null,
          fontSize: Math.round(size),
          continued: false,
        },
      };
    }
  }
  return null;
}
