/**
 * Measures that help people judge a training, computed from the images on the CPU.
 *
 * The distance between two images is a structural one on small greyscale thumbnails: both are shrunk
 * to 32×32 (which keeps composition and large shapes, drops texture noise), normalised to zero mean and
 * unit variance (so a global brightness or contrast shift is not "style"), and compared by correlation:
 * distance = (1 − r) / 2, 0 for the same picture, about 0.5 for unrelated ones.
 *
 * - style strength (checkpoint, strength) = mean distance of each output from the baseline with the
 *   same prompt and seed: how far the LoRA moved the picture.
 * - flexibility (checkpoint, strength) = mean distance between the outputs of different prompts: an
 *   overtrained LoRA draws the same picture whatever the prompt, and this collapses toward 0.
 *
 * They advise; the vote decides.
 */
import sharp from 'sharp';
import type { CheckpointMeasures } from './record.ts';

export const THUMB_SIDE = 32;

export type Thumb = Float32Array;

/** A normalised greyscale thumbnail of an encoded image. */
export async function thumbnail(image: Buffer): Promise<Thumb> {
  const pixels = await sharp(image)
    .resize(THUMB_SIDE, THUMB_SIDE, { fit: 'fill', kernel: 'cubic' })
    .flatten({ background: '#ffffff' })
    .greyscale()
    .raw()
    .toBuffer();
  const n = THUMB_SIDE * THUMB_SIDE;
  const out = new Float32Array(n);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += pixels[i]!;
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) {
    const d = pixels[i]! - mean;
    out[i] = d;
    variance += d * d;
  }
  // A flat image has no structure: leave it at zero (its correlation with anything is then 0).
  const std = Math.sqrt(variance / n);
  if (std > 1e-6) for (let i = 0; i < n; i++) out[i] = out[i]! / std;
  return out;
}

/** (1 − correlation) / 2 of two normalised thumbnails, in [0, 1]. */
export function distance(a: Thumb, b: Thumb): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  const r = Math.max(-1, Math.min(1, dot / a.length));
  return (1 - r) / 2;
}

function meanPairwise(thumbs: readonly Thumb[]): number {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < thumbs.length; i++) {
    for (let j = i + 1; j < thumbs.length; j++) {
      sum += distance(thumbs[i]!, thumbs[j]!);
      pairs++;
    }
  }
  return pairs === 0 ? 0 : sum / pairs;
}

export interface MeasureInput {
  strengths: readonly number[];
  /** Baseline thumbnail per prompt. */
  baseline: readonly Thumb[];
  /** Checkpoints by epoch, each with thumbs[strengthIndex][promptIndex]. */
  checkpoints: readonly { id: string; epoch: number; thumbs: readonly (readonly Thumb[])[] }[];
}

export interface Thresholds {
  /** Flexibility at full strength below this share of the baseline's own spread: overtrained. */
  collapseRatio: number;
  /** Style strength at full strength below this: undertrained (the LoRA barely changes anything). */
  minStyleStrength: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { collapseRatio: 0.5, minStyleStrength: 0.04 };

export interface MeasureResult {
  baselineFlexibility: number;
  checkpoints: CheckpointMeasures[];
  /** The strength the measures suggest per checkpoint id. */
  recommendedStrength: Record<string, number>;
}

export const strengthKey = (s: number) => s.toFixed(1);

export function measure(input: MeasureInput, thresholds: Thresholds = DEFAULT_THRESHOLDS): MeasureResult {
  const baselineFlexibility = meanPairwise(input.baseline);
  const recommendedStrength: Record<string, number> = {};
  const checkpoints = input.checkpoints.map((ckpt): CheckpointMeasures => {
    const styleStrength: Record<string, number> = {};
    const flexibility: Record<string, number> = {};
    let best = { strength: input.strengths[0] ?? 1, score: -Infinity };
    input.strengths.forEach((s, si) => {
      const outputs = ckpt.thumbs[si] ?? [];
      const moved = outputs.map((t, p) => (input.baseline[p] ? distance(t, input.baseline[p]) : 0));
      const style = moved.length ? moved.reduce((a, b) => a + b, 0) / moved.length : 0;
      const flex = meanPairwise(outputs);
      styleStrength[strengthKey(s)] = style;
      flexibility[strengthKey(s)] = flex;
      // Style clearly present, content still flexible: the product, flexibility counted up to the
      // baseline's own spread (more spread than the base model's is not better).
      const kept = baselineFlexibility > 0 ? Math.min(1, flex / baselineFlexibility) : 1;
      const score = style * kept * kept;
      if (score > best.score + 1e-9) best = { strength: s, score };
    });
    recommendedStrength[ckpt.id] = best.strength;

    const full = strengthKey(input.strengths.at(-1) ?? 1);
    const flexAtFull = flexibility[full] ?? 0;
    const styleAtFull = styleStrength[full] ?? 0;
    let verdict: CheckpointMeasures['verdict'] = 'good';
    let note: string | null = null;
    if (baselineFlexibility > 0 && flexAtFull < thresholds.collapseRatio * baselineFlexibility) {
      verdict = 'overtrained';
      note = `looks overtrained: at strength ${full} the prompts converge (flexibility ${flexAtFull.toFixed(3)} vs ${baselineFlexibility.toFixed(3)} without the LoRA)`;
    } else if (styleAtFull < thresholds.minStyleStrength) {
      verdict = 'undertrained';
      note = `looks undertrained: even at strength ${full} the pictures barely move from the baseline (style strength ${styleAtFull.toFixed(3)})`;
    }
    return { checkpointId: ckpt.id, epoch: ckpt.epoch, styleStrength, flexibility, verdict, note };
  });
  return { baselineFlexibility, checkpoints, recommendedStrength };
}

/**
 * Checkpoints ranked by how overtrained they look, most first: by how far flexibility at full strength
 * fell below the baseline's spread.
 */
export function rankByOvertraining(result: MeasureResult): CheckpointMeasures[] {
  const full = (m: CheckpointMeasures) => {
    const keys = Object.keys(m.flexibility).sort((a, b) => Number(a) - Number(b));
    return m.flexibility[keys.at(-1) ?? '1.0'] ?? 0;
  };
  return [...result.checkpoints].sort((a, b) => full(a) - full(b));
}
