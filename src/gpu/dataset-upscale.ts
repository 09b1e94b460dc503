/**
 * Before a training, on the GPU runner: re-make each image `prepareDataset` enlarged with a plain
 * resize (listed in `<dataset>/.lowres/manifest.json`) from its original pixels with a
 * super-resolution model on this runner's ComfyUI (Real-ESRGAN preferred, src/gpu/upscale.ts),
 * brought to the prepared file's size, replacing that file. A runner without ComfyUI, the upscale
 * nodes or an upscale model keeps the plain resize and says so in a note for the training's status.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import sharp from 'sharp';
import { readLowresManifest } from '../dataset/lowres.ts';
import { ComicMasterError } from '../errors.ts';
import type { ComfyClient } from './comfy-client.ts';
import { capabilitiesFrom, type ObjectInfo } from './object-info.ts';
import { pickUpscaleModel, upscaleWithModel } from './upscale.ts';

export interface DatasetUpscaleOutcome {
  /** 'none': nothing was enlarged; 'model': re-made with `model`; 'resized': the plain resize is kept. */
  kind: 'none' | 'model' | 'resized';
  images: number;
  model?: string;
  /** A sentence for the training's status (absent when nothing was enlarged). */
  note?: string;
}

/** How the runner reaches its ComfyUI; null when it has none (COMFYUI_URL unset). */
export interface UpscaleComfy {
  client: ComfyClient;
  objectInfo: ObjectInfo;
}

export async function upscaleDatasetOnRunner(
  datasetDir: string,
  comfy: UpscaleComfy | null,
  options: { runnerId: string; logger: Logger; signal?: AbortSignal },
): Promise<DatasetUpscaleOutcome> {
  const entries = await readLowresManifest(datasetDir);
  if (entries.length === 0) return { kind: 'none', images: 0 };
  const count = `${entries.length} low-resolution image${entries.length === 1 ? '' : 's'}`;
  const kept = (why: string): DatasetUpscaleOutcome => ({
    kind: 'resized',
    images: entries.length,
    note: `⚠️ ${count} kept their plain resize: ${why}.`,
  });
  if (!comfy) return kept('this runner has no ComfyUI to upscale them with a model');
  const capabilities = capabilitiesFrom(comfy.objectInfo);
  const model = pickUpscaleModel(capabilities.upscaleModels);
  if (
    !model ||
    !capabilities.nodes.has('UpscaleModelLoader') ||
    !capabilities.nodes.has('ImageUpscaleWithModel')
  ) {
    options.logger.warn(
      { installed: capabilities.upscaleModels },
      'no upscale model on this ComfyUI: dataset images keep their plain resize',
    );
    return kept(
      "the GPU runner has no upscale model (an operator can put Real-ESRGAN in ComfyUI's models/upscale_models)",
    );
  }

  try {
    for (const entry of entries) {
      const original = await readFile(join(datasetDir, entry.original));
      const upscaled = await upscaleWithModel(comfy.client, comfy.objectInfo, original, {
        runnerId: options.runnerId,
        model,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      // The model scales by its own factor (×2, ×4): bring it to the size the dataset was planned at.
      const png = await sharp(upscaled.png)
        .resize(entry.width, entry.height, { fit: 'fill', kernel: 'lanczos3' })
        .flatten({ background: '#ffffff' })
        .png({ compressionLevel: 3, adaptiveFiltering: false })
        .toBuffer();
      await writeFile(join(datasetDir, entry.file), png);
    }
  } catch (error) {
    // A failed upscale must not cost the training: the plain resize is still in place for the rest.
    if (!(error instanceof ComicMasterError)) throw error;
    options.logger.warn({ err: error, model }, 'upscaling the dataset failed; keeping the plain resize');
    return kept(`upscaling with ${model} failed (${error.userMessage})`);
  }
  options.logger.info(
    { model, images: entries.length },
    'low-resolution dataset images re-made with an upscale model',
  );
  return {
    kind: 'model',
    images: entries.length,
    model,
    note: `🔍 ${count} upscaled with ${model} on the GPU runner.`,
  };
}
