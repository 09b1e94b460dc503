/**
 * Training presets per base model, for one 24 GB card (issue 6 §3). The flag names and values were
 * checked against the trainers' sources (shared/reference/training.md): LoRA+ goes through
 * `--network_args loraplus_lr_ratio=16` (there is no `--loraplus_*` flag), the text-encoder rate is
 * `--text_encoder_lr` (the `--text_encoder_lr1/2` of the docs do not exist), and `--fused_backward_pass`
 * is left out because train_network.py ignores it.
 */
import type { ModelFamily } from '../comic/recipe.ts';

/** The model families a style LoRA can be trained for (a subset of the render families). */
export const TRAINING_BASES = ['illustrious', 'noobai', 'flux'] as const satisfies readonly ModelFamily[];
export type TrainingBase = (typeof TRAINING_BASES)[number];

export function isTrainingBase(value: string): value is TrainingBase {
  return (TRAINING_BASES as readonly string[]).includes(value);
}

export interface KohyaPreset {
  trainer: 'kohya';
  /** Script under SD_SCRIPTS_DIR. */
  script: 'sdxl_train_network.py';
  /** The model the trainer loads when the row names none. */
  defaultModel: string;
  networkDim: number;
  networkAlpha: number;
  loraPlusRatio: number;
  learningRate: number;
  textEncoderLr: number;
  optimizer: string;
  scheduler: string;
  warmupSteps: number;
  batchSize: number;
  gradientAccumulation: number;
  mixedPrecision: 'bf16';
  saveEveryEpochs: number;
  lossType: 'smooth_l1';
  huberSchedule: 'snr';
  resolution: number;
  minBucketReso: number;
  maxBucketReso: number;
  bucketResoSteps: number;
  /** NoobAI v-pred: `--v_parameterization --zero_terminal_snr`. */
  vPrediction: boolean;
  /** Sample images at each checkpoint (`--sample_prompts` lines: --w --h --s --l --d --n). */
  sample: { sampler: 'euler_a'; steps: number; cfg: number; negative: string };
  /** Rough seconds per optimiser step (batch 1 × accumulation 4 at 1024 px on a 3090-class card). */
  secondsPerStep: number;
  /** Rough peak VRAM, GB. */
  vramGb: number;
}

export interface AiToolkitPreset {
  trainer: 'ai-toolkit';
  /** Script under AI_TOOLKIT_DIR. */
  script: 'run.py';
  defaultModel: string;
  networkDim: number;
  networkAlpha: number;
  learningRate: number;
  optimizer: string;
  batchSize: number;
  dtype: 'bf16';
  saveDtype: 'float16';
  /** Steps between saves. */
  saveEvery: number;
  quantize: boolean;
  lowVram: boolean;
  resolutions: number[];
  /** The `sample:` section's settings besides prompts, size and seed. */
  sample: { sampler: 'flowmatch'; steps: number; guidance: number };
  secondsPerStep: number;
  vramGb: number;
}

export type TrainingPreset = KohyaPreset | AiToolkitPreset;

/**
 * Sample images while training: this many prompts (led by the trigger), square at this size, with a
 * fixed seed, at every checkpoint save. Small and few, so they cost seconds of GPU per checkpoint.
 */
export const SAMPLE_PROMPT_COUNT = 2;
export const SAMPLE_SIZE = 768;

/** The step range a style LoRA aims at (issue 6 §3). */
export const TARGET_STEPS = { min: 1_500, max: 3_000, ideal: 2_000 } as const;

const SDXL_24GB: Omit<KohyaPreset, 'defaultModel' | 'vPrediction'> = {
  trainer: 'kohya',
  script: 'sdxl_train_network.py',
  networkDim: 128,
  networkAlpha: 64,
  loraPlusRatio: 16,
  learningRate: 1e-4,
  textEncoderLr: 1e-5,
  optimizer: 'AdamW8bit',
  scheduler: 'cosine_with_restarts',
  warmupSteps: 100,
  batchSize: 1,
  gradientAccumulation: 4,
  mixedPrecision: 'bf16',
  saveEveryEpochs: 2,
  lossType: 'smooth_l1',
  huberSchedule: 'snr',
  resolution: 1024,
  minBucketReso: 256,
  maxBucketReso: 2048,
  bucketResoSteps: 64,
  sample: {
    sampler: 'euler_a',
    steps: 20,
    cfg: 6,
    negative: 'lowres, bad anatomy, worst quality, watermark',
  },
  // ~1.3 s per 1024 px image with gradient checkpointing, 4 images per optimiser step.
  secondsPerStep: 5.2,
  vramGb: 18,
};

export const PRESETS: Record<TrainingBase, TrainingPreset> = {
  illustrious: { ...SDXL_24GB, defaultModel: 'illustriousXL_v01.safetensors', vPrediction: false },
  noobai: { ...SDXL_24GB, defaultModel: 'noobaiXLVpred_v10.safetensors', vPrediction: true },
  flux: {
    trainer: 'ai-toolkit',
    script: 'run.py',
    // Gated on Hugging Face: HF_TOKEN must be in ai-toolkit's .env.
    defaultModel: 'black-forest-labs/FLUX.1-dev',
    networkDim: 128,
    networkAlpha: 128,
    learningRate: 4e-4,
    optimizer: 'adamw8bit',
    batchSize: 1,
    dtype: 'bf16',
    saveDtype: 'float16',
    saveEvery: 250,
    quantize: true,
    lowVram: true,
    resolutions: [512, 768, 1024],
    sample: { sampler: 'flowmatch', steps: 20, guidance: 4 },
    secondsPerStep: 3.5,
    vramGb: 22,
  },
};
