/**
 * The evaluation plan of a training: every checkpoint × strength × test prompt, plus a no-LoRA baseline
 * per prompt, each as a full RenderRecipe with a fixed seed per prompt (so the columns of a grid differ
 * only by the LoRA and its strength).
 *
 * Order: the baseline first, then one checkpoint after another by epoch, so ComfyUI loads each LoRA
 * file once (a strength change only re-patches the loaded model). Within the last checkpoint the cells
 * go prompt by prompt, so the grids complete one after another and can be posted as they do.
 */
import { familyProfile } from '../comic/families.ts';
import { RenderRecipe, type LoraRef, type ModelFamily } from '../comic/recipe.ts';
import { seedFor } from '../comic/seed.ts';
import { ComicMasterError } from '../errors.ts';

/** The strengths every checkpoint is tried at (the seed research's protocol). */
export const EVAL_STRENGTHS = [0.4, 0.6, 0.8, 1.0] as const;

/** The built-in test scenes; each is led by the training's trigger word when rendered. */
export const DEFAULT_TEST_PROMPTS = [
  'a hero standing on a rooftop at night, city lights below, wind in the cape, full body',
  'two characters arguing in a cafe, coffee cups on the table, medium shot',
  'an action jump between buildings, dynamic pose, wide shot, motion lines',
  'close-up portrait, rim lighting, dramatic shadows, looking at viewer',
] as const;

/**
 * A guild's own test prompts (`/settings test-prompts`): at most this many, each at most this long.
 * Six prompts keep the overview legible; 200 characters leave room for the trigger in front.
 */
export const MAX_TEST_PROMPTS = 6;
export const TEST_PROMPT_MAX_LENGTH = 200;

/** Evaluation renders are square: one SDXL bucket, so every cell of a grid has the same shape. */
export const EVAL_SIZE = 1024;

export interface PlanCheckpoint {
  id: string;
  epoch: number;
  artifactKey: string;
}

export interface PlanInput {
  trainingId: string;
  trigger: string;
  family: ModelFamily;
  checkpoints: readonly PlanCheckpoint[];
  /** The guild's own test prompts; empty means the built-in set. */
  prompts?: readonly string[];
  /** Render size (tests use small images); default 1024. */
  size?: number;
  /** Sampling steps override (tests); default the family's. */
  steps?: number;
}

export interface EvalCell {
  /** 0-based index into the plan's prompts. */
  prompt: number;
  /** 0 is the baseline column, then one column per strength. */
  column: number;
  /** Null for the baseline. */
  checkpoint: PlanCheckpoint | null;
  strength: number | null;
  recipe: RenderRecipe;
  /** Where the render is stored; a cell whose key exists is not rendered again. */
  key: string;
}

export interface EvalPlan {
  trainingId: string;
  prompts: string[];
  /** Checkpoints by epoch: the grid rows. */
  checkpoints: PlanCheckpoint[];
  strengths: readonly number[];
  cells: EvalCell[];
}

export const evalKeys = {
  cell: (trainingId: string, prompt: number, checkpoint: PlanCheckpoint | null, strength: number | null) =>
    `evaluations/${trainingId}/cells/p${prompt + 1}-${checkpoint ? `e${checkpoint.epoch}-s${Math.round((strength ?? 0) * 100)}` : 'base'}.png`,
  grid: (trainingId: string, prompt: number, part: number) =>
    `evaluations/${trainingId}/grid-p${prompt + 1}-${part + 1}.png`,
  overview: (trainingId: string) => `evaluations/${trainingId}/overview.png`,
  chart: (trainingId: string) => `evaluations/${trainingId}/measures.png`,
};

/**
 * The LoRA file name a checkpoint gets in ComfyUI's loras folder. The training id prefix keeps two
 * trainings' "epoch 4" apart; the runner's installer copies the file there from the artifact store.
 */
export function evalLoraName(trainingId: string, epoch: number): string {
  const short = trainingId
    .replace(/[^A-Za-z0-9]/g, '')
    .slice(0, 8)
    .toLowerCase();
  return `cm_${short}_e${epoch}.safetensors`;
}

/** The prompt as rendered: the trigger first (added when the guild's prompt does not already lead with it). */
export function ledByTrigger(trigger: string, prompt: string): string {
  const trimmed = prompt.trim();
  return trimmed.toLowerCase().startsWith(trigger.toLowerCase()) ? trimmed : `${trigger}, ${trimmed}`;
}

export function planEvaluation(input: PlanInput): EvalPlan {
  if (input.checkpoints.length === 0) {
    throw new ComicMasterError('eval_no_checkpoints', 'This training produced no checkpoints to compare.', {
      operatorMessage: `training ${input.trainingId}: no checkpoints rows`,
    });
  }
  const prompts = (input.prompts && input.prompts.length > 0 ? input.prompts : DEFAULT_TEST_PROMPTS).map(
    (p) => ledByTrigger(input.trigger, p),
  );
  const checkpoints = [...input.checkpoints].sort((a, b) => a.epoch - b.epoch);
  const profile = familyProfile(input.family);
  const size = input.size ?? EVAL_SIZE;

  const recipeFor = (
    prompt: number,
    column: number,
    checkpoint: PlanCheckpoint | null,
    strength: number | null,
  ): RenderRecipe => {
    const text = prompts[prompt]!;
    const positive =
      profile.promptStyle === 'tags'
        ? [text, ...profile.qualityTags, ...profile.safePositive].join(', ')
        : `${text}. ${profile.label} rendering, detailed.`;
    const loras: LoraRef[] =
      checkpoint && strength !== null
        ? [
            {
              name: evalLoraName(input.trainingId, checkpoint.epoch),
              strength,
              artifactKey: checkpoint.artifactKey,
              trigger: input.trigger,
              sha256: null,
            },
          ]
        : [];
    return RenderRecipe.parse({
      version: 1,
      family: input.family,
      vPrediction: profile.vPrediction,
      models: profile.models,
      positive,
      negative: [...profile.negative, ...profile.safeNegative].join(', '),
      loras,
      width: size,
      height: size,
      sampler: profile.sampler,
      scheduler: profile.scheduler,
      steps: input.steps ?? profile.steps,
      cfg: profile.cfg,
      guidance: profile.guidance,
      // One seed per prompt: every column and row of a grid starts from the same noise.
      seed: seedFor(`eval-${input.trainingId}`, 1, prompt + 1, 0),
      candidates: 1,
      controlNet: null,
      panel: {
        comicId: `eval-${input.trainingId}`.slice(0, 64),
        page: prompt + 1,
        panel: column + 1,
        attempt: 0,
        shot: 'medium shot',
        angle: 'eye level',
        setting: text,
        action: checkpoint ? `epoch ${checkpoint.epoch} at ${strength}` : 'no LoRA (baseline)',
        characters: [],
      },
    });
  };

  const cell = (
    prompt: number,
    column: number,
    checkpoint: PlanCheckpoint | null,
    strength: number | null,
  ): EvalCell => ({
    prompt,
    column,
    checkpoint,
    strength,
    recipe: recipeFor(prompt, column, checkpoint, strength),
    key: evalKeys.cell(input.trainingId, prompt, checkpoint, strength),
  });

  const cells: EvalCell[] = [];
  for (let p = 0; p < prompts.length; p++) cells.push(cell(p, 0, null, null));
  checkpoints.forEach((checkpoint, index) => {
    const last = index === checkpoints.length - 1;
    const pairs: [number, number][] = [];
    if (last) {
      for (let p = 0; p < prompts.length; p++) EVAL_STRENGTHS.forEach((_, s) => pairs.push([p, s]));
    } else {
      EVAL_STRENGTHS.forEach((_, s) => {
        for (let p = 0; p < prompts.length; p++) pairs.push([p, s]);
      });
    }
    for (const [p, s] of pairs) cells.push(cell(p, s + 1, checkpoint, EVAL_STRENGTHS[s]!));
  });
  return { trainingId: input.trainingId, prompts, checkpoints, strengths: EVAL_STRENGTHS, cells };
}

/** How many times the LoRA file changes along the plan (for tests and logs). */
export function loraChanges(cells: readonly EvalCell[]): number {
  let changes = 0;
  let current: string | null = null;
  for (const c of cells) {
    const name = c.recipe.loras[0]?.name ?? null;
    if (name !== current) {
      if (name !== null) changes++;
      current = name;
    }
  }
  return changes;
}
