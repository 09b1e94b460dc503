/**
 * Low-resolution originals kept next to a prepared dataset. `prepareDataset` enlarges an image under
 * the target short side with a plain resize (so the dataset is usable as it is), and keeps its
 * original pixels (oriented, flattened, not resized) under `<out>/.lowres/` with a manifest. The GPU
 * runner, which has ComfyUI and its upscale models, re-makes those files with a super-resolution
 * model before training (src/gpu/dataset-upscale.ts). The folder starts with a dot and has no
 * `<repeats>_` prefix, so neither kohya nor our planner takes it for training images.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const LOWRES_DIR = '.lowres';
export const LOWRES_MANIFEST = 'manifest.json';

export const LowresEntry = z.object({
  /** The prepared (plainly enlarged) PNG, relative to the dataset folder: `10_ohwx/0003.png`. */
  file: z.string().regex(/^\d+_[A-Za-z0-9_-]+\/\d+\.png$/),
  /** The original pixels, relative to the dataset folder: `.lowres/0003.png`. */
  original: z.string().regex(/^\.lowres\/[^/\\]+\.png$/),
  originalWidth: z.number().int().positive(),
  originalHeight: z.number().int().positive(),
  /** The size the prepared file has (and a model-upscaled one is brought to). */
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});
export type LowresEntry = z.infer<typeof LowresEntry>;

export const LowresManifest = z.object({ version: z.literal(1), images: z.array(LowresEntry) });
export type LowresManifest = z.infer<typeof LowresManifest>;

export function lowresOriginalPath(stem: string): string {
  return `${LOWRES_DIR}/${stem}.png`;
}

export async function writeLowresManifest(datasetDir: string, images: LowresEntry[]): Promise<void> {
  const manifest: LowresManifest = { version: 1, images };
  await writeFile(join(datasetDir, LOWRES_DIR, LOWRES_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
}

/** The manifest of a dataset folder, or an empty list when it has none (no image was enlarged). */
export async function readLowresManifest(datasetDir: string): Promise<LowresEntry[]> {
  const text = await readFile(join(datasetDir, LOWRES_DIR, LOWRES_MANIFEST), 'utf8').catch(
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    },
  );
  if (text === null) return [];
  return LowresManifest.parse(JSON.parse(text)).images;
}
