/**
 * From a waiting render job to what the policy and the routing need: its lane, owner, models, age.
 */
import { primaryModelFile, type RenderRecipe } from '../comic/recipe.ts';
import type { RenderJob } from '../queue/payloads.ts';
import type { Candidate, Lane } from './policy.ts';

/** The model file a recipe loads first: the checkpoint (SDXL, SD 3.5) or the diffusion model (FLUX). */
export function checkpointOf(recipe: RenderRecipe): string {
  return primaryModelFile(recipe.models);
}

/**
 * The fairness key of a comic's renders: the person who made it, within their guild (CLI comics have
 * no guild). One member with two comics then gets one turn, not two. Bounded to RenderJob.owner's 64.
 */
export function renderOwner(by: { guildId: string | null; userId: string }): string {
  return (by.guildId ? `${by.guildId}:${by.userId}` : by.userId).slice(0, 64);
}

/** The LoRA stack as ComfyUI patches it (order and strength matter; '' for none). */
export function loraSetOf(recipe: RenderRecipe): string {
  return recipe.loras.map((l) => `${l.name}@${l.strength}`).join('|');
}

export function laneOf(job: RenderJob): Lane {
  if (job.interactive) return 'interactive';
  if (job.purpose === 'evaluation') return 'evaluation';
  if (job.pageNumber === 1 && job.panelNumber === 1 && job.attempt === 0) return 'first-panel';
  return 'comic';
}

export function candidateOf(jobId: string, payload: RenderJob, enqueuedAt: number): Candidate {
  return {
    jobId,
    lane: laneOf(payload),
    owner: payload.owner ?? payload.comicId,
    checkpoint: checkpointOf(payload.recipe),
    loraSet: loraSetOf(payload.recipe),
    enqueuedAt,
  };
}

/**
 * The models a runner has, as its presence announces them. `checkpoints` holds checkpoints and
 * diffusion models (both are what a recipe loads first). The other lists are ComfyUI model folders
 * (GET /models/{folder}); a list that is absent (an older runner that does not announce it) is not
 * checked, an empty one means none installed.
 */
export interface RunnerModels {
  checkpoints: readonly string[];
  loras: readonly string[];
  textEncoders?: readonly string[] | undefined;
  vaes?: readonly string[] | undefined;
  controlnets?: readonly string[] | undefined;
  clipVision?: readonly string[] | undefined;
  ipadapters?: readonly string[] | undefined;
}

/** A model file, or a kind of file found by pattern (IPAdapter's unified loader picks by preset). */
export interface RequiredModel {
  folder: 'checkpoints' | 'textEncoders' | 'vaes' | 'controlnets' | 'clipVision' | 'ipadapters';
  name: string | RegExp;
}

/**
 * What IPAdapterUnifiedLoader's preset "PLUS (high strength)" (src/gpu/workflow.ts) looks for on SDXL:
 * ip-adapter-plus_sdxl_vit-h with the CLIP ViT-H-14 vision encoder, matched by name the way the node
 * pack does (ComfyUI_IPAdapter_plus utils: get_ipadapter_file / get_clipvision_file).
 */
const IPADAPTER_PLUS_SDXL = /plus.sdxl.vit.h\.(safetensors|bin)$/i;
const CLIP_VISION_VIT_H = /ViT.H.14/i;

/** Every model file the recipe's graph loads (LoRAs aside: those can be installed from the store). */
export function requiredModels(recipe: RenderRecipe): RequiredModel[] {
  const m = recipe.models;
  const out: RequiredModel[] = [{ folder: 'checkpoints', name: primaryModelFile(m) }];
  if (m.kind === 'flux') {
    out.push(
      { folder: 'textEncoders', name: m.clipT5 },
      { folder: 'textEncoders', name: m.clipL },
      { folder: 'vaes', name: m.vae },
    );
  } else if (m.kind === 'flux2') {
    out.push({ folder: 'textEncoders', name: m.textEncoder }, { folder: 'vaes', name: m.vae });
  } else if (m.kind === 'sd3' && m.textEncoders) {
    const t = m.textEncoders;
    out.push(
      { folder: 'textEncoders', name: t.clipL },
      { folder: 'textEncoders', name: t.clipG },
      { folder: 'textEncoders', name: t.t5 },
    );
  }
  if (recipe.controlNet) out.push({ folder: 'controlnets', name: recipe.controlNet.model });
  // Character references on SDXL-family graphs go through IPAdapter (FLUX.2 uses its own VAE).
  if (m.kind === 'checkpoint' && (recipe.references?.length ?? 0) > 0) {
    out.push(
      { folder: 'clipVision', name: CLIP_VISION_VIT_H },
      { folder: 'ipadapters', name: IPADAPTER_PLUS_SDXL },
    );
  }
  return out;
}

function hasModel(models: RunnerModels, need: RequiredModel): boolean {
  const list = models[need.folder];
  if (list === undefined) return true; // not announced: cannot tell, do not hold the job back
  const { name } = need;
  return typeof name === 'string' ? list.includes(name) : list.some((file) => name.test(file));
}

/**
 * Whether a runner can render a recipe: it has every model file the graph loads (checkpoint or
 * diffusion model, text encoders, VAE, ControlNet, IPAdapter models for references), and each LoRA is
 * installed or installable from the artifact store (the runner copies it in before rendering).
 */
export function canRender(models: RunnerModels, recipe: RenderRecipe): boolean {
  if (!requiredModels(recipe).every((need) => hasModel(models, need))) return false;
  const loras = new Set(models.loras);
  return recipe.loras.every((l) => loras.has(l.name) || l.artifactKey !== null);
}
