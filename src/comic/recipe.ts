import { z } from 'zod';

/**
 * A RenderRecipe holds everything needed to remake one panel image exactly: the model files, the
 * prompts, the LoRA stack, the size, the sampler settings and the seed. It is stored per render
 * (renders.recipe, jsonb), embedded in the output PNG, and turned into a ComfyUI graph by
 * src/gpu/workflow.ts — or drawn as a storyboard sketch when no ComfyUI is configured.
 */
export const MODEL_FAMILIES = [
  'illustrious',
  'noobai',
  'flux',
  'flux-schnell',
  'flux2',
  'sdxl',
  'pony',
  'playground',
  'sd35-large',
  'sd35-medium',
  // Experimental: refused unless ENABLE_EXPERIMENTAL_FAMILIES names them (see src/comic/families.ts).
  'ponyv7',
] as const;
export const ModelFamily = z.enum(MODEL_FAMILIES);
export type ModelFamily = z.infer<typeof ModelFamily>;

/** Model file names as ComfyUI lists them (relative to their model folder). */
const modelFile = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !s.includes('..') && !s.startsWith('/') && !s.includes('\0'), {
    message: 'a model file name relative to its ComfyUI folder',
  });

export const SdxlModels = z.object({
  kind: z.literal('checkpoint'),
  checkpoint: modelFile,
});
export const FluxModels = z.object({
  kind: z.literal('flux'),
  unet: modelFile,
  weightDtype: z.enum(['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2']),
  clipT5: modelFile,
  clipL: modelFile,
  vae: modelFile,
});
/** FLUX.2: one diffusion model, one Mistral text encoder (CLIPLoader type flux2), its own VAE. */
export const Flux2Models = z.object({
  kind: z.literal('flux2'),
  unet: modelFile,
  weightDtype: z.enum(['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2']),
  textEncoder: modelFile,
  vae: modelFile,
});
/**
 * SD 3.5: a checkpoint for the MMDiT and VAE; the text encoders come from TripleCLIPLoader when the
 * checkpoint holds none (sd3.5_large.safetensors), or from the checkpoint itself when null.
 */
export const Sd3Models = z.object({
  kind: z.literal('sd3'),
  checkpoint: modelFile,
  textEncoders: z.object({ clipL: modelFile, clipG: modelFile, t5: modelFile }).nullable(),
});
export const RecipeModels = z.discriminatedUnion('kind', [SdxlModels, FluxModels, Flux2Models, Sd3Models]);
export type RecipeModels = z.infer<typeof RecipeModels>;

export const LoraRef = z.object({
  /** File name under ComfyUI's models/loras (how the LoraLoader names it). */
  name: modelFile,
  strength: z.number().min(-4).max(4),
  /** Artifact-store key the runner installs the file from when ComfyUI lacks it. */
  artifactKey: z.string().min(1).max(512).nullable(),
  /** The trigger word the prompt already contains (kept for the record). */
  trigger: z.string().max(80).nullable(),
  /** sha256 of the file when known, so a rebuild can tell it runs on different weights. */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
});
export type LoraRef = z.infer<typeof LoraRef>;

export const ControlNetRef = z.object({
  model: modelFile,
  /** Artifact-store key of the control image, uploaded to ComfyUI through /upload/image. */
  imageKey: z.string().min(1).max(512),
  strength: z.number().min(0).max(10),
  startPercent: z.number().min(0).max(1),
  endPercent: z.number().min(0).max(1),
});
export type ControlNetRef = z.infer<typeof ControlNetRef>;

export const ReferenceImage = z.object({
  /** Artifact-store key of the reference image, uploaded through /upload/image. */
  imageKey: z.string().min(1).max(512),
  /** Whom or what it shows, for people reading the recipe (a character's cast name). */
  label: z.string().max(80),
  /**
   * IPAdapter weight on SDXL-family graphs (ComfyUI_IPAdapter_plus): lower for wide shots, higher for
   * close-ups. Absent: the family's own reference mechanism decides (FLUX.2 ReferenceLatent has none).
   */
  weight: z.number().min(0).max(1.5).optional(),
});
export type ReferenceImage = z.infer<typeof ReferenceImage>;

export const DrawnText = z.object({
  kind: z.enum(['speech', 'thought', 'shout', 'whisper', 'caption', 'sfx']),
  /** Who speaks (null for captions and sound effects). */
  speaker: z.string().max(80).nullable(),
  text: z.string().min(1).max(240),
});
export type DrawnText = z.infer<typeof DrawnText>;

/** What the panel is, for the storyboard renderer and for people reading the recipe. */
export const PanelBrief = z.object({
  comicId: z.string().min(1).max(64),
  page: z.number().int().min(1),
  panel: z.number().int().min(1),
  attempt: z.number().int().min(0),
  shot: z.string(),
  angle: z.string(),
  setting: z.string(),
  action: z.string(),
  characters: z.array(z.object({ name: z.string(), position: z.enum(['left', 'centre', 'right']) })),
});
export type PanelBrief = z.infer<typeof PanelBrief>;

export const RenderRecipe = z.object({
  version: z.literal(1),
  family: ModelFamily,
  /** NoobAI v-pred checkpoints need ModelSamplingDiscrete(v_prediction, zsnr). */
  vPrediction: z.boolean(),
  models: RecipeModels,
  positive: z.string().max(4000),
  negative: z.string().max(4000),
  loras: z.array(LoraRef).max(8),
  width: z.number().int().min(256).max(2048).multipleOf(8),
  height: z.number().int().min(256).max(2048).multipleOf(8),
  sampler: z.string().min(1).max(64),
  scheduler: z.string().min(1).max(64),
  steps: z.number().int().min(1).max(150),
  /** Classifier-free guidance for SDXL; for FLUX this is 1 and `guidance` is used. */
  cfg: z.number().min(0).max(30),
  /** FLUX guidance (FluxGuidance node); null for SDXL families. */
  guidance: z.number().min(0).max(100).nullable(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Candidates rendered for this panel in one go (EmptyLatentImage batch_size). */
  candidates: z.number().int().min(1).max(4),
  controlNet: ControlNetRef.nullable(),
  panel: PanelBrief,
  /**
   * FLUX.2 multi-reference conditioning (character sheets): each image is uploaded, encoded by the
   * VAE and chained through ReferenceLatent. Absent on older recipes.
   */
  references: z.array(ReferenceImage).max(4).optional(),
  /**
   * Set by the renderer on the copy embedded in the image: false when the recipe had references but
   * its ComfyUI could not use them (no IPAdapter node pack), so the panel was drawn from text and
   * LoRAs only. Absent when nothing was decided.
   */
  referencesApplied: z.boolean().optional(),
  /**
   * Lettering the model paints itself (balloons set "drawn by the model"); the prompt already holds
   * it, this keeps it on record. Only FLUX.2 renders legible text; absent on older recipes.
   */
  drawnText: z.array(DrawnText).max(8).optional(),
});
export type RenderRecipe = z.infer<typeof RenderRecipe>;

/** The main weights file of a recipe (checkpoint or diffusion model), for logs, metadata and routing. */
export function primaryModelFile(models: RecipeModels): string {
  return models.kind === 'checkpoint' || models.kind === 'sd3' ? models.checkpoint : models.unet;
}
