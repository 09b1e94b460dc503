import { z } from 'zod';

/**
 * What an evaluation leaves on its training row (trainings.evaluation, jsonb): the blind labels, the
 * measures and the strength they recommend. Written by the evaluate job, read by the vote and by
 * `/style info`. Validated with zod wherever it is read back.
 */
export const CheckpointMeasures = z.object({
  checkpointId: z.string(),
  epoch: z.number().int(),
  /** Per strength (as a string key, "0.4"…): mean perceptual distance from the no-LoRA baseline, 0..1. */
  styleStrength: z.record(z.string(), z.number()),
  /** Per strength: mean pairwise distance between the outputs of different prompts, 0..1. */
  flexibility: z.record(z.string(), z.number()),
  verdict: z.enum(['undertrained', 'good', 'overtrained']),
  note: z.string().nullable(),
});
export type CheckpointMeasures = z.infer<typeof CheckpointMeasures>;

export const EvaluationRecord = z.object({
  /** Checkpoint ids in label order (A, B, C…) when the vote is blind; null shows epochs. */
  blindOrder: z.array(z.string()).nullable(),
  measures: z.array(CheckpointMeasures),
  /** Baseline flexibility (the prompts' own spread without any LoRA), for reference. */
  baselineFlexibility: z.number(),
  /** The strength the measures suggest per checkpoint id (style clearly present, content still flexible). */
  recommendedStrength: z.record(z.string(), z.number()),
  /** Artifact keys of the posted grids (one per prompt), the overview and the chart. */
  gridKeys: z.array(z.array(z.string())),
  overviewKey: z.string().nullable(),
  chartKey: z.string().nullable(),
});
export type EvaluationRecord = z.infer<typeof EvaluationRecord>;
