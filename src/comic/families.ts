import { InputError } from '../errors.ts';
import type { ModelFamily, RecipeModels } from './recipe.ts';

/**
 * What we know about each base-model family: the default model files, how to sample it, how to talk
 * to it (Danbooru tags or plain sentences), and what it is good for. The prompt builder reads this;
 * nothing here depends on a particular runner — the runner's /object_info check catches a box that
 * lacks the files.
 */
export interface FamilyProfile {
  family: ModelFamily;
  label: string;
  /** Shown in help texts and the /comic new option description. */
  goodFor: string;
  /**
   * 'tags': comma-separated Danbooru tags (CLIP-L/G, anime-tuned bases). 'natural': sentences (T5,
   * Mistral). 'phrases': short descriptive phrases for bases trained on web captions (SDXL 1.0,
   * Playground), which know no Danbooru counts such as "1girl".
   */
  promptStyle: 'tags' | 'natural' | 'phrases';
  models: RecipeModels;
  /** NoobAI v-pred checkpoints need ModelSamplingDiscrete(v_prediction, zsnr) to sample right. */
  vPrediction: boolean;
  sampler: string;
  scheduler: string;
  steps: number;
  cfg: number;
  /** FLUX.1-dev's distilled guidance (FluxGuidance); null where the family uses plain CFG. */
  guidance: number | null;
  /** Put right after the style trigger. */
  qualityTags: readonly string[];
  /** Added to the positive prompt outside age-restricted channels (rating tags for tag models). */
  safePositive: readonly string[];
  /** Default negative prompt; empty for FLUX, which runs without CFG and so without a negative. */
  negative: readonly string[];
  /** Added to the negative outside age-restricted channels. */
  safeNegative: readonly string[];
  /** Tags put right after the quality tags (Pony's source_* tags); empty elsewhere. */
  sourceTags?: readonly string[];
  /** True when the model paints legible lettering, so a balloon may be "drawn by the model". */
  drawsText?: boolean;
  /** Playground v2.5 samples in EDM space: ModelSamplingContinuousEDM(edm_playground_v2.5). */
  edmPlayground?: boolean;
  /** SD 3.5 / AuraFlow sampling shift (ModelSamplingSD3 / ModelSamplingAuraFlow); null elsewhere. */
  samplingShift?: number | null;
  /** Set on families refused until an operator enables them: why they are off by default. */
  experimental?: { reason: string };
  /** What the family cannot do on this project's 24 GB cards (e.g. "render only: no training"). */
  limits?: string;
}

/** Lettering is added later by the page assembler; the model must not paint its own. */
const NO_LETTERING = ['speech bubble', 'text', 'watermark', 'signature', 'username', 'artist name', 'logo'];

const SDXL_SAFE_NEGATIVE = [
  'nsfw',
  'nude',
  'naked',
  'nipples',
  'explicit',
  'questionable',
  'sexual',
  'underwear',
  'lingerie',
  'cleavage',
  'gore',
];

export const FAMILIES: Readonly<Record<ModelFamily, FamilyProfile>> = {
  illustrious: {
    family: 'illustrious',
    label: 'Illustrious XL',
    goodFor:
      'anime and manga styles, clean line art, strong Danbooru tag control; the base most style LoRAs are trained on',
    promptStyle: 'tags',
    models: { kind: 'checkpoint', checkpoint: 'illustriousXL_v01.safetensors' },
    vPrediction: false,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: 28,
    cfg: 5.5,
    guidance: null,
    qualityTags: ['masterpiece', 'best quality', 'amazing quality', 'absurdres'],
    // Danbooru renamed "safe" to "general" in 2023; the training sets hold both.
    safePositive: ['general', 'safe'],
    negative: [
      'lowres',
      'worst quality',
      'bad quality',
      'bad anatomy',
      'bad hands',
      'extra digits',
      'fewer digits',
      'jpeg artifacts',
      'blurry',
      ...NO_LETTERING,
    ],
    safeNegative: SDXL_SAFE_NEGATIVE,
  },
  noobai: {
    family: 'noobai',
    label: 'NoobAI-XL (v-pred)',
    goodFor:
      'anime styles with a wide colour range and deep blacks (v-prediction), dark and high-contrast scenes',
    promptStyle: 'tags',
    models: { kind: 'checkpoint', checkpoint: 'noobaiXLVpred_v10.safetensors' },
    vPrediction: true,
    sampler: 'euler',
    scheduler: 'normal',
    steps: 28,
    cfg: 4.5,
    guidance: null,
    qualityTags: ['masterpiece', 'best quality', 'newest', 'absurdres', 'highres', 'very aesthetic'],
    safePositive: ['general', 'safe'],
    // NoobAI's usual negative also carries the date tags "old, early"; they are left out because
    // "old" fights characters such as "old man", and "newest" in the positive already steers the era.
    negative: [
      'worst quality',
      'low quality',
      'lowres',
      'bad anatomy',
      'bad hands',
      'mutated hands',
      'jpeg artifacts',
      ...NO_LETTERING,
    ],
    safeNegative: SDXL_SAFE_NEGATIVE,
  },
  flux: {
    family: 'flux',
    label: 'FLUX.1-dev',
    goodFor:
      'western comic and painterly styles, natural-language scenes with several people, readable composition',
    promptStyle: 'natural',
    models: {
      kind: 'flux',
      unet: 'flux1-dev.safetensors',
      weightDtype: 'fp8_e4m3fn',
      clipT5: 't5xxl_fp8_e4m3fn.safetensors',
      clipL: 'clip_l.safetensors',
      vae: 'ae.safetensors',
    },
    vPrediction: false,
    sampler: 'euler',
    scheduler: 'simple',
    steps: 20,
    cfg: 1,
    guidance: 3.5,
    qualityTags: [],
    safePositive: [],
    negative: [],
    safeNegative: [],
  },
  'flux-schnell': {
    family: 'flux-schnell',
    label: 'FLUX.1 schnell',
    goodFor: 'fast 4-step drafts: storyboard-quality previews of a page on the GPU before the real render',
    promptStyle: 'natural',
    models: {
      kind: 'flux',
      unet: 'flux1-schnell.safetensors',
      weightDtype: 'fp8_e4m3fn',
      clipT5: 't5xxl_fp8_e4m3fn.safetensors',
      clipL: 'clip_l.safetensors',
      vae: 'ae.safetensors',
    },
    vPrediction: false,
    sampler: 'euler',
    scheduler: 'simple',
    // schnell is timestep-distilled for 1–4 steps and has no guidance embedding: no FluxGuidance, cfg 1.
    steps: 4,
    cfg: 1,
    guidance: null,
    qualityTags: [],
    safePositive: [],
    negative: [],
    safeNegative: [],
  },
  flux2: {
    family: 'flux2',
    label: 'FLUX.2 dev',
    goodFor:
      'the strongest prompt following and legible lettering drawn by the model; character sheets as reference images',
    promptStyle: 'natural',
    // ComfyUI's FLUX.2 example files: the fp8-mixed weights fit a 24 GB card with the fp8 Mistral encoder.
    models: {
      kind: 'flux2',
      unet: 'flux2_dev_fp8mixed.safetensors',
      weightDtype: 'default',
      textEncoder: 'mistral_3_small_flux2_fp8.safetensors',
      vae: 'flux2-vae.safetensors',
    },
    vPrediction: false,
    sampler: 'euler',
    // Flux2Scheduler computes its own sigmas from steps and size; the scheduler name is not used.
    scheduler: 'simple',
    steps: 20,
    cfg: 1,
    guidance: 4,
    qualityTags: [],
    safePositive: [],
    negative: [],
    safeNegative: [],
    drawsText: true,
  },
  sdxl: {
    family: 'sdxl',
    label: 'SDXL 1.0 base',
    goodFor:
      'general-purpose illustration and western comic looks; the widest choice of LoRAs and ControlNets',
    promptStyle: 'phrases',
    models: { kind: 'checkpoint', checkpoint: 'sd_xl_base_1.0.safetensors' },
    vPrediction: false,
    sampler: 'dpmpp_2m',
    scheduler: 'karras',
    steps: 30,
    cfg: 7,
    guidance: null,
    qualityTags: ['comic book illustration', 'clean line art', 'highly detailed'],
    safePositive: [],
    negative: ['lowres', 'blurry', 'deformed', 'bad anatomy', 'bad hands', 'jpeg artifacts', ...NO_LETTERING],
    safeNegative: SDXL_SAFE_NEGATIVE,
  },
  pony: {
    family: 'pony',
    label: 'Pony Diffusion V6 XL',
    goodFor:
      'cartoon and anime characters with expressive poses; a huge library of character and style LoRAs',
    promptStyle: 'tags',
    models: { kind: 'checkpoint', checkpoint: 'ponyDiffusionV6XL_v6StartWithThisOne.safetensors' },
    vPrediction: false,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: 25,
    cfg: 7,
    guidance: null,
    // Pony was trained with its aesthetic score ladder spelled out; the card asks for the whole ladder.
    qualityTags: ['score_9', 'score_8_up', 'score_7_up', 'score_6_up', 'score_5_up', 'score_4_up'],
    sourceTags: ['source_anime', 'source_cartoon'],
    safePositive: ['rating_safe'],
    negative: [
      'score_4',
      'score_5',
      'score_6',
      'source_pony',
      'source_furry',
      'lowres',
      'bad anatomy',
      'bad hands',
      ...NO_LETTERING,
    ],
    safeNegative: ['rating_explicit', 'rating_questionable', ...SDXL_SAFE_NEGATIVE],
  },
  playground: {
    family: 'playground',
    label: 'Playground v2.5',
    goodFor: 'vivid colour and strong aesthetics for painterly covers and splash pages',
    promptStyle: 'phrases',
    models: { kind: 'checkpoint', checkpoint: 'playground-v2.5-1024px-aesthetic.fp16.safetensors' },
    vPrediction: false,
    // The model card's settings: EDM sampling, guidance about 3, DPM++ 2M with Karras sigmas.
    sampler: 'dpmpp_2m',
    scheduler: 'karras',
    steps: 30,
    cfg: 3,
    guidance: null,
    qualityTags: ['comic book illustration', 'highly detailed'],
    safePositive: [],
    negative: ['lowres', 'blurry', 'deformed', 'bad anatomy', ...NO_LETTERING],
    safeNegative: SDXL_SAFE_NEGATIVE,
    edmPlayground: true,
  },
  'sd35-large': {
    family: 'sd35-large',
    label: 'SD 3.5 Large',
    goodFor: 'detailed natural-language scenes and varied art styles (render only)',
    promptStyle: 'natural',
    models: {
      kind: 'sd3',
      checkpoint: 'sd3.5_large.safetensors',
      textEncoders: {
        clipL: 'clip_l.safetensors',
        clipG: 'clip_g.safetensors',
        t5: 't5xxl_fp8_e4m3fn_scaled.safetensors',
      },
    },
    vPrediction: false,
    // ComfyUI's SD3.5 example: euler with sgm_uniform, cfg 4–5.5.
    sampler: 'euler',
    scheduler: 'sgm_uniform',
    steps: 28,
    cfg: 4.5,
    guidance: null,
    qualityTags: [],
    safePositive: [],
    negative: ['blurry', 'lowres', 'deformed', 'watermark', 'text'],
    safeNegative: ['nsfw', 'nude', 'gore'],
    samplingShift: 3,
    limits: 'render only: training it does not fit a 24 GB card well, so no style LoRAs are trained for it',
  },
  'sd35-medium': {
    family: 'sd35-medium',
    label: 'SD 3.5 Medium',
    goodFor: 'quicker natural-language scenes on less VRAM (render only)',
    promptStyle: 'natural',
    models: {
      kind: 'sd3',
      checkpoint: 'sd3.5_medium.safetensors',
      textEncoders: {
        clipL: 'clip_l.safetensors',
        clipG: 'clip_g.safetensors',
        t5: 't5xxl_fp8_e4m3fn_scaled.safetensors',
      },
    },
    vPrediction: false,
    sampler: 'euler',
    scheduler: 'sgm_uniform',
    steps: 28,
    cfg: 4.5,
    guidance: null,
    qualityTags: [],
    safePositive: [],
    negative: ['blurry', 'lowres', 'deformed', 'watermark', 'text'],
    safeNegative: ['nsfw', 'nude', 'gore'],
    samplingShift: 3,
    limits: 'render only: no style LoRAs are trained for it',
  },
  ponyv7: {
    family: 'ponyv7',
    label: 'Pony V7 (AuraFlow)',
    goodFor: 'Pony characters with natural-language prompts (experimental)',
    promptStyle: 'natural',
    models: { kind: 'checkpoint', checkpoint: 'pony-v7-base.safetensors' },
    vPrediction: false,
    // ComfyUI's AuraFlow example: a plain checkpoint graph, euler with sgm_uniform, cfg about 3.5.
    sampler: 'euler',
    scheduler: 'sgm_uniform',
    steps: 30,
    cfg: 3.5,
    guidance: null,
    qualityTags: [],
    safePositive: [],
    negative: ['blurry', 'lowres', 'deformed', 'watermark', 'text'],
    safeNegative: ['nsfw', 'nude', 'gore'],
    experimental: {
      reason:
        'Pony V7 runs on AuraFlow, whose ecosystem is still immature: few LoRAs, no ControlNets, and no trainer this project supports',
    },
    limits: 'render only',
  },
};

/**
 * Families the research names that this project does not render at all, with the reason. They can be
 * named in ENABLE_EXPERIMENTAL_FAMILIES without error, but stay refused: there is nothing to run.
 */
export const UNSUPPORTED_FAMILIES: Readonly<Record<string, { label: string; reason: string }>> = {
  hunyuan3: {
    label: 'Hunyuan Image 3.0',
    reason:
      'Hunyuan Image 3.0 is an 80-billion-parameter mixture-of-experts model that needs far more than a 24 GB card, and ComfyUI has no built-in nodes for it',
  },
};

/** The names ENABLE_EXPERIMENTAL_FAMILIES accepts. */
export const EXPERIMENTAL_FAMILY_NAMES = ['ponyv7', 'hunyuan3'] as const;
export type ExperimentalFamilyName = (typeof EXPERIMENTAL_FAMILY_NAMES)[number];

export type FamilyAvailability = { usable: true } | { usable: false; reason: string };

/**
 * Whether a family may be used on this deployment. Experimental families are refused with their
 * reason unless the operator named them in ENABLE_EXPERIMENTAL_FAMILIES.
 */
export function familyAvailability(
  family: string,
  enabledExperimental: readonly string[],
): FamilyAvailability {
  const unsupported = UNSUPPORTED_FAMILIES[family];
  if (unsupported)
    return { usable: false, reason: `${unsupported.label} is not available: ${unsupported.reason}.` };
  const profile = (FAMILIES as Readonly<Record<string, FamilyProfile>>)[family];
  if (!profile) return { usable: false, reason: `"${family}" is not a model family I know.` };
  if (profile.experimental && !enabledExperimental.includes(family)) {
    return {
      usable: false,
      reason: `${profile.label} is off on this server: ${profile.experimental.reason}. An operator can turn it on with ENABLE_EXPERIMENTAL_FAMILIES=${family}.`,
    };
  }
  return { usable: true };
}

/** Throws an InputError a user can read when the family is refused on this deployment. */
export function assertFamilyUsable(family: string, enabledExperimental: readonly string[]): void {
  const availability = familyAvailability(family, enabledExperimental);
  if (!availability.usable) throw new InputError(availability.reason);
}

export function familyProfile(family: ModelFamily): FamilyProfile {
  return FAMILIES[family];
}
