/**
 * A PNG chart of the measures across epochs: style strength and flexibility at each tested strength,
 * with the baseline's own flexibility as a dashed line. Drawn as SVG (lines and shapes) with the
 * labels rendered in the lettering font and composited on top, so the chart reads like the grids.
 */
import sharp, { type OverlayOptions } from 'sharp';
import { renderText } from '../comic/fonts.ts';
import type { CheckpointMeasures } from './record.ts';

const W = 900;
const H = 520;
const PAD = { left: 70, right: 190, top: 50, bottom: 60 };
const STYLE_COLOURS = ['#f2b8b5', '#e57373', '#d32f2f', '#7f0000'];
const FLEX_COLOURS = ['#b3d4f2', '#64a0e0', '#1e6fd0', '#0b3d7a'];

export async function measuresChart(
  measures: readonly CheckpointMeasures[],
  strengths: readonly number[],
  baselineFlexibility: number,
  /** The x-axis label of a checkpoint ("e4", or its blind label so the chart does not reveal epochs). */
  labelOf: (m: CheckpointMeasures) => string = (m) => `e${m.epoch}`,
): Promise<Buffer> {
  const epochs = measures.map(labelOf);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const maxY =
    Math.max(
      0.1,
      baselineFlexibility,
      ...measures.flatMap((m) => [...Object.values(m.styleStrength), ...Object.values(m.flexibility)]),
    ) * 1.1;
  const x = (i: number) => PAD.left + (epochs.length <= 1 ? plotW / 2 : (i * plotW) / (epochs.length - 1));
  const y = (v: number) => PAD.top + plotH - (v / maxY) * plotH;

  const lines: string[] = [];
  const series = (values: number[], colour: string, dash = '') => {
    if (values.length === 1) {
      lines.push(`<circle cx="${x(0)}" cy="${y(values[0]!)}" r="5" fill="${colour}"/>`);
      return;
    }
    const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    lines.push(`<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="3" ${dash}/>`);
    values.forEach((v, i) => lines.push(`<circle cx="${x(i)}" cy="${y(v)}" r="4" fill="${colour}"/>`));
  };
  strengths.forEach((s, si) => {
    const key = s.toFixed(1);
    series(
      measures.map((m) => m.styleStrength[key] ?? 0),
      STYLE_COLOURS[si % STYLE_COLOURS.length]!,
    );
    series(
      measures.map((m) => m.flexibility[key] ?? 0),
      FLEX_COLOURS[si % FLEX_COLOURS.length]!,
    );
  });
  const by = y(baselineFlexibility);
  lines.push(
    `<line x1="${PAD.left}" y1="${by}" x2="${PAD.left + plotW}" y2="${by}" stroke="#555" stroke-width="2" stroke-dasharray="8 6"/>`,
  );
  // Overtrained / undertrained markers under the axis.
  measures.forEach((m, i) => {
    if (m.verdict !== 'good')
      lines.push(
        `<rect x="${x(i) - 6}" y="${PAD.top + plotH + 30}" width="12" height="12" fill="${m.verdict === 'overtrained' ? '#d32f2f' : '#999'}"/>`,
      );
  });

  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">
<rect width="100%" height="100%" fill="#ffffff"/>
<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="#fafafa" stroke="#333"/>
${lines.join('\n')}
</svg>`;

  const overlays: OverlayOptions[] = [];
  const label = async (text: string, left: number, top: number, size = 16, colour = '#111111') => {
    const t = await renderText(text, { role: 'label', size, color: colour, align: 'left' });
    overlays.push({
      input: t.data,
      raw: { width: t.width, height: t.height, channels: 4 },
      left: Math.max(0, Math.round(left)),
      top: Math.max(0, Math.round(top)),
    });
    return t;
  };
  await label('Style strength (red) and flexibility (blue) by checkpoint', PAD.left, 12, 20);
  for (let i = 0; i < epochs.length; i++) await label(epochs[i]!, x(i) - 10, PAD.top + plotH + 6);
  for (const v of [0, maxY / 2, maxY]) await label(v.toFixed(2), 8, y(v) - 9);
  let legendTop = PAD.top;
  for (const [si, s] of strengths.entries()) {
    await label(
      `style @ ${s.toFixed(1)}`,
      W - PAD.right + 16,
      legendTop,
      15,
      STYLE_COLOURS[si % STYLE_COLOURS.length],
    );
    await label(
      `flexibility @ ${s.toFixed(1)}`,
      W - PAD.right + 16,
      legendTop + 20,
      15,
      FLEX_COLOURS[si % FLEX_COLOURS.length],
    );
    legendTop += 46;
  }
  await label('- - - no-LoRA flexibility', W - PAD.right + 16, legendTop + 6, 15, '#555555');
  await label('■ red: looks overtrained  ■ grey: looks undertrained', PAD.left, H - 22, 14, '#333333');

  return sharp(Buffer.from(svg)).composite(overlays).png({ compressionLevel: 6 }).toBuffer();
}
