/**
 * The loss chart posted with a training's status: loss over steps (the raw points faint, a smoothed
 * line bold, because per-step loss is noisy and the trend is what people read), epoch boundaries as
 * dashed lines, saved checkpoints as labelled dots. Drawn as SVG and rasterised by sharp (librsvg),
 * so it needs no canvas package; labels use the system's sans-serif font (DejaVu on our images).
 */
import sharp from 'sharp';
import { z } from 'zod';

export const LossPoint = z.object({
  step: z.number().int().min(0),
  epoch: z.number().int().min(0),
  loss: z.number().finite(),
});
export type LossPoint = z.infer<typeof LossPoint>;

export const LossChartInput = z.object({
  points: z.array(LossPoint),
  /** Saved checkpoints, marked on the line at their step. */
  checkpoints: z
    .array(z.object({ step: z.number().int().min(0), epoch: z.number().int().min(0) }))
    .default([]),
  /** The x axis runs to this step when known (so the chart shows how far there is to go). */
  totalSteps: z.number().int().min(0).optional(),
  title: z.string().max(120).default('Training loss'),
  width: z.number().int().min(200).max(4000).default(960),
  height: z.number().int().min(150).max(3000).default(480),
});
export type LossChartInput = z.input<typeof LossChartInput>;

const COLORS = {
  background: '#ffffff',
  grid: '#e3e6ea',
  axis: '#4a4f57',
  raw: '#9cc3ee',
  smooth: '#1f5fae',
  epoch: '#b8bec6',
  checkpoint: '#d9480f',
  text: '#22262b',
};

/** An exponential moving average; the weight adapts to the number of points so the line stays readable. */
export function smoothLoss(points: readonly LossPoint[]): number[] {
  const alpha = Math.min(1, Math.max(0.02, 8 / Math.max(points.length, 1)));
  const smoothed: number[] = [];
  let current: number | undefined;
  for (const point of points) {
    current = current === undefined ? point.loss : current + alpha * (point.loss - current);
    smoothed.push(current);
  }
  return smoothed;
}

/** Round tick values (1, 2, 5 × 10^n) covering [min, max]. */
export function niceTicks(min: number, max: number, wanted = 5): number[] {
  if (!(max > min)) return [min];
  const rough = (max - min) / wanted;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= rough) ?? 10) * magnitude;
  const ticks: number[] = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
    ticks.push(Number(value.toPrecision(12)));
  }
  return ticks;
}

function escapeXml(text: string): string {
  return text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!,
  );
}

function formatLoss(value: number): string {
  return Math.abs(value) >= 1 ? value.toFixed(2) : value.toPrecision(2);
}

/** The chart as an SVG document (exported for tests and for callers that want a vector). */
export function lossChartSvg(input: LossChartInput): string {
  const { points: rawPoints, checkpoints, totalSteps, title, width, height } = LossChartInput.parse(input);
  const points = [...rawPoints].sort((a, b) => a.step - b.step);
  const margin = { left: 72, right: 24, top: 48, bottom: 52 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="${COLORS.background}"/>`,
    `<text x="${margin.left}" y="30" font-family="DejaVu Sans, sans-serif" font-size="18" font-weight="bold" fill="${COLORS.text}">${escapeXml(title)}</text>`,
  ];

  const lastStep = points.at(-1)?.step ?? 0;
  const xMax = Math.max(1, totalSteps ?? 0, lastStep, ...checkpoints.map((c) => c.step));
  const losses = points.map((p) => p.loss);
  let yMin = losses.length ? Math.min(...losses) : 0;
  let yMax = losses.length ? Math.max(...losses) : 1;
  if (yMax - yMin < 1e-9) {
    yMin -= Math.max(Math.abs(yMin) * 0.1, 0.01);
    yMax += Math.max(Math.abs(yMax) * 0.1, 0.01);
  }
  const pad = (yMax - yMin) * 0.06;
  yMin -= pad;
  yMax += pad;
  const x = (step: number) => margin.left + (step / xMax) * plotW;
  const y = (loss: number) => margin.top + (1 - (loss - yMin) / (yMax - yMin)) * plotH;
  const font = `font-family="DejaVu Sans, sans-serif" font-size="12" fill="${COLORS.axis}"`;

  // Grid and tick labels.
  for (const tick of niceTicks(yMin, yMax)) {
    const ty = y(tick).toFixed(1);
    parts.push(
      `<line x1="${margin.left}" y1="${ty}" x2="${margin.left + plotW}" y2="${ty}" stroke="${COLORS.grid}" stroke-width="1"/>`,
    );
    parts.push(
      `<text x="${margin.left - 8}" y="${ty}" text-anchor="end" dominant-baseline="middle" ${font}>${formatLoss(tick)}</text>`,
    );
  }
  for (const tick of niceTicks(0, xMax)) {
    const tx = x(tick).toFixed(1);
    parts.push(
      `<line x1="${tx}" y1="${margin.top + plotH}" x2="${tx}" y2="${margin.top + plotH + 5}" stroke="${COLORS.axis}"/>`,
    );
    parts.push(`<text x="${tx}" y="${margin.top + plotH + 20}" text-anchor="middle" ${font}>${tick}</text>`);
  }
  parts.push(
    `<text x="${margin.left + plotW / 2}" y="${height - 10}" text-anchor="middle" ${font}>step</text>`,
    `<text x="16" y="${margin.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${margin.top + plotH / 2})" ${font}>loss</text>`,
  );

  // Epoch boundaries: where the epoch number changes between consecutive points.
  for (let i = 1; i < points.length; i++) {
    const previous = points[i - 1]!;
    const point = points[i]!;
    if (point.epoch === previous.epoch) continue;
    const ex = x((previous.step + point.step) / 2).toFixed(1);
    parts.push(
      `<line x1="${ex}" y1="${margin.top}" x2="${ex}" y2="${margin.top + plotH}" stroke="${COLORS.epoch}" stroke-dasharray="4 4"/>`,
    );
    parts.push(
      `<text x="${Number(ex) + 3}" y="${margin.top + 12}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="${COLORS.axis}">e${point.epoch}</text>`,
    );
  }

  // The loss: raw faint, smoothed bold.
  if (points.length > 0) {
    const raw = points.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${raw}" fill="none" stroke="${COLORS.raw}" stroke-width="1.5"/>`);
    const smoothed = smoothLoss(points);
    const line = points.map((p, i) => `${x(p.step).toFixed(1)},${y(smoothed[i]!).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${line}" fill="none" stroke="${COLORS.smooth}" stroke-width="3" stroke-linejoin="round"/>`,
    );

    // Checkpoints sit on the smoothed line at the nearest recorded step.
    for (const checkpoint of checkpoints) {
      let nearest = 0;
      for (let i = 1; i < points.length; i++) {
        if (Math.abs(points[i]!.step - checkpoint.step) < Math.abs(points[nearest]!.step - checkpoint.step))
          nearest = i;
      }
      const cx = x(checkpoint.step).toFixed(1);
      const cy = y(smoothed[nearest]!).toFixed(1);
      parts.push(
        `<circle cx="${cx}" cy="${cy}" r="6" fill="${COLORS.checkpoint}" stroke="#ffffff" stroke-width="2"/>`,
      );
      parts.push(
        `<text x="${cx}" y="${Number(cy) - 10}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="11" font-weight="bold" fill="${COLORS.checkpoint}">e${checkpoint.epoch}</text>`,
      );
    }
  }

  // Axes last so lines never cover them.
  parts.push(
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="${COLORS.axis}" stroke-width="1.5"/>`,
    `<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}" stroke="${COLORS.axis}" stroke-width="1.5"/>`,
  );
  const last = points.at(-1);
  if (last) {
    parts.push(
      `<text x="${width - margin.right}" y="30" text-anchor="end" font-family="DejaVu Sans, sans-serif" font-size="13" fill="${COLORS.text}">step ${last.step}${totalSteps ? `/${totalSteps}` : ''} · loss ${formatLoss(last.loss)}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** The chart as a PNG of exactly `width` × `height` pixels. */
export async function renderLossChart(input: LossChartInput): Promise<Buffer> {
  const svg = lossChartSvg(input);
  return sharp(Buffer.from(svg), { density: 72 })
    .flatten({ background: COLORS.background })
    .png({ compressionLevel: 6 })
    .toBuffer();
}
