import { z } from 'zod';
import { ComicScript } from '../agents/script-schema.ts';
import { ModelFamily, RenderRecipe } from './recipe.ts';

/**
 * Everything needed to re-make a comic exactly: the script, the page geometry and frames, every
 * panel's recipe (models, prompts, LoRAs, seed) and the sha256 of every file written, so a rebuild can
 * check it produced the same bytes. Written as manifest.json next to the pages.
 */
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const ManifestFrame = z.object({
  index: z.number().int().min(0),
  x: z.number().int(),
  y: z.number().int(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});

export const ManifestPanel = z.object({
  number: z.number().int().min(1),
  recipeFile: z.string(),
  imageFile: z.string(),
  imageSha256: sha256,
  recipe: RenderRecipe,
});

export const ManifestPage = z.object({
  number: z.number().int().min(1),
  file: z.string(),
  sha256,
  frames: z.array(ManifestFrame),
  panels: z.array(ManifestPanel),
});

/**
 * A model file a panel was rendered with and its sha256 when the renderer could tell it, so a rebuild
 * on a box with different weights says so instead of silently producing other pixels.
 */
export const ManifestModelFile = z.object({
  role: z.enum(['checkpoint', 'unet', 'clip', 'vae', 'lora', 'controlnet']),
  /** The file name as the recipe names it (relative to its ComfyUI model folder). */
  file: z.string().min(1),
  sha256: sha256.nullable(),
  /** Why the hash is missing, when it is. */
  note: z.string().nullable(),
});
export type ManifestModelFile = z.infer<typeof ManifestModelFile>;

export const ManifestModels = z.object({
  files: z.array(ManifestModelFile),
  note: z.string().nullable(),
});
export type ManifestModels = z.infer<typeof ManifestModels>;

export const ComicManifest = z.object({
  manifestVersion: z.literal(1),
  generator: z.string(),
  comicId: z.string(),
  story: z.string(),
  options: z.object({
    pages: z.number().int().nullable(),
    panelsPerPage: z.number().int().nullable(),
    model: ModelFamily,
    style: z.string().nullable(),
    rtl: z.boolean(),
  }),
  writer: z.object({
    kind: z.enum(['llm', 'template']),
    model: z.string().nullable(),
    notes: z.array(z.string()),
  }),
  renderer: z.object({ kind: z.enum(['comfyui', 'storyboard']), description: z.string() }),
  geometry: z.object({
    width: z.number().int(),
    height: z.number().int(),
    margin: z.number().int(),
    gutter: z.number().int(),
    border: z.number().int(),
  }),
  script: ComicScript,
  pages: z.array(ManifestPage),
  /** Absent in manifests written before model hashes were recorded. */
  models: ManifestModels.optional(),
});
export type ComicManifest = z.infer<typeof ComicManifest>;
