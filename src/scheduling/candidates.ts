/**
 * From a waiting render job to what the policy and the routing need: its lane, owner, models, age.
 */
import type { RenderRecipe } from '../comic/recipe.ts';
import type { RenderJob } from '../queue/payloads.ts';
import type { Candidate, Lane } from './policy.ts';

/** The model file a recipe loads first: the checkpoint (SDXL, SD 3.5) or the diffusion model (FLUX). */
export function checkpointOf(recipe: RenderRecipe): string {
  const models = recipe.models;
  return 'checkpoint' in models ? models.checkpoint : models.unet;
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

/** The models a runner has, as its presence announces them. */
export interface RunnerModels {
  checkpoints: readonly string[];
  loras: readonly string[];
}

/**
 * Whether a runner can render a recipe: it has every model file the graph loads, and each LoRA is
 * installed or installable from the artifact store (the runner copies it in before rendering).
 */
export function canRender(models: RunnerModels, recipe: RenderRecipe): boolean {
  const checkpoints = new Set(models.checkpoints);
  if (!checkpoints.has(checkpointOf(recipe))) return false;
  const loras = new Set(models.loras);
  return recipe.loras.every((l) => loras.has(l.name) || l.artifactKey !== null);
}
