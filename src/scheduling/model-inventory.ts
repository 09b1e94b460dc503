/**
 * The model files of a runner's ComfyUI beyond checkpoints and LoRAs — text encoders, VAEs,
 * ControlNets, CLIP vision and IPAdapter models — read from GET /models/{folder}, so presence can
 * announce them and routing (candidates.ts canRender) sends a FLUX render only to a runner that has
 * its text encoders and VAE.
 *
 * These lists change only when an operator copies files in, so the runner reads them at start, when
 * ComfyUI comes back, and then every few minutes, not at every heartbeat.
 */
import { UpstreamError } from '../errors.ts';
import type { RunnerModels } from './candidates.ts';

export type ModelFiles = Record<Exclude<keyof RunnerModels, 'checkpoints' | 'loras'>, string[]>;

/** Our name → ComfyUI model folders to try in order (older ComfyUI calls text_encoders "clip"). */
const FOLDERS: Record<keyof ModelFiles, readonly string[]> = {
  textEncoders: ['text_encoders', 'clip'],
  vaes: ['vae'],
  controlnets: ['controlnet'],
  clipVision: ['clip_vision'],
  ipadapters: ['ipadapter'],
};

export interface ModelLister {
  /** GET /models/{folder} (ComfyClient.getModels). */
  getModels(folder: string): Promise<string[]>;
}

/** A folder this ComfyUI does not know answers 404: nothing installed there (a custom pack's folder). */
function isUnknownFolder(err: unknown): boolean {
  return err instanceof UpstreamError && !err.retryable;
}

async function listFolder(lister: ModelLister, folders: readonly string[]): Promise<string[]> {
  for (const folder of folders) {
    try {
      return await lister.getModels(folder);
    } catch (err) {
      if (!isUnknownFolder(err)) throw err; // unreachable: keep what we knew
    }
  }
  return [];
}

/** Read every folder; throws when ComfyUI cannot be reached (the caller keeps its previous lists). */
export async function readModelFiles(lister: ModelLister): Promise<ModelFiles> {
  const keys = Object.keys(FOLDERS) as (keyof ModelFiles)[];
  const lists = await Promise.all(keys.map((key) => listFolder(lister, FOLDERS[key])));
  const files = {} as ModelFiles;
  keys.forEach((key, i) => {
    files[key] = lists[i] ?? [];
  });
  return files;
}
