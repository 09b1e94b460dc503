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
  /** 'tags': comma-separated Danbooru tags (CLIP-L/G). 'natural': sentences (T5). */
  promptStyle: 'tags' | 'natural';
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
    goodFor: 'anime and manga styles, clean line art, strong Danbooru tag control; the base most style LoRAs are trained on',
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
    goodFor: 'anime styles with a wide colour range and deep blacks (v-prediction), dark and high-contrast scenes',
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
    goodFor: 'western comic and painterly styles, natural-language scenes with several people, readable composition',
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
};

export function familyProfile(family: ModelFamily): FamilyProfile {
  return FAMILIES[family];
}
