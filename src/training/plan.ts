/**
 * A training plan: which trainer, its config file (kohya's dataset TOML or ai-toolkit's YAML), the
 * exact argument array, and the steps, time and VRAM to expect. Nothing here runs anything; the CLI
 * prints a plan and the runner's train worker launches one.
 *
 * Steps are counted the way kohya counts them (train_util.BaseDataset.make_buckets and
 * train_network.train): every image goes to the bucket whose aspect ratio is nearest its own; each
 * bucket holds its images × repeats; batches per epoch are Σ ceil(bucket / batch size), steps per epoch
 * ceil(batches / gradient accumulation), and the total is that × epochs. Repeats and epochs are chosen
 * so the total lands in TARGET_STEPS.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { DEFAULT_TEST_PROMPTS, ledByTrigger } from '../evaluation/plan.ts';
import {
  PRESETS,
  SAMPLE_PROMPT_COUNT,
  SAMPLE_SIZE,
  TARGET_STEPS,
  TRAINING_BASES,
  type AiToolkitPreset,
  type KohyaPreset,
  type TrainingBase,
} from './presets.ts';
import { toToml, toYaml } from './config-text.ts';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp']);

export interface DatasetImage {
  /** Absolute path. */
  path: string;
  width: number;
  height: number;
  hasCaption: boolean;
}

export interface DatasetSubset {
  /** Absolute folder holding the images directly. */
  imageDir: string;
  /** Repeats from a kohya `<repeats>_<tokens>` folder name (TOML mode does not parse it; we do). */
  folderRepeats: number | null;
  images: DatasetImage[];
}

export interface DatasetLayout {
  root: string;
  subsets: DatasetSubset[];
  captionExtension: '.txt' | '.caption';
  imageCount: number;
  missingCaptions: number;
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot).toLowerCase();
}

async function scanFolder(dir: string, captionExtension: string): Promise<DatasetImage[]> {
  const names = (await readdir(dir)).sort();
  const present = new Set(names);
  const images: DatasetImage[] = [];
  for (const name of names) {
    if (!IMAGE_EXTENSIONS.has(extensionOf(name))) continue;
    const path = join(dir, name);
    // Header only: sharp reads the size without decoding the pixels.
    const meta = await sharp(path).metadata();
    const oriented = (meta.orientation ?? 1) >= 5;
    const width = oriented ? meta.height : meta.width;
    const height = oriented ? meta.width : meta.height;
    if (!width || !height) continue;
    const stem = name.slice(0, name.length - extensionOf(name).length);
    images.push({ path, width, height, hasCaption: present.has(`${stem}${captionExtension}`) });
  }
  return images;
}

/**
 * Read a prepared dataset: the `<repeats>_<trigger>/` folders `comicmaster dataset prepare` writes
 * (kohya's layout), or a folder of images directly.
 */
export async function readDatasetLayout(datasetDir: string): Promise<DatasetLayout> {
  const root = resolve(datasetDir);
  const info = await stat(root).catch(() => null);
  if (!info?.isDirectory()) throw new InputError(`The dataset folder ${root} does not exist.`);
  const entries = await readdir(root, { withFileTypes: true });
  const allNames = entries.map((e) => e.name);
  // The caption extension is what the files use: .caption when any exists and no .txt does.
  const folders = entries
    .filter((e) => e.isDirectory() && /^\d+_.+/.test(e.name))
    .map((e) => e.name)
    .sort();
  const namesInside =
    folders.length > 0 ? (await Promise.all(folders.map((f) => readdir(join(root, f))))).flat() : allNames;
  const captionExtension =
    namesInside.some((n) => n.endsWith('.caption')) && !namesInside.some((n) => n.endsWith('.txt'))
      ? '.caption'
      : '.txt';

  const subsets: DatasetSubset[] = [];
  if (folders.length > 0) {
    for (const folder of folders) {
      const imageDir = join(root, folder);
      subsets.push({
        imageDir,
        folderRepeats: Number(folder.split('_')[0]),
        images: await scanFolder(imageDir, captionExtension),
      });
    }
  } else {
    subsets.push({ imageDir: root, folderRepeats: null, images: await scanFolder(root, captionExtension) });
  }
  const imageCount = subsets.reduce((n, s) => n + s.images.length, 0);
  if (imageCount === 0) {
    throw new InputError(
      `No images found in ${root}: expected kohya's layout (<repeats>_<trigger>/ folders with images and captions), as \`comicmaster dataset prepare\` writes it.`,
    );
  }
  const missingCaptions = subsets.reduce((n, s) => n + s.images.filter((i) => !i.hasCaption).length, 0);
  return { root, subsets, captionExtension, imageCount, missingCaptions };
}

// ---------------------------------------------------------------------------------------------------
// kohya's buckets (library/model_util.make_bucket_resolutions, train_util.BucketManager)

export type Reso = readonly [width: number, height: number];

export function makeBucketResolutions(
  maxReso: Reso,
  minSize: number,
  maxSize: number,
  divisible: number,
): Reso[] {
  const [maxWidth, maxHeight] = maxReso;
  const maxArea = maxWidth * maxHeight;
  const resos = new Map<string, Reso>();
  const add = (w: number, h: number) => resos.set(`${w}x${h}`, [w, h]);
  const square = Math.floor(Math.floor(Math.sqrt(maxArea)) / divisible) * divisible;
  add(square, square);
  for (let width = minSize; width <= maxSize; width += divisible) {
    const height = Math.min(maxSize, Math.floor(Math.floor(maxArea / width) / divisible) * divisible);
    if (height >= minSize) {
      add(width, height);
      add(height, width);
    }
  }
  // Python sorts the tuples: by width, then height.
  return [...resos.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** The bucket kohya puts an image in (no_upscale off): the nearest aspect ratio, first on ties (argmin). */
export function selectBucket(resos: readonly Reso[], width: number, height: number): Reso {
  const aspect = width / height;
  let best = 0;
  let bestError = Infinity;
  resos.forEach(([w, h], i) => {
    const error = Math.abs(w / h - aspect);
    if (error < bestError) {
      bestError = error;
      best = i;
    }
  });
  const reso = resos[best];
  if (!reso) throw new Error('no bucket resolutions');
  return reso;
}

export interface BucketCount {
  width: number;
  height: number;
  images: number;
  /** Images × repeats: what kohya's bucket holds. */
  samples: number;
  batches: number;
}

export interface KohyaStepCount {
  buckets: BucketCount[];
  batchesPerEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
}

export function countKohyaSteps(
  images: readonly { width: number; height: number; repeats: number }[],
  settings: {
    resolution: number;
    minBucketReso: number;
    maxBucketReso: number;
    bucketResoSteps: number;
    batchSize: number;
    gradientAccumulation: number;
  },
  epochs: number,
): KohyaStepCount {
  const resos = makeBucketResolutions(
    [settings.resolution, settings.resolution],
    settings.minBucketReso,
    settings.maxBucketReso,
    settings.bucketResoSteps,
  );
  const byBucket = new Map<string, BucketCount>();
  for (const image of images) {
    const [w, h] = selectBucket(resos, image.width, image.height);
    const key = `${w}x${h}`;
    const bucket = byBucket.get(key) ?? { width: w, height: h, images: 0, samples: 0, batches: 0 };
    bucket.images += 1;
    bucket.samples += image.repeats;
    byBucket.set(key, bucket);
  }
  const buckets = [...byBucket.values()].sort((a, b) => a.width - b.width || a.height - b.height);
  for (const b of buckets) b.batches = Math.ceil(b.samples / settings.batchSize);
  const batchesPerEpoch = buckets.reduce((n, b) => n + b.batches, 0);
  const stepsPerEpoch = Math.ceil(batchesPerEpoch / settings.gradientAccumulation);
  return { buckets, batchesPerEpoch, stepsPerEpoch, totalSteps: stepsPerEpoch * epochs };
}

/**
 * Repeats and epochs for a total in TARGET_STEPS. Epochs are even (a checkpoint every 2 epochs) and
 * at least 6 (at least three checkpoints to vote on); among the fits, the total nearest the ideal
 * wins, then 10 epochs. When even 1 repeat × 6 epochs is over the range, the fewest epochs that fit.
 */
export function chooseRepeatsAndEpochs(stepsFor: (repeats: number, epochs: number) => number): {
  repeats: number;
  epochs: number;
} {
  let best: { repeats: number; epochs: number; score: number } | undefined;
  for (let epochs = 6; epochs <= 20; epochs += 2) {
    for (let repeats = 1; repeats <= 100; repeats++) {
      const steps = stepsFor(repeats, epochs);
      if (steps > TARGET_STEPS.max) break;
      if (steps < TARGET_STEPS.min) continue;
      const score = Math.abs(steps - TARGET_STEPS.ideal) + Math.abs(epochs - 10) * 10;
      if (!best || score < best.score) best = { repeats, epochs, score };
    }
  }
  if (best) return { repeats: best.repeats, epochs: best.epochs };
  // A huge dataset: one repeat, and as few epochs as keep it in range (never fewer than 2).
  for (let epochs = 20; epochs >= 2; epochs -= 2) {
    if (stepsFor(1, epochs) <= TARGET_STEPS.max) return { repeats: 1, epochs };
  }
  return { repeats: 1, epochs: 2 };
}

// ---------------------------------------------------------------------------------------------------
// The plan

export const PlanOptions = z.object({
  datasetDir: z.string().min(1),
  base: z.enum(TRAINING_BASES),
  trigger: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/, 'the trigger must be one word of letters, digits, "-" or "_"'),
  /** Output file base name (default: the trigger). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'the name must be letters, digits, "-" or "_"')
    .optional(),
  /** Where the config file and the trainer's output go. */
  workDir: z.string().min(1),
  /** Base model: a file path or a Hugging Face id (default: the preset's). */
  model: z.string().min(1).optional(),
  /** Trainer locations and interpreter (from SD_SCRIPTS_DIR, AI_TOOLKIT_DIR, TRAINER_PYTHON). */
  python: z.string().min(1).default('python3'),
  sdScriptsDir: z.string().min(1).optional(),
  aiToolkitDir: z.string().min(1).optional(),
  /** Fixed repeats/epochs (kohya) or steps (ai-toolkit) instead of the chosen ones. */
  repeats: z.number().int().min(1).max(100).optional(),
  epochs: z.number().int().min(1).max(200).optional(),
  steps: z.number().int().min(1).max(100_000).optional(),
  /** ai-toolkit: steps between checkpoints (default the preset's). */
  saveEverySteps: z.number().int().min(1).max(100_000).optional(),
  seed: z.number().int().min(0).default(42),
  /** Scenes for the sample images (the guild's test prompts); the first two are used, led by the trigger. */
  samplePrompts: z.array(z.string().trim().min(1).max(500)).max(20).optional(),
});
export type PlanOptionsInput = z.input<typeof PlanOptions>;

export interface TrainingPlan {
  base: TrainingBase;
  trainer: 'kohya' | 'ai-toolkit';
  name: string;
  trigger: string;
  model: string;
  datasetDir: string;
  workDir: string;
  /** Where the trainer writes checkpoints (and kohya its state folders). */
  outputDir: string;
  images: number;
  missingCaptions: number;
  captionExtension: string;
  repeats: number;
  epochs: number;
  batchesPerEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** ai-toolkit: steps between checkpoints. */
  saveEverySteps?: number;
  buckets: BucketCount[];
  /** Checkpoints the run will write (epochs for kohya, steps for ai-toolkit), final included. */
  checkpointsAt: { epoch: number; step: number }[];
  estimate: { seconds: number; vramGb: number };
  /** The sample images the trainer makes at each checkpoint save. */
  samples: SamplePlan;
  /** The config file the command reads, to be written before launching. */
  configFile: { path: string; format: 'toml' | 'yaml'; content: string };
  /** What is spawned: `python` with `args` (args[0] is the script), in `cwd`. */
  command: { python: string; args: string[]; cwd: string };
}

export interface SamplePlan {
  /** Led by the trigger word. */
  prompts: string[];
  width: number;
  height: number;
  steps: number;
  seed: number;
  /** Where the trainer writes them: kohya `<output>/sample`, ai-toolkit `<output>/<name>/samples`. */
  dir: string;
  /** kohya: every this many epochs (its checkpoint interval); ai-toolkit: every this many steps. */
  everyEpochs?: number;
  everySteps?: number;
  /** kohya reads the prompts from a file (`--sample_prompts`), written next to the config before launching. */
  promptFile?: { path: string; content: string };
}

/** The scenes sampled: the guild's test prompts when it has some, else the built-in comic scenes. */
function samplePrompts(options: z.output<typeof PlanOptions>): string[] {
  const scenes =
    options.samplePrompts && options.samplePrompts.length > 0 ? options.samplePrompts : DEFAULT_TEST_PROMPTS;
  return scenes.slice(0, SAMPLE_PROMPT_COUNT).map((p) => ledByTrigger(options.trigger, p));
}

/**
 * kohya's prompt file (train_util.line_to_prompt_dict): one prompt per line, options after " --".
 * A " --" inside a scene would start an option, so it is flattened to a single dash.
 */
function kohyaPromptFile(
  prompts: readonly string[],
  settings: { width: number; height: number; steps: number; cfg: number; seed: number; negative: string },
): string {
  const lines = prompts.map(
    (p) =>
      `${p.replaceAll(/\s+--/g, ' -').replaceAll(/[\r\n]+/g, ' ')} --n ${settings.negative} --w ${settings.width} --h ${settings.height} --s ${settings.steps} --l ${settings.cfg} --d ${settings.seed}`,
  );
  return `${lines.join('\n')}\n`;
}

function scriptDir(plan: { trainer: 'kohya' | 'ai-toolkit' }, options: z.output<typeof PlanOptions>): string {
  const dir = plan.trainer === 'kohya' ? options.sdScriptsDir : options.aiToolkitDir;
  // The CLI may plan without the trainer installed; the command then shows the variable to set.
  if (dir) return resolve(dir);
  return plan.trainer === 'kohya' ? '$SD_SCRIPTS_DIR' : '$AI_TOOLKIT_DIR';
}

export async function planTraining(input: PlanOptionsInput): Promise<TrainingPlan> {
  const parsed = PlanOptions.safeParse(input);
  if (!parsed.success)
    throw new InputError(
      parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '),
    );
  const options = parsed.data;
  const layout = await readDatasetLayout(options.datasetDir);
  const preset = PRESETS[options.base];
  return preset.trainer === 'kohya'
    ? planKohya(options, preset, layout)
    : planAiToolkit(options, preset, layout);
}

function planKohya(
  options: z.output<typeof PlanOptions>,
  preset: KohyaPreset,
  layout: DatasetLayout,
): TrainingPlan {
  const images = layout.subsets.flatMap((s) => s.images);
  const stepsFor = (repeats: number, epochs: number) =>
    countKohyaSteps(
      images.map((i) => ({ ...i, repeats })),
      preset,
      epochs,
    ).totalSteps;
  const chosen = chooseRepeatsAndEpochs(stepsFor);
  const repeats = options.repeats ?? chosen.repeats;
  const epochs = options.epochs ?? chosen.epochs;
  const count = countKohyaSteps(
    images.map((i) => ({ ...i, repeats })),
    preset,
    epochs,
  );
  const name = options.name ?? options.trigger;
  const workDir = resolve(options.workDir);
  const outputDir = join(workDir, 'output');
  const configPath = join(workDir, 'dataset.toml');
  const model = options.model ?? preset.defaultModel;
  const samplePromptPath = join(workDir, 'sample_prompts.txt');
  const prompts = samplePrompts(options);
  const samples: SamplePlan = {
    prompts,
    width: SAMPLE_SIZE,
    height: SAMPLE_SIZE,
    steps: preset.sample.steps,
    seed: options.seed,
    dir: join(outputDir, 'sample'),
    everyEpochs: preset.saveEveryEpochs,
    promptFile: {
      path: samplePromptPath,
      content: kohyaPromptFile(prompts, {
        width: SAMPLE_SIZE,
        height: SAMPLE_SIZE,
        steps: preset.sample.steps,
        cfg: preset.sample.cfg,
        seed: options.seed,
        negative: preset.sample.negative,
      }),
    },
  };

  const toml = toToml({
    general: { shuffle_caption: true, keep_tokens: 1, enable_bucket: true, bucket_no_upscale: false },
    datasets: [
      {
        resolution: preset.resolution,
        batch_size: preset.batchSize,
        min_bucket_reso: preset.minBucketReso,
        max_bucket_reso: preset.maxBucketReso,
        bucket_reso_steps: preset.bucketResoSteps,
        // kohya's default caption extension is .caption: always say which one the files use.
        subsets: layout.subsets.map((s) => ({
          image_dir: s.imageDir,
          num_repeats: repeats,
          class_tokens: options.trigger,
          caption_extension: layout.captionExtension,
        })),
      },
    ],
  });

  const cwd = scriptDir(preset, options);
  const args = [
    join(cwd, preset.script),
    '--pretrained_model_name_or_path',
    model,
    '--dataset_config',
    configPath,
    '--output_dir',
    outputDir,
    '--output_name',
    name,
    '--save_model_as',
    'safetensors',
    '--network_module',
    'networks.lora',
    '--network_dim',
    String(preset.networkDim),
    '--network_alpha',
    String(preset.networkAlpha),
    '--network_args',
    `loraplus_lr_ratio=${preset.loraPlusRatio}`,
    '--learning_rate',
    String(preset.learningRate),
    '--unet_lr',
    String(preset.learningRate),
    '--text_encoder_lr',
    String(preset.textEncoderLr),
    '--optimizer_type',
    preset.optimizer,
    '--lr_scheduler',
    preset.scheduler,
    '--lr_warmup_steps',
    String(preset.warmupSteps),
    '--max_train_epochs',
    String(epochs),
    '--gradient_accumulation_steps',
    String(preset.gradientAccumulation),
    '--mixed_precision',
    preset.mixedPrecision,
    '--save_precision',
    preset.mixedPrecision,
    '--save_every_n_epochs',
    String(preset.saveEveryEpochs),
    // State folders next to the checkpoints, so a crashed run resumes (--resume) instead of restarting.
    '--save_state',
    // Sample images at each checkpoint save (epoch sampling wins over step sampling in kohya).
    '--sample_every_n_epochs',
    String(preset.saveEveryEpochs),
    '--sample_prompts',
    samplePromptPath,
    '--sample_sampler',
    preset.sample.sampler,
    '--loss_type',
    preset.lossType,
    '--huber_schedule',
    preset.huberSchedule,
    '--cache_latents',
    '--cache_latents_to_disk',
    '--gradient_checkpointing',
    '--sdpa',
    '--seed',
    String(options.seed),
    '--console_log_simple',
    ...(preset.vPrediction ? ['--v_parameterization', '--zero_terminal_snr'] : []),
  ];

  const checkpointsAt: { epoch: number; step: number }[] = [];
  for (let e = preset.saveEveryEpochs; e < epochs; e += preset.saveEveryEpochs)
    checkpointsAt.push({ epoch: e, step: e * count.stepsPerEpoch });
  checkpointsAt.push({ epoch: epochs, step: count.totalSteps });

  return {
    base: options.base,
    trainer: 'kohya',
    name,
    trigger: options.trigger,
    model,
    datasetDir: layout.root,
    workDir,
    outputDir,
    images: layout.imageCount,
    missingCaptions: layout.missingCaptions,
    captionExtension: layout.captionExtension,
    repeats,
    epochs,
    batchesPerEpoch: count.batchesPerEpoch,
    stepsPerEpoch: count.stepsPerEpoch,
    totalSteps: count.totalSteps,
    buckets: count.buckets,
    checkpointsAt,
    estimate: { seconds: Math.round(count.totalSteps * preset.secondsPerStep), vramGb: preset.vramGb },
    samples,
    configFile: { path: configPath, format: 'toml', content: toml },
    command: { python: options.python, args, cwd },
  };
}

function planAiToolkit(
  options: z.output<typeof PlanOptions>,
  preset: AiToolkitPreset,
  layout: DatasetLayout,
): TrainingPlan {
  // ai-toolkit counts only steps: about 40 per image, in whole saves, within the target range.
  const saveEvery = options.saveEverySteps ?? preset.saveEvery;
  const perImage = Math.ceil((layout.imageCount * 40) / preset.saveEvery) * preset.saveEvery;
  const totalSteps = options.steps ?? Math.min(TARGET_STEPS.max, Math.max(TARGET_STEPS.min, perImage));
  const name = options.name ?? options.trigger;
  const workDir = resolve(options.workDir);
  const outputDir = join(workDir, 'output');
  const configPath = join(workDir, 'config.yaml');
  const model = options.model ?? preset.defaultModel;
  const saves = Math.ceil(totalSteps / saveEvery);
  const extension = layout.captionExtension.slice(1);
  const samples: SamplePlan = {
    prompts: samplePrompts(options),
    width: SAMPLE_SIZE,
    height: SAMPLE_SIZE,
    steps: preset.sample.steps,
    seed: options.seed,
    dir: join(outputDir, name, 'samples'),
    everySteps: saveEvery,
  };

  const yaml = toYaml({
    job: 'extension',
    config: {
      name,
      process: [
        {
          type: 'sd_trainer',
          training_folder: outputDir,
          device: 'cuda:0',
          trigger_word: options.trigger,
          network: { type: 'lora', linear: preset.networkDim, linear_alpha: preset.networkAlpha },
          // Keep every checkpoint: the evaluation grid compares them all.
          save: { dtype: preset.saveDtype, save_every: saveEvery, max_step_saves_to_keep: saves + 1 },
          datasets: layout.subsets.map((s) => ({
            folder_path: s.imageDir,
            caption_ext: extension,
            caption_dropout_rate: 0.05,
            shuffle_tokens: false,
            cache_latents_to_disk: true,
            resolution: preset.resolutions,
            num_repeats: 1,
          })),
          train: {
            batch_size: preset.batchSize,
            steps: totalSteps,
            gradient_accumulation_steps: 1,
            train_unet: true,
            train_text_encoder: false,
            gradient_checkpointing: true,
            noise_scheduler: 'flowmatch',
            optimizer: preset.optimizer,
            lr: preset.learningRate,
            dtype: preset.dtype,
            // No baseline samples at step 0: only the checkpoints' are worth the GPU time.
            skip_first_sample: true,
          },
          model: { name_or_path: model, is_flux: true, quantize: preset.quantize, low_vram: preset.lowVram },
          // At every save, the same seed for every prompt and checkpoint (walk_seed off), so they compare.
          sample: {
            sampler: preset.sample.sampler,
            sample_every: saveEvery,
            width: samples.width,
            height: samples.height,
            prompts: samples.prompts,
            neg: '',
            seed: samples.seed,
            walk_seed: false,
            guidance_scale: preset.sample.guidance,
            sample_steps: samples.steps,
          },
        },
      ],
    },
  });

  const checkpointsAt: { epoch: number; step: number }[] = [];
  for (let s = saveEvery, i = 1; s < totalSteps; s += saveEvery, i++)
    checkpointsAt.push({ epoch: i, step: s });
  checkpointsAt.push({ epoch: checkpointsAt.length + 1, step: totalSteps });
  const cwd = scriptDir(preset, options);

  return {
    base: options.base,
    trainer: 'ai-toolkit',
    name,
    trigger: options.trigger,
    model,
    datasetDir: layout.root,
    workDir,
    outputDir,
    images: layout.imageCount,
    missingCaptions: layout.missingCaptions,
    captionExtension: layout.captionExtension,
    repeats: 1,
    epochs: 0,
    batchesPerEpoch: layout.imageCount,
    stepsPerEpoch: layout.imageCount,
    totalSteps,
    saveEverySteps: saveEvery,
    buckets: [],
    checkpointsAt,
    estimate: { seconds: Math.round(totalSteps * preset.secondsPerStep), vramGb: preset.vramGb },
    samples,
    configFile: { path: configPath, format: 'yaml', content: yaml },
    command: { python: options.python, args: [join(cwd, preset.script), configPath], cwd },
  };
}

/** For display only (the runner never builds a shell string): POSIX single-quoting where needed. */
export function shellQuote(args: readonly string[]): string {
  return args
    .map((a) => (/^[A-Za-z0-9_./=:,@%+-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min`;
}

/** The plan for a terminal: the numbers, the config file and the command. */
export function formatPlan(plan: TrainingPlan): string {
  const lines = [
    `Base: ${plan.base} (${plan.trainer}), model ${plan.model}`,
    `Images: ${plan.images}${plan.missingCaptions ? ` (${plan.missingCaptions} without a ${plan.captionExtension} caption)` : ''}`,
  ];
  if (plan.trainer === 'kohya') {
    lines.push(`Buckets: ${plan.buckets.map((b) => `${b.width}×${b.height}: ${b.images}`).join(', ')}`);
    lines.push(
      `Repeats ${plan.repeats} × epochs ${plan.epochs}: ${plan.batchesPerEpoch} batches per epoch, ${plan.stepsPerEpoch} steps per epoch, ${plan.totalSteps} steps`,
    );
  } else {
    lines.push(`Steps: ${plan.totalSteps}`);
  }
  lines.push(
    `Checkpoints at: ${plan.checkpointsAt.map((c) => (plan.trainer === 'kohya' ? `epoch ${c.epoch}` : `step ${c.step}`)).join(', ')}`,
  );
  lines.push(
    `Estimate: about ${duration(plan.estimate.seconds)}, about ${plan.estimate.vramGb} GB of VRAM (24 GB card)`,
  );
  lines.push(
    `Samples: ${plan.samples.prompts.length} images at each checkpoint (${plan.samples.width}×${plan.samples.height}, ${plan.samples.steps} steps, seed ${plan.samples.seed}) into ${plan.samples.dir}`,
    ...plan.samples.prompts.map((p) => `  · ${p}`),
  );
  lines.push(
    '',
    `# ${plan.configFile.path}`,
    plan.configFile.content.trimEnd(),
    '',
    ...(plan.samples.promptFile
      ? [`# ${plan.samples.promptFile.path}`, plan.samples.promptFile.content.trimEnd(), '']
      : []),
    `# command (run in ${plan.command.cwd})`,
  );
  lines.push(shellQuote([plan.command.python, ...plan.command.args]));
  return lines.join('\n');
}
