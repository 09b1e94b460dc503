/**
 * Dataset upscaling on the runner with a real super-resolution model instead of a plain resize:
 * LoadImage (after POST /upload/image) → UpscaleModelLoader + ImageUpscaleWithModel → SaveImage, as
 * ComfyUI's upscale-model example. The model is one the box has (GET /object_info lists the
 * models/upscale_models folder in UpscaleModelLoader's combo); Real-ESRGAN is preferred.
 */
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { ComicMasterError } from '../errors.ts';
import type { ComfyClient } from './comfy-client.ts';
import type { ApiGraph as ProtocolGraph } from './comfy-protocol.ts';
import { assertWorkflowValid, capabilitiesFrom, type ObjectInfo } from './object-info.ts';
import type { ApiGraph } from './workflow.ts';

/** Preference order among the files a box may have: anime-tuned Real-ESRGAN first for drawn art. */
const PREFERENCES: RegExp[] = [/realesrgan.*anime/i, /realesrgan/i, /esrgan/i, /.*/];

/** The upscale model to use among those installed, or null when the box has none. */
export function pickUpscaleModel(installed: readonly string[], preferred?: string): string | null {
  if (preferred) return installed.includes(preferred) ? preferred : null;
  for (const pattern of PREFERENCES) {
    const hit = [...installed].sort().find((name) => pattern.test(name));
    if (hit) return hit;
  }
  return null;
}

export const UPSCALE_NODE_IDS = { image: '1', model: '2', upscale: '3', save: '4' } as const;

export function buildUpscaleGraph(imageName: string, modelName: string, filenamePrefix: string): ApiGraph {
  const ids = UPSCALE_NODE_IDS;
  return {
    [ids.image]: { class_type: 'LoadImage', inputs: { image: imageName }, _meta: { title: 'Dataset image' } },
    [ids.model]: {
      class_type: 'UpscaleModelLoader',
      inputs: { model_name: modelName },
      _meta: { title: `Upscaler: ${modelName}` },
    },
    [ids.upscale]: {
      class_type: 'ImageUpscaleWithModel',
      inputs: { upscale_model: [ids.model, 0], image: [ids.image, 0] },
      _meta: { title: 'Upscale with model' },
    },
    [ids.save]: {
      class_type: 'SaveImage',
      inputs: { images: [ids.upscale, 0], filename_prefix: filenamePrefix },
      _meta: { title: 'Upscaled' },
    },
  };
}

export interface UpscaleOptions {
  runnerId: string;
  /** A specific file under models/upscale_models; by default the best one installed. */
  model?: string;
  /** SaveImage prefix; a unique one by default so ComfyUI's cache never hands back an old file. */
  filenamePrefix?: string;
  signal?: AbortSignal;
}

export interface UpscaleResult {
  png: Buffer;
  model: string;
  width: number;
  height: number;
}

/**
 * Upscales one image on the runner's ComfyUI. Throws a ComicMasterError saying what to install when
 * the box has no upscale nodes or no upscale model (the caller may then fall back to a resize and say so).
 */
export async function upscaleWithModel(
  client: ComfyClient,
  objectInfo: ObjectInfo,
  image: Buffer,
  options: UpscaleOptions,
): Promise<UpscaleResult> {
  const capabilities = capabilitiesFrom(objectInfo);
  if (!capabilities.nodes.has('UpscaleModelLoader') || !capabilities.nodes.has('ImageUpscaleWithModel')) {
    throw new ComicMasterError(
      'upscale_unavailable',
      'Low-resolution images cannot be upscaled on the GPU runner.',
      {
        operatorMessage: `runner ${options.runnerId}: ComfyUI lacks UpscaleModelLoader/ImageUpscaleWithModel (comfy_extras/nodes_upscale_model.py)`,
      },
    );
  }
  const model = pickUpscaleModel(capabilities.upscaleModels, options.model);
  if (!model) {
    const wanted = options.model ? `${options.model} is not installed` : 'no upscale model is installed';
    throw new ComicMasterError(
      'upscale_model_missing',
      'Low-resolution images cannot be upscaled on the GPU runner: it has no upscale model.',
      {
        operatorMessage: `runner ${options.runnerId}: ${wanted} in ComfyUI's models/upscale_models (installed: ${capabilities.upscaleModels.join(', ') || 'none'}); put e.g. RealESRGAN_x4plus_anime_6B.pth there`,
      },
    );
  }
  // A fresh name per call: the same bytes under the same name would be served from ComfyUI's cache.
  const token = randomUUID();
  const uploaded = await client.uploadImage(image, `dataset-${token}.png`, {
    subfolder: 'comicmaster-upscale',
  });
  const imageName = uploaded.subfolder ? `${uploaded.subfolder}/${uploaded.name}` : uploaded.name;
  const graph = buildUpscaleGraph(imageName, model, options.filenamePrefix ?? `comicmaster-upscale/${token}`);
  assertWorkflowValid(graph, objectInfo, options.runnerId);
  const result = await client.run(graph as ProtocolGraph, options.signal ? { signal: options.signal } : {});
  const output = result.images.find((i) => i.nodeId === UPSCALE_NODE_IDS.save) ?? result.images[0];
  if (!output) {
    throw new ComicMasterError('upscale_no_output', 'The GPU runner returned no upscaled image.', {
      operatorMessage: `runner ${options.runnerId}: prompt ${result.promptId} finished without a SaveImage output`,
    });
  }
  const meta = await sharp(output.data).metadata();
  return { png: output.data, model, width: meta.width, height: meta.height };
}
