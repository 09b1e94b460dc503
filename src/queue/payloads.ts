import { z } from 'zod';
import { RenderRecipe } from '../comic/recipe.ts';
import type { QueueName } from './names.ts';

/**
 * The zod schema of every job's payload, one per queue. Payloads carry ids, not documents: the rows in
 * PostgreSQL are the truth, so a job re-enqueued after a crash reads the current state. The one
 * exception is the render recipe, which travels whole so the GPU runner needs no database round trip
 * to start rendering (it is also stored on the renders row).
 *
 * Both sides validate: the producer before adding (a bug throws at the call site), the consumer before
 * working (a job written by an older or foreign producer fails as unrecoverable, with the reason).
 */

/** Row ids as the database hands them out (UUIDs or similar); bounded, no control characters. */
const RowId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, 'an id of letters, digits, dash or underscore');

const PageNumber = z.number().int().min(1).max(8);
const PanelNumber = z.number().int().min(1).max(6);

/** `script`: write the script of a comic whose row (prompt, options) already exists. */
export const ScriptJob = z.strictObject({
  comicId: RowId,
});
export type ScriptJob = z.infer<typeof ScriptJob>;

/** `render`: one panel image on the GPU runner. */
export const RenderJob = z.strictObject({
  renderId: RowId,
  comicId: RowId,
  pageNumber: PageNumber,
  panelNumber: PanelNumber,
  /** 0 for the first render of a panel, +1 for every re-roll (the seed is derived from it). */
  attempt: z.number().int().min(0).max(10_000),
  recipe: RenderRecipe,
  /** A person is waiting on this render (a 🔁 re-roll); runners may serve it before batch work. */
  interactive: z.boolean(),
  /**
   * What the render is for, for the GPU scheduler (src/scheduling): a comic panel (default) or a cell
   * of a training's evaluation grid, which nobody watches live and so goes after comic work.
   */
  purpose: z.enum(['comic', 'evaluation']).optional(),
  /** Who asked (a Discord user id or similar), so the scheduler can share the GPU fairly by person. */
  owner: z.string().min(1).max(64).optional(),
});
export type RenderJob = z.infer<typeof RenderJob>;

/** `assemble-page`: letter a page from its panels' renders; the parent of those renders in a flow. */
export const AssemblePageJob = z.strictObject({
  comicId: RowId,
  pageNumber: PageNumber,
});
export type AssemblePageJob = z.infer<typeof AssemblePageJob>;

/** Post jobs of a training's evaluation and vote (src/bot/vote-poster.ts handles them). */
const EVALUATION_POSTS = [
  /** One test prompt's grid is composed (in `parts` images, each under the upload limit): post it. */
  z.strictObject({
    kind: z.literal('eval-grid'),
    trainingId: RowId,
    prompt: z.number().int().min(0).max(31),
    parts: z.number().int().min(1).max(16),
  }),
  /** The evaluation is finished: post the overview, the measures chart and the notes. */
  z.strictObject({ kind: z.literal('eval-summary'), trainingId: RowId }),
  /** Post the vote message with its buttons, or edit it with the current tally. */
  z.strictObject({ kind: z.literal('vote'), trainingId: RowId }),
  /** The vote's timer ran out (a delayed job): close it and register the winner as the guild's style. */
  z.strictObject({ kind: z.literal('vote-close'), trainingId: RowId }),
] as const;

/**
 * `post`: something the bot must deliver to Discord. The bot reads what to show from the database;
 * the payload says what changed.
 */
export const PostJob = z.discriminatedUnion('kind', [
  /** The script is written: post the storyboard page(s) so people can read while panels render. */
  z.strictObject({ kind: z.literal('storyboard'), comicId: RowId }),
  /** A panel's render landed: post its message with 🔁, or edit it after a re-roll. */
  z.strictObject({
    kind: z.literal('panel'),
    comicId: RowId,
    pageNumber: PageNumber,
    panelNumber: PanelNumber,
    renderId: RowId,
  }),
  /** A page is assembled (or re-assembled after a re-roll): post or edit its message. */
  z.strictObject({ kind: z.literal('page'), comicId: RowId, pageNumber: PageNumber }),
  /** Progress moved: refresh the comic's status message (the bot throttles the edits). */
  z.strictObject({ kind: z.literal('status'), comicId: RowId }),
  /** The comic cannot be finished: tell the channel why, in words a user can act on. */
  z.strictObject({ kind: z.literal('failed'), comicId: RowId, userMessage: z.string().min(1).max(1_800) }),
  /**
   * A training moved (progress, a checkpoint saved, finished, cancelled): refresh its status message
   * from trainings.progress; the bot throttles the edits and attaches a loss chart per new checkpoint.
   */
  z.strictObject({ kind: z.literal('training-status'), trainingId: RowId }),
  /** A training failed: tell its owner why and what to do (the advice), and refresh its status. */
  z.strictObject({
    kind: z.literal('training-failed'),
    trainingId: RowId,
    userMessage: z.string().min(1).max(1_800),
  }),
  ...EVALUATION_POSTS,
]);
export type PostJob = z.infer<typeof PostJob>;
/** The post jobs about a training (the rest are about a comic and carry its comicId). */
export type TrainingPostJob = Extract<PostJob, { kind: 'training-status' | 'training-failed' }>;
export type ComicPostJob = Exclude<PostJob, TrainingPostJob | EvaluationPostJob>;
/** The post jobs of a training's evaluation grids and vote (src/bot/vote-poster.ts). */
export type EvaluationPostJob = Extract<
  PostJob,
  { kind: 'eval-grid' | 'eval-summary' | 'vote' | 'vote-close' }
>;
export function isEvaluationPostJob(job: PostJob): job is EvaluationPostJob {
  return (
    job.kind === 'eval-grid' ||
    job.kind === 'eval-summary' ||
    job.kind === 'vote' ||
    job.kind === 'vote-close'
  );
}
export function isTrainingPostJob(job: PostJob): job is TrainingPostJob {
  return job.kind === 'training-status' || job.kind === 'training-failed';
}

/** `train`: train the LoRA of a trainings row (its config, dataset and base model are on the row). */
export const TrainJob = z.strictObject({
  trainingId: RowId,
});
export type TrainJob = z.infer<typeof TrainJob>;

/** `evaluate`: render and post the checkpoint × strength grid of a finished training. */
export const EvaluateJob = z.strictObject({
  trainingId: RowId,
});
export type EvaluateJob = z.infer<typeof EvaluateJob>;

export const PAYLOAD_SCHEMAS = {
  script: ScriptJob,
  render: RenderJob,
  'assemble-page': AssemblePageJob,
  post: PostJob,
  train: TrainJob,
  evaluate: EvaluateJob,
} as const satisfies Record<QueueName, z.ZodType>;

/** The payload type of a queue, e.g. `JobPayload<'render'>`. */
export type JobPayload<N extends QueueName> = z.infer<(typeof PAYLOAD_SCHEMAS)[N]>;

/**
 * Validate a payload for a queue. Returns the parsed payload or a one-line reason that names the
 * offending fields (it goes into the job's failedReason and the logs).
 */
export function parsePayload<N extends QueueName>(
  queue: N,
  data: unknown,
): { ok: true; payload: JobPayload<N> } | { ok: false; reason: string } {
  const result = PAYLOAD_SCHEMAS[queue].safeParse(data);
  if (result.success) return { ok: true, payload: result.data as JobPayload<N> };
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(payload)';
    return `${path}: ${issue.message}`;
  });
  return { ok: false, reason: `invalid ${queue} job payload: ${problems.join('; ')}` };
}
