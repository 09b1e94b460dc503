import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { measuresChart } from '../src/evaluation/chart.ts';
import { composeGridParts } from '../src/evaluation/grid.ts';
import { measure, rankByOvertraining, thumbnail, type Thumb } from '../src/evaluation/measures.ts';
import { EVAL_STRENGTHS, evalLoraName, loraChanges, planEvaluation } from '../src/evaluation/plan.ts';

const SIZE = 96;

/** A distinct "scene" per prompt: shapes at different places. */
function scene(prompt: number): string {
  const shapes = [
    `<circle cx="20" cy="25" r="16" fill="#222"/><rect x="55" y="55" width="35" height="35" fill="#888"/>`,
    `<rect x="5" y="60" width="86" height="20" fill="#333"/><circle cx="70" cy="20" r="12" fill="#666"/>`,
    `<polygon points="10,90 48,8 86,90" fill="#444"/>`,
    `<circle cx="48" cy="48" r="30" fill="#111"/><circle cx="48" cy="48" r="12" fill="#eee"/>`,
  ];
  return shapes[prompt % shapes.length]!;
}

/** The "style" a LoRA paints: one fixed picture; opacity = how much it dominates. */
const STYLE = `<rect width="96" height="48" fill="#000"/><rect y="48" width="96" height="48" fill="#fff"/><circle cx="70" cy="70" r="14" fill="#555"/>`;

async function image(prompt: number, styleOpacity: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}"><rect width="100%" height="100%" fill="#fff"/>${scene(prompt)}<g opacity="${styleOpacity}">${STYLE}</g></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

describe('evaluation measures', () => {
  it('rank a synthetic overtrained series (outputs converging across prompts) as overtrained', async () => {
    const prompts = [0, 1, 2, 3];
    const baseline: Thumb[] = await Promise.all(prompts.map(async (p) => thumbnail(await image(p, 0))));
    // Epoch 1 barely moves, epoch 2 is a visible style, epoch 3 paints the same picture whatever the prompt.
    const series = [
      { id: 'c1', epoch: 1, dominance: 0.02 },
      { id: 'c2', epoch: 2, dominance: 0.35 },
      { id: 'c3', epoch: 3, dominance: 0.97 },
    ];
    const checkpoints = await Promise.all(
      series.map(async (c) => ({
        id: c.id,
        epoch: c.epoch,
        thumbs: await Promise.all(
          EVAL_STRENGTHS.map((s) =>
            Promise.all(prompts.map(async (p) => thumbnail(await image(p, c.dominance * s)))),
          ),
        ),
      })),
    );
    const result = measure({ strengths: EVAL_STRENGTHS, baseline, checkpoints });
    const verdict = Object.fromEntries(result.checkpoints.map((m) => [m.epoch, m.verdict]));
    expect(verdict).toEqual({ 1: 'undertrained', 2: 'good', 3: 'overtrained' });
    expect(rankByOvertraining(result)[0]!.epoch).toBe(3);
    expect(result.checkpoints.find((m) => m.epoch === 3)!.note).toMatch(/overtrained/);
    // Style strength grows with the LoRA's strength; flexibility falls.
    const e3 = result.checkpoints.find((m) => m.epoch === 3)!;
    expect(e3.styleStrength['1.0']!).toBeGreaterThan(e3.styleStrength['0.4']!);
    expect(e3.flexibility['1.0']!).toBeLessThan(e3.flexibility['0.4']!);

    const chart = await measuresChart(result.checkpoints, EVAL_STRENGTHS, result.baselineFlexibility);
    const meta = await sharp(chart).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(600);
  });

  it('plans checkpoints × strengths × prompts plus a baseline, one LoRA load per checkpoint, fixed seeds per prompt', () => {
    const trainingId = '0b9f3c2a-1111-4222-8333-444455556666';
    const plan = planEvaluation({
      trainingId,
      trigger: 'inkwash',
      family: 'illustrious',
      checkpoints: [3, 1, 2].map((epoch) => ({
        id: `c${epoch}`,
        epoch,
        artifactKey: `trainings/t/e${epoch}.safetensors`,
      })),
    });
    expect(plan.cells).toHaveLength(4 + 3 * 4 * 4);
    expect(loraChanges(plan.cells)).toBe(3);
    expect(plan.checkpoints.map((c) => c.epoch)).toEqual([1, 2, 3]);
    for (const cell of plan.cells) expect(cell.recipe.positive.startsWith('inkwash, ')).toBe(true);
    const seeds = new Set(plan.cells.filter((c) => c.prompt === 2).map((c) => c.recipe.seed));
    expect(seeds.size).toBe(1);
    const lora = plan.cells.find((c) => c.checkpoint?.epoch === 2)!.recipe.loras[0]!;
    expect(lora).toMatchObject({
      name: evalLoraName(trainingId, 2),
      artifactKey: 'trainings/t/e2.safetensors',
    });
    expect(lora.name).toBe('cm_0b9f3c2a_e2.safetensors');
    expect(plan.cells.filter((c) => c.checkpoint === null).every((c) => c.recipe.loras.length === 0)).toBe(
      true,
    );
  });

  it('splits a grid that does not fit the upload limit into parts that each fit', async () => {
    const noisy = await sharp(
      Buffer.from(Array.from({ length: 256 * 256 * 3 }, (_, i) => (i * 7919) % 251)),
      {
        raw: { width: 256, height: 256, channels: 3 },
      },
    )
      .png()
      .toBuffer();
    const spec = {
      title: 'inkwash · prompt 1',
      rowLabels: ['epoch 1', 'epoch 2', 'epoch 3', 'epoch 4'],
      columnLabels: ['no LoRA', 'strength 0.4', 'strength 0.6', 'strength 0.8', 'strength 1.0'],
      cells: Array.from({ length: 4 }, () => Array.from({ length: 5 }, () => noisy)),
      cellSize: 256,
    };
    const [whole] = await composeGridParts(spec, 50 * 1024 * 1024);
    expect(whole!.rows).toEqual([0, 3]);
    const limit = Math.floor(whole!.data.length * 0.6);
    const parts = await composeGridParts(spec, limit);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(part.data.length).toBeLessThanOrEqual(limit);
    expect(parts.at(-1)!.rows[1]).toBe(3);
    const meta = await sharp(parts[0]!.data).metadata();
    // Split by rows, not shrunk: each part keeps full-size cells (the labels' gutter plus 5 cells).
    expect(meta.width).toBe(whole!.width);
    expect(meta.width).toBeGreaterThan(5 * spec.cellSize);
  });
});
