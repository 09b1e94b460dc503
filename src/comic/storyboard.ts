import sharp, { type OverlayOptions } from 'sharp';
import { RenderRecipe } from './recipe.ts';
import { renderText, type RenderedText } from './fonts.ts';
import { InputError } from '../errors.ts';

/**
 * Storyboard sketches: what a panel will show, drawn without a GPU. Used for the local demo and as a
 * preview before GPU time is spent. Pure function of the recipe: same recipe, same bytes.
 */

const PAPER = '#f4efe3';
const PENCIL = '#3b3b3b';
const SOFT = '#9a9486';

type Position = 'left' | 'centre' | 'right';

/** How a shot frames a standing figure: head radius and where the feet are, in frame heights. */
interface Framing {
  head: number;
  /** y of the head centre as a share of the height. */
  headY: number;
  horizon: number | null;
  /** Figures spread across this share of the width. */
  spread: number;
}

const FRAMING: Record<string, Framing> = {
  'extreme-close-up': { head: 0.42, headY: 0.5, horizon: null, spread: 0.7 },
  'close-up': { head: 0.2, headY: 0.42, horizon: null, spread: 0.62 },
  medium: { head: 0.12, headY: 0.3, horizon: null, spread: 0.6 },
  cowboy: { head: 0.075, headY: 0.24, horizon: 0.62, spread: 0.6 },
  full: { head: 0.05, headY: 0.27, horizon: 0.7, spread: 0.55 },
  wide: { head: 0.03, headY: 0.56, horizon: 0.58, spread: 0.5 },
  establishing: { head: 0.018, headY: 0.66, horizon: 0.6, spread: 0.4 },
};

const X_OF: Record<Position, number> = { left: 0.25, centre: 0.5, right: 0.75 };

function horizonFor(f: Framing, angle: string): number | null {
  if (f.horizon === null) return null;
  const shift =
    angle === 'from-above' || angle === 'birds-eye'
      ? -0.18
      : angle === 'from-below' || angle === 'worms-eye'
        ? 0.16
        : 0;
  return Math.min(0.9, Math.max(0.12, f.horizon + shift));
}

/** A simple mannequin: head, neck, torso, arms and legs, as a storyboard artist blocks a figure in. */
function figureSvg(cx: number, headY: number, r: number, shade: string): string {
  const body = r * 2.6; // shoulder-to-hip
  const shoulderW = r * 1.7;
  const hipW = r * 1.1;
  const top = headY + r * 1.15;
  const hip = top + body;
  const leg = r * 3.3;
  const arm = r * 2.5;
  const sw = Math.max(1.5, Math.min(r * 0.16, 3 + r * 0.02));
  return [
    `<g stroke="${PENCIL}" stroke-width="${sw.toFixed(1)}" stroke-linecap="round" stroke-linejoin="round" fill="${shade}">`,
    // legs and arms first, so the torso overlaps them
    `<path d="M${(cx - hipW * 0.5).toFixed(1)},${hip.toFixed(1)} L${(cx - hipW * 0.7).toFixed(1)},${(hip + leg).toFixed(1)} M${(cx + hipW * 0.5).toFixed(1)},${hip.toFixed(1)} L${(cx + hipW * 0.7).toFixed(1)},${(hip + leg).toFixed(1)}" fill="none" stroke-width="${(r * 0.55).toFixed(1)}" stroke="${shade}"/>`,
    `<path d="M${(cx - shoulderW).toFixed(1)},${(top + r * 0.3).toFixed(1)} L${(cx - shoulderW * 1.15).toFixed(1)},${(top + arm).toFixed(1)} M${(cx + shoulderW).toFixed(1)},${(top + r * 0.3).toFixed(1)} L${(cx + shoulderW * 1.15).toFixed(1)},${(top + arm).toFixed(1)}" fill="none" stroke-width="${(r * 0.4).toFixed(1)}" stroke="${shade}"/>`,
    `<path d="M${(cx - shoulderW).toFixed(1)},${top.toFixed(1)} Q${cx.toFixed(1)},${(top - r * 0.35).toFixed(1)} ${(cx + shoulderW).toFixed(1)},${top.toFixed(1)} L${(cx + hipW).toFixed(1)},${hip.toFixed(1)} L${(cx - hipW).toFixed(1)},${hip.toFixed(1)} Z"/>`,
    `<circle cx="${cx.toFixed(1)}" cy="${headY.toFixed(1)}" r="${r.toFixed(1)}"/>`,
    // construction lines on the face: where the eyes and the nose go
    `<path d="M${(cx - r * 0.8).toFixed(1)},${(headY + r * 0.05).toFixed(1)} Q${cx.toFixed(1)},${(headY + r * 0.25).toFixed(1)} ${(cx + r * 0.8).toFixed(1)},${(headY + r * 0.05).toFixed(1)} M${cx.toFixed(1)},${(headY - r * 0.85).toFixed(1)} L${cx.toFixed(1)},${(headY + r * 0.85).toFixed(1)}" fill="none" stroke="${SOFT}" stroke-width="${(sw * 0.6).toFixed(1)}"/>`,
    `</g>`,
  ].join('');
}

/** Deterministic pseudo-random numbers from the recipe's seed, for skyline and hatching. */
function rng(seed: number): () => number {
  let s = (seed % 2147483647) + 1;
  return () => {
    s = (s * 48271) % 2147483647;
    return s / 2147483647;
  };
}

function backdropSvg(w: number, h: number, horizon: number | null, shot: string, seed: number): string {
  const parts: string[] = [];
  const rand = rng(seed);
  if (horizon !== null) {
    const y = h * horizon;
    parts.push(
      `<line x1="0" y1="${y.toFixed(1)}" x2="${w}" y2="${y.toFixed(1)}" stroke="${SOFT}" stroke-width="${Math.max(1.5, h / 400).toFixed(1)}"/>`,
    );
    if (shot === 'establishing' || shot === 'wide') {
      // A blocked-in skyline on the horizon.
      let x = 0;
      while (x < w) {
        const bw = w * (0.04 + rand() * 0.07);
        const bh = h * (0.04 + rand() * (shot === 'establishing' ? 0.18 : 0.1));
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${(y - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${bh.toFixed(1)}" fill="#e2dccd" stroke="${SOFT}" stroke-width="1.5"/>`,
        );
        x += bw + w * rand() * 0.05;
      }
    }
    // Perspective lines toward a vanishing point on the horizon.
    for (const vx of [-0.4, 0.2, 0.8, 1.4]) {
      parts.push(
        `<line x1="${(w / 2).toFixed(1)}" y1="${y.toFixed(1)}" x2="${(w * vx).toFixed(1)}" y2="${h}" stroke="#d6cfbe" stroke-width="1.5"/>`,
      );
    }
  }
  return parts.join('');
}

async function fitText(
  text: string,
  size: number,
  wrapWidth: number,
  maxHeight: number,
  role: 'label' | 'dialogue',
): Promise<RenderedText> {
  for (let s = size; ; s = Math.floor(s * 0.88)) {
    const r = await renderText(text, { role, size: s, wrapWidth, align: 'left', color: '#2b2b2b' });
    if ((r.height <= maxHeight && r.width <= wrapWidth) || s <= 10) return r;
  }
}

export async function renderStoryboardPanel(input: RenderRecipe): Promise<Buffer> {
  const parsed = RenderRecipe.safeParse(input);
  if (!parsed.success) {
    throw new InputError('That panel recipe is not valid.', {
      operatorMessage: `storyboard recipe: ${parsed.error.message}`,
    });
  }
  const recipe = parsed.data;
  const { width: w, height: h } = recipe;
  const brief = recipe.panel;
  const u = Math.min(w, h) / 1000;
  const framing = FRAMING[brief.shot] ?? FRAMING.medium!;
  const horizon = horizonFor(framing, brief.angle);

  // Figures: one per character, at their place in the frame; several at the same place step aside.
  const placed = new Map<Position, number>();
  const figures = brief.characters.map((c) => {
    const k = placed.get(c.position) ?? 0;
    placed.set(c.position, k + 1);
    const base = 0.5 + (X_OF[c.position] - 0.5) * (framing.spread / 0.5);
    const x = w * Math.min(0.92, Math.max(0.08, base + k * 0.12 * (c.position === 'right' ? -1 : 1)));
    const r = h * framing.head * (k > 0 ? 0.92 : 1);
    return { name: c.name, x, r, headY: h * framing.headY };
  });
  const tilt = brief.angle === 'dutch' ? -8 : 0;
  const shades = ['#c9c2b1', '#b9c4c9', '#cbbcc1', '#c2c9b7'];
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">`,
    `<rect width="${w}" height="${h}" fill="${PAPER}"/>`,
    `<g transform="rotate(${tilt} ${w / 2} ${h / 2})">`,
    backdropSvg(w, h, horizon, brief.shot, recipe.seed),
    ...figures.map((f, i) => figureSvg(f.x, f.headY, f.r, shades[i % shades.length]!)),
    `</g>`,
    // The panel border, drawn like a storyboard frame.
    `<rect x="${(6 * u).toFixed(1)}" y="${(6 * u).toFixed(1)}" width="${(w - 12 * u).toFixed(1)}" height="${(h - 12 * u).toFixed(1)}" fill="none" stroke="${PENCIL}" stroke-width="${(5 * u).toFixed(1)}"/>`,
    `</svg>`,
  ].join('');

  const overlays: OverlayOptions[] = [];
  const pad = Math.round(24 * u);
  // Pages crop each panel from its SDXL bucket into its frame, which can shave a few percent off
  // either side: keep the words inside a safe area so they survive the crop.
  const safeX = Math.max(pad, Math.round(w * 0.1));
  const safeY = Math.max(pad, Math.round(h * 0.1));
  // The shot, the setting and the action in words, on one card across the bottom: the top of the
  // frame stays free for the page's captions and balloons.
  const shotLine = `P${brief.page}.${brief.panel} · ${brief.shot.replace(/-/g, ' ')} · ${brief.angle.replace(/-/g, ' ')}`;
  const boxes: string[] = [];
  const noteWidth = w - 2 * safeX - 2 * pad;
  const note = await fitText(
    `${shotLine.toUpperCase()}\n${brief.setting}\n→ ${brief.action}`,
    Math.round(32 * u),
    noteWidth,
    Math.round(h * 0.24),
    'label',
  );
  const noteTop = h - safeY - note.height - pad;
  boxes.push(
    `<rect x="${safeX}" y="${noteTop}" width="${w - 2 * safeX}" height="${note.height + pad}" fill="#fffdf7" fill-opacity="0.92" stroke="${PENCIL}" stroke-width="${(2 * u).toFixed(1)}"/>`,
  );

  // Names under the figures (over the chin for close shots, where the body is off-frame).
  const nameTags: { img: RenderedText; x: number; y: number }[] = [];
  for (const f of figures) {
    const img = await renderText(f.name, { role: 'dialogue', size: Math.round(30 * u), color: '#2b2b2b' });
    const below = f.headY + f.r * 7.3;
    const y = Math.round(
      below + img.height < noteTop - pad / 2
        ? below
        : Math.min(f.headY + f.r * 1.2, noteTop - img.height - pad),
    );
    const x = Math.round(Math.min(w - safeX - img.width, Math.max(safeX, f.x - img.width / 2)));
    nameTags.push({ img, x, y });
    boxes.push(
      `<rect x="${x - 8 * u}" y="${y - 4 * u}" width="${img.width + 16 * u}" height="${img.height + 8 * u}" rx="${(4 * u).toFixed(1)}" fill="#fffdf7" stroke="${SOFT}" stroke-width="${(1.5 * u).toFixed(1)}"/>`,
    );
  }
  const boxSvg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${boxes.join('')}</svg>`,
  );
  overlays.push({ input: boxSvg, left: 0, top: 0 });
  const raw = (r: RenderedText, left: number, top: number): OverlayOptions => ({
    input: r.data,
    raw: { width: r.width, height: r.height, channels: 4 },
    left: Math.max(0, Math.min(w - r.width, left)),
    top: Math.max(0, Math.min(h - r.height, top)),
  });
  overlays.push(raw(note, safeX + pad, noteTop + Math.round(pad / 2)));
  for (const t of nameTags) overlays.push(raw(t.img, t.x, t.y));

  return sharp(Buffer.from(svg)).composite(overlays).png({ compressionLevel: 9 }).toBuffer();
}
