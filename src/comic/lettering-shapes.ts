import sharp from 'sharp';
import { renderText, type RenderedText } from './fonts.ts';

/**
 * The balloon shapes as SVG. Each shape is drawn twice — first every part (body, tail, bumps, bridge)
 * with a thick black stroke, then every part filled white without a stroke on top — so body and tail
 * merge into one white shape with a single outline, as a letterer would ink it.
 */
export interface ShapeInput {
  kind: 'speech' | 'thought' | 'shout' | 'whisper' | 'caption';
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  box: { x: number; y: number; width: number; height: number };
  tail: { x: number; y: number } | null;
  /** Centre of the balloon this one continues, joined by a short bridge. */
  bridgeFrom: { x: number; y: number } | null;
  scale: number;
  size: number;
}

const f = (n: number) => (Math.round(n * 10) / 10).toString();

function ellipsePoint(s: ShapeInput, angle: number, grow = 1): [number, number] {
  return [s.cx + Math.cos(angle) * s.rx * grow, s.cy + Math.sin(angle) * s.ry * grow];
}

function tailPath(s: ShapeInput, tip: { x: number; y: number }, spread: number): string {
  const angle = Math.atan2((tip.y - s.cy) / s.ry, (tip.x - s.cx) / s.rx);
  const [x1, y1] = ellipsePoint(s, angle - spread, 0.9);
  const [x2, y2] = ellipsePoint(s, angle + spread, 0.9);
  // A slightly curved wedge: the control point bends the tail like a pen stroke.
  const mx = (x1 + tip.x) / 2 + (tip.y - y1) * 0.12;
  const my = (y1 + tip.y) / 2 - (tip.x - x1) * 0.12;
  return `M${f(x1)},${f(y1)} Q${f(mx)},${f(my)} ${f(tip.x)},${f(tip.y)} L${f(x2)},${f(y2)} Z`;
}

function starPoints(s: ShapeInput): string {
  const spikes = Math.max(14, Math.round((s.rx + s.ry) / (s.size * 0.9)));
  const pts: string[] = [];
  for (let i = 0; i < spikes * 2; i++) {
    const a = (Math.PI * i) / spikes;
    // Irregular but deterministic spike lengths read as shouting, not as a sun.
    const grow = i % 2 === 0 ? 1.0 : 1.16 + 0.08 * Math.sin(i * 2.3);
    const [x, y] = ellipsePoint(s, a, grow);
    pts.push(`${f(x)},${f(y)}`);
  }
  return pts.join(' ');
}

function cloudBumps(s: ShapeInput): { x: number; y: number; r: number }[] {
  const r = Math.min(s.rx, s.ry) * 0.2;
  const perimeter = Math.PI * (3 * (s.rx + s.ry) - Math.sqrt((3 * s.rx + s.ry) * (s.rx + 3 * s.ry)));
  const n = Math.max(10, Math.round(perimeter / (r * 1.5)));
  return Array.from({ length: n }, (_, i) => {
    const [x, y] = ellipsePoint(s, (2 * Math.PI * i) / n);
    return { x, y, r: r * (1 + 0.12 * Math.sin(i * 1.7)) };
  });
}

function thoughtTrail(s: ShapeInput, tip: { x: number; y: number }): { x: number; y: number; r: number }[] {
  const angle = Math.atan2((tip.y - s.cy) / s.ry, (tip.x - s.cx) / s.rx);
  const [ex, ey] = ellipsePoint(s, angle, 1.2);
  const base = s.size * 0.55;
  return [0.15, 0.55, 0.9].map((t, i) => ({
    x: ex + (tip.x - ex) * t,
    y: ey + (tip.y - ey) * t,
    r: base * (1 - i * 0.28),
  }));
}

/** Outline-pass and fill-pass SVG; a frame draws every outline first, then every fill, so joined shapes merge. */
export interface ShapeSvg {
  outline: string;
  fill: string;
  /** Whole pixels (page coordinates) that hold every pixel either pass may paint, antialiasing included. */
  bounds: { x: number; y: number; width: number; height: number };
}

/** Grows a box over the points and circles a shape is drawn through, so it can be rasterised alone. */
class Bounds {
  private x0 = Infinity;
  private y0 = Infinity;
  private x1 = -Infinity;
  private y1 = -Infinity;

  /** A point, or a circle of radius r around it. */
  add(x: number, y: number, r = 0): void {
    this.x0 = Math.min(this.x0, x - r);
    this.y0 = Math.min(this.y0, y - r);
    this.x1 = Math.max(this.x1, x + r);
    this.y1 = Math.max(this.y1, y + r);
  }

  /** The box grown by `pad` (half the widest stroke) plus a pixel each side for antialiasing. */
  rect(pad: number): ShapeSvg['bounds'] {
    const x = Math.floor(this.x0 - pad) - 1;
    const y = Math.floor(this.y0 - pad) - 1;
    return { x, y, width: Math.ceil(this.x1 + pad) + 1 - x, height: Math.ceil(this.y1 + pad) + 1 - y };
  }
}

export function balloonShapeSvg(s: ShapeInput): ShapeSvg {
  const stroke = 4.5 * s.scale * (s.kind === 'shout' ? 1.4 : 1);
  const parts: string[] = []; // geometry, drawn as outline pass then fill pass
  const bounds = new Bounds();
  if (s.kind === 'caption') {
    const { x, y, width, height } = s.box;
    const inset = stroke / 2;
    bounds.add(x, y);
    bounds.add(x + width, y + height);
    return {
      outline: '',
      fill: `<rect x="${f(x + inset)}" y="${f(y + inset)}" width="${f(width - stroke)}" height="${f(height - stroke)}" fill="#fff4b8" stroke="#111" stroke-width="${f(stroke)}"/>`,
      bounds: bounds.rect(0),
    };
  }
  if (s.kind === 'shout') {
    const points = starPoints(s);
    for (const p of points.split(' ')) {
      const [x, y] = p.split(',').map(Number);
      bounds.add(x!, y!);
    }
    parts.push(`<polygon points="${points}"/>`);
  } else {
    bounds.add(s.cx - s.rx, s.cy - s.ry);
    bounds.add(s.cx + s.rx, s.cy + s.ry);
    parts.push(`<ellipse cx="${f(s.cx)}" cy="${f(s.cy)}" rx="${f(s.rx)}" ry="${f(s.ry)}"/>`);
  }
  if (s.kind === 'thought') {
    for (const b of cloudBumps(s)) {
      bounds.add(b.x, b.y, b.r);
      parts.push(`<circle cx="${f(b.x)}" cy="${f(b.y)}" r="${f(b.r)}"/>`);
    }
  } else if (s.tail) {
    const tail = tailPath(s, s.tail, s.kind === 'shout' ? 0.16 : 0.2);
    // The curve stays inside the hull of its points, so the path's own numbers bound it.
    const numbers = tail.match(/-?[\d.]+/g)!.map(Number);
    for (let i = 0; i + 1 < numbers.length; i += 2) bounds.add(numbers[i]!, numbers[i + 1]!);
    parts.push(`<path d="${tail}"/>`);
  }
  if (s.bridgeFrom) {
    const w = s.size * 0.7;
    bounds.add(s.bridgeFrom.x, s.bridgeFrom.y, w / 2);
    bounds.add(s.cx, s.cy, w / 2);
    parts.push(
      `<line x1="${f(s.bridgeFrom.x)}" y1="${f(s.bridgeFrom.y)}" x2="${f(s.cx)}" y2="${f(s.cy)}" stroke-width="${f(w)}" data-bridge="1"/>`,
    );
  }
  const body = parts.join('');
  const outline = body.replace(
    /stroke-width="([\d.]+)" data-bridge="1"/g,
    (_, w: string) => `stroke-width="${f(Number(w) + 2 * stroke)}"`,
  );
  const fill = body.replace(/ data-bridge="1"/g, '');
  const dash = s.kind === 'whisper' ? ` stroke-dasharray="${f(s.size * 0.5)} ${f(s.size * 0.35)}"` : '';
  const trail = s.kind === 'thought' && s.tail ? thoughtTrail(s, s.tail) : [];
  for (const c of trail) bounds.add(c.x, c.y, c.r);
  const trailSvg = trail
    .map(
      (c) =>
        `<circle cx="${f(c.x)}" cy="${f(c.y)}" r="${f(c.r)}" fill="#fff" stroke="#111" stroke-width="${f(stroke * 0.8)}"/>`,
    )
    .join('');
  return {
    outline: `<g fill="#111" stroke="#111" stroke-width="${f(stroke * 2)}" stroke-linejoin="round"${dash}>${outline}</g>`,
    fill: `<g fill="#fff" stroke="#fff" stroke-width="0">${fill.replace(/<line /g, '<line stroke="#fff" ')}</g>${trailSvg}`,
    // The outline pass strokes `stroke * 2` wide with round joins: half of it lies outside the geometry.
    bounds: bounds.rect(stroke),
  };
}

/**
 * SFX lettering: Bangers in a warm yellow with a thick black outline (the glyph alpha dilated), tilted
 * a little so it reads as sound, not as a label.
 */
export async function sfxImage(
  text: string,
  size: number,
  angle: number,
  scale: number,
): Promise<RenderedText> {
  const glyphs = await renderText(text, { role: 'shout', size, color: '#ffd21f' });
  const outline = Math.max(2, Math.round(size * 0.07 * Math.min(1.5, scale + 0.3)));
  const pad = outline + 2;
  const raw = { width: glyphs.width, height: glyphs.height, channels: 4 as const };
  const transparent = { r: 0, g: 0, b: 0, alpha: 0 };
  const padded = await sharp(glyphs.data, { raw })
    .extend({ top: pad, bottom: pad, left: pad, right: pad, background: transparent })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const size2 = { width: padded.info.width, height: padded.info.height };
  const alpha = await sharp(padded.data, { raw: { ...size2, channels: 4 } })
    .extractChannel(3)
    .dilate(outline)
    .raw()
    .toBuffer();
  const outlineInk = await sharp({ create: { ...size2, channels: 3, background: '#111111' } })
    .joinChannel(alpha, { raw: { ...size2, channels: 1 } })
    .raw()
    .toBuffer();
  const ink = await sharp(outlineInk, { raw: { ...size2, channels: 4 } })
    .composite([{ input: padded.data, raw: { ...size2, channels: 4 } }])
    .raw()
    .toBuffer();
  const { data, info } = await sharp(ink, { raw: { ...size2, channels: 4 } })
    .rotate(angle, { background: transparent })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}
