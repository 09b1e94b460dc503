import { z } from 'zod';
import { LIMITS } from '../agents/script-schema.ts';
import { ModelFamily } from '../comic/recipe.ts';

/**
 * Shapes of the jsonb columns that are not already described elsewhere (the script and the render
 * recipe have their own schemas). Values are parsed with these before they are written, so a row
 * never holds a shape the readers do not expect.
 */

export const ComicOptions = z.object({
  pages: z.number().int().min(LIMITS.pages.min).max(LIMITS.pages.max),
  panelsPerPage: z.number().int().min(LIMITS.panelsPerPage.min).max(LIMITS.panelsPerPage.max),
  /** A guild style name, or null for the base model's own look. */
  style: z.string().trim().min(1).max(64).nullable(),
  modelFamily: ModelFamily,
  /** Right-to-left reading order (manga). */
  rtl: z.boolean(),
  /**
   * Who letters the balloons: 'overlay' (the page assembler, the default; absent on older comics) or
   * 'model' (FLUX.2 paints them in the panel; see LETTERING_MODES).
   */
  lettering: z.enum(['overlay', 'model']).optional(),
});
export type ComicOptions = z.infer<typeof ComicOptions>;

/** `/comic new lettering:` and `comicmaster comic --lettering`. */
export const LETTERING_MODES = ['overlay', 'model'] as const;
export type LetteringMode = (typeof LETTERING_MODES)[number];

/** The page layout is owned by the page assembler; the database only keeps it as a JSON object. */
export const PageLayout = z.record(z.string(), z.unknown());
export type PageLayout = z.infer<typeof PageLayout>;

export const TrainingProgress = z.object({
  step: z.number().int().min(0),
  totalSteps: z.number().int().min(0),
  epoch: z.number().int().min(0),
  totalEpochs: z.number().int().min(0),
  loss: z.number().nullable(),
  /** Seconds left, as the trainer estimates it. */
  etaSeconds: z.number().min(0).nullable(),
  /** Sentences for the status message about how the run was prepared (e.g. how low-res images were upscaled). */
  notes: z.array(z.string()).optional(),
  /** The trainer's newest sample images (one per sample prompt, all of the same step), stored as artifacts. */
  samples: z
    .array(
      z.object({
        key: z.string().min(1),
        step: z.number().int().min(0),
        epoch: z.number().int().min(0),
        /** 0-based sample prompt index. */
        index: z.number().int().min(0),
      }),
    )
    .optional(),
});
export type TrainingProgress = z.infer<typeof TrainingProgress>;

/** The safetensors header metadata (kohya's ss_* keys and ours), all strings as the format stores them. */
export const CheckpointMetadata = z.record(z.string(), z.string());
export type CheckpointMetadata = z.infer<typeof CheckpointMetadata>;
