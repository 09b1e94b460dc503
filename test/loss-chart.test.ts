/**
 * The loss chart: a PNG of the asked size that really shows the loss line and the checkpoints, and a
 * readable chart even for the first report (one point) or none.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { lossChartSvg, niceTicks, renderLossChart, type LossPoint } from '../src/training/chart.ts';

/** A decaying, noisy loss over 3 epochs of 100 steps, one point every 5 steps. */
function decayingLoss(): LossPoint[] {
  const points: LossPoint[] = [];
  for (let step = 5; step <= 300; step += 5) {
    const noise = Math.sin(step * 1.7) * 0.01;
    points.push({ step, epoch: Math.ceil(step / 100), loss: 0.05 + 0.1 * Math.exp(-step / 80) + noise });
  }
  return points;
}

/** Pixels close to an RGB colour. */
async function countColour(
  png: Buffer,
  [r, g, b]: [number, number, number],
  tolerance = 40,
): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let count = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    if (Math.abs(data[i]! - r) + Math.abs(data[i + 1]! - g) + Math.abs(data[i + 2]! - b) <= tolerance)
      count++;
  }
  return count;
}

describe('the loss chart', () => {
  it('is a PNG of the requested size with the loss line, epoch marks and checkpoint dots drawn', async () => {
    const png = await renderLossChart({
      points: decayingLoss(),
      checkpoints: [
        { step: 200, epoch: 2 },
        { step: 300, epoch: 3 },
      ],
      totalSteps: 400,
      width: 640,
      height: 320,
    });
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect([meta.width, meta.height]).toEqual([640, 320]);

    const stats = await sharp(png).stats();
    expect(stats.isOpaque).toBe(true);
    // Not blank: the channels vary, and the smoothed line (dark blue) and checkpoints (orange) are there.
    expect(stats.channels.every((c) => c.stdev > 5)).toBe(true);
    expect(await countColour(png, [0x1f, 0x5f, 0xae])).toBeGreaterThan(300);
    expect(await countColour(png, [0xd9, 0x48, 0x0f])).toBeGreaterThan(40);
  });

  it('labels the epochs and the last reading, and escapes the title', () => {
    const svg = lossChartSvg({ points: decayingLoss(), totalSteps: 400, title: 'Style <ink> & wash' });
    expect(svg).toContain('Style &lt;ink&gt; &amp; wash');
    expect(svg).toContain('>e2<');
    expect(svg).toContain('>e3<');
    expect(svg).toContain('step 300/400');
  });

  it('renders the first report and an empty history without failing', async () => {
    for (const points of [[{ step: 10, epoch: 1, loss: 0.12 }], []]) {
      const png = await renderLossChart({ points, width: 400, height: 200 });
      const meta = await sharp(png).metadata();
      expect([meta.width, meta.height]).toEqual([400, 200]);
    }
  });

  it('picks round tick values', () => {
    expect(niceTicks(0, 1000)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(niceTicks(0.043, 0.161)).toEqual([0.05, 0.1, 0.15]);
  });
});
