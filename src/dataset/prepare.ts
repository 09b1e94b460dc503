import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { z } from 'zod';
import type { AppConfig } from '../config/env.ts';
import { InputError } from '../errors.ts';
import {
  captionWithLlm,
  captionWithWd14,
  CAPTION_MODES,
  DEFAULT_STYLE_WORDS,
  type CaptionTarget,
  type LlmCaptionSettings,
  type Wd14Settings,
} from './captions.ts';
import {
  DEFAULT_INGEST_LIMITS,
  ingest,
  type IngestedImage,
  type IngestLimits,
  type Refusal,
} from './ingest.ts';
import {
  DEFAULT_DUPLICATE_THRESHOLDS,
  fingerprintPixels,
  isNearDuplicate,
  type DuplicateThresholds,
  type Fingerprint,
} from './phash.ts';
import { LOWRES_DIR, lowresOriginalPath, writeLowresManifest, type LowresEntry } from './lowres.ts';
import { mapPool } from './pool.ts';
import type { DatasetReport, PreparedImage } from './report.ts';

const FORMAT_NAMES = { jpeg: 'JPEG', png: 'PNG', webp: 'WebP' } as const;

/**
 * From a pile of pictures to a kohya-ready folder: `<out>/<repeats>_<trigger>/NNNN.png` with one
 * caption file per image. Images are oriented (EXIF), converted to PNG, scaled so the short side is
 * the target (enlarging ones under it, with a warning) and capped on the long side, but never cropped:
 * kohya buckets them by aspect ratio. Nothing is written outside `out`.
 */

export const MIN_STYLE_IMAGES = 20;
export const RECOMMENDED_STYLE_IMAGES = 50;

export const PrepareOptions = z.object({
  /** The word the LoRA learns the style under; first in every caption. */
  trigger: z
    .string()
    .trim()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/,
      'the trigger must be one word of letters, digits, "-" or "_" (at most 40 characters)',
    ),
  out: z.string().trim().min(1, 'an output folder is needed'),
  captions: z.enum(CAPTION_MODES).default('none'),
  /** kohya's default is .caption; we pass ours explicitly to the trainer. */
  captionExtension: z.enum(['.txt', '.caption']).default('.txt'),
  repeats: z.number().int().min(1).max(100).default(10),
  /** Images under `targetShortSide`: enlarge them (with a warning) or refuse them. */
  minSidePolicy: z.enum(['upscale', 'refuse']).default('upscale'),
  targetShortSide: z.number().int().min(256).max(4096).default(1024),
  /** Long side cap: kohya trains on ~1 MP buckets, so more only costs disk and time. */
  maxLongSide: z.number().int().min(512).max(8192).default(2048),
  minImages: z.number().int().min(1).default(MIN_STYLE_IMAGES),
  recommendedImages: z.number().int().min(1).default(RECOMMENDED_STYLE_IMAGES),
  /** Added to DEFAULT_STYLE_WORDS. */
  extraStyleWords: z.array(z.string().trim().min(1)).default([]),
});
export type PrepareOptionsInput = z.input<typeof PrepareOptions>;

export interface PrepareContext {
  /** Limits on what is looked at and accepted (defaults: DEFAULT_INGEST_LIMITS). */
  limits?: Partial<IngestLimits>;
  duplicateThresholds?: DuplicateThresholds;
  /** Needed for `llm` captions. */
  llm?: LlmCaptionSettings;
  /** Needed for `wd14` captions. */
  wd14?: Wd14Settings;
  /** Progress lines for a person (the CLI prints them to stderr, the bot edits a message). */
  onProgress?: (message: string) => void;
}

/** Caption settings from the environment (OPENAI_*, LLM_MODEL, SD_SCRIPTS_DIR, TRAINER_PYTHON). */
export function captionSettingsFromConfig(config: AppConfig): Pick<PrepareContext, 'llm' | 'wd14'> {
  return {
    llm: {
      baseURL: config.OPENAI_BASE_URL,
      apiKey: config.OPENAI_API_KEY,
      model: config.LLM_MODEL,
      timeoutMs: config.LLM_TIMEOUT_MS,
    },
    wd14: config.SD_SCRIPTS_DIR
      ? { sdScriptsDir: config.SD_SCRIPTS_DIR, python: config.TRAINER_PYTHON }
      : undefined,
  };
}

/** What removeDuplicates needs to know of an image. */
export interface Fingerprinted {
  source: string;
  /** Original pixel count decides which twin is kept. */
  width: number;
  height: number;
  bytes: number;
  fingerprint: Fingerprint;
}

/** Keeps the larger of each group of near-duplicates; the others become refusals naming what was kept. */
export function removeDuplicates<T extends Fingerprinted>(
  images: T[],
  thresholds: DuplicateThresholds = DEFAULT_DUPLICATE_THRESHOLDS,
): { kept: T[]; duplicates: Refusal[] } {
  const bySize = [...images].sort((a, b) => b.width * b.height - a.width * a.height || b.bytes - a.bytes);
  const kept: T[] = [];
  const duplicates: Refusal[] = [];
  for (const image of bySize) {
    const twin = kept.find((k) => isNearDuplicate(k.fingerprint, image.fingerprint, thresholds));
    if (twin) {
      duplicates.push({
        source: image.source,
        code: 'duplicate',
        reason: `a duplicate or near-duplicate of ${twin.source} (the larger one was kept)`,
      });
    } else {
      kept.push(image);
    }
  }
  // Back to the order the person gave them in, so NNNN follows their order.
  const order = new Map(images.map((image, i) => [image, i]));
  kept.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
  return { kept, duplicates };
}

/** Size after EXIF orientation: orientations 5–8 turn the picture a quarter. */
function orientedSize(image: IngestedImage): { width: number; height: number } {
  return image.orientation >= 5
    ? { width: image.height, height: image.width }
    : { width: image.width, height: image.height };
}

/**
 * The output size: the short side brought to the target (up, with a warning, or down), then the long
 * side capped. Going down as well as up is deliberate: kohya trains on buckets of about target² pixels
 * and resizes everything to them, so pixels beyond that only cost disk, decode and encode time.
 */
export function targetSize(
  width: number,
  height: number,
  targetShortSide: number,
  maxLongSide: number,
): { width: number; height: number; upscaled: boolean } {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  let scale = targetShortSide / short;
  if (long * scale > maxLongSide) scale = maxLongSide / long;
  if (Math.abs(scale - 1) < 1e-9) return { width, height, upscaled: false };
  return {
    width: Math.max(1, Math.round(width * scale)),
    height: Math.max(1, Math.round(height * scale)),
    upscaled: scale > 1,
  };
}

async function ensureEmptyFolder(out: string): Promise<void> {
  await mkdir(out, { recursive: true });
  const existing = (await readdir(out)).filter((name) => name !== '.staging');
  if (existing.length > 0) {
    throw new InputError(
      `The output folder ${out} is not empty; choose a new folder (a dataset is written into an empty one).`,
    );
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Ingests `inputs` (files, folders, zips), removes duplicates and prepares the dataset in `options.out`.
 * Returns the report; `status: 'refused'` (with nothing prepared) when there are too few usable images.
 * Throws InputError for bad options or a non-empty output folder.
 */
export async function prepareDataset(
  inputs: string[],
  optionsInput: PrepareOptionsInput,
  context: PrepareContext = {},
): Promise<DatasetReport> {
  const parsed = PrepareOptions.safeParse(optionsInput);
  if (!parsed.success) {
    throw new InputError(
      parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '),
    );
  }
  const options = parsed.data;
  if (inputs.length === 0) throw new InputError('Give at least one image, folder or zip to prepare.');
  const limits: IngestLimits = { ...DEFAULT_INGEST_LIMITS, ...context.limits };
  const progress = context.onProgress ?? (() => {});
  const out = resolve(options.out);
  await ensureEmptyFolder(out);
  const stagingDir = join(out, '.staging');
  await rm(stagingDir, { recursive: true, force: true });
  await mkdir(stagingDir);

  try {
    progress('Checking files…');
    const ingested = await ingest(inputs, stagingDir, limits);
    const refused: Refusal[] = [...ingested.refused];
    const warnings: string[] = [];

    let usable = ingested.accepted;
    if (options.minSidePolicy === 'refuse') {
      usable = usable.filter((image) => {
        const { width, height } = orientedSize(image);
        if (Math.min(width, height) >= options.targetShortSide) return true;
        refused.push({
          source: image.source,
          code: 'below_min_side',
          reason: `${width}×${height} is under ${options.targetShortSide} px on the short side (the setting refuses small images)`,
        });
        return false;
      });
    }
    const base = {
      trigger: options.trigger,
      outDir: out,
      repeats: options.repeats,
      captionMode: options.captions,
      captionExtension: options.captionExtension,
      refused,
      warnings,
    };
    const tooFew = (usableCount: number, duplicateCount: number): DatasetReport => ({
      status: 'refused',
      message:
        `Refused: only ${plural(usableCount, 'usable image')}, and a style needs at least ${options.minImages}. ` +
        `Add ${options.minImages - usableCount} more (${options.recommendedImages} or more is better).`,
      ...base,
      accepted: [],
      counts: {
        lookedAt: ingested.lookedAt,
        usable: usableCount,
        prepared: 0,
        refused: refused.length,
        duplicates: duplicateCount,
      },
    });
    // Each image is decoded once: oriented, flattened, resized, fingerprinted from those pixels and
    // written to the staging folder. Only after de-duplication do the kept ones get their NNNN names.
    progress(`Preparing ${usable.length} images…`);
    const decoded = await mapPool(usable, limits.parallelism, async (image, index) => {
      const oriented = orientedSize(image);
      const size = targetSize(oriented.width, oriented.height, options.targetShortSide, options.maxLongSide);
      let pipeline = sharp(image.path, { limitInputPixels: limits.maxPixels, failOn: 'truncated' })
        .rotate()
        // kohya converts to RGB; transparent areas would turn black, so put them on white now.
        .flatten({ background: '#ffffff' });
      if (size.width !== oriented.width || size.height !== oriented.height) {
        pipeline = pipeline.resize(size.width, size.height, { fit: 'fill', kernel: 'lanczos3' });
      }
      let pixels: { data: Buffer; info: OutputInfo };
      try {
        pixels = await pipeline.raw().toBuffer({ resolveWithObject: true });
      } catch {
        return undefined;
      }
      const { width, height, channels } = pixels.info;
      const staged = join(stagingDir, `prepared-${String(index).padStart(5, '0')}.png`);
      // Fast zlib settings: these files are read once by the trainer's latent cache, not shipped.
      await sharp(pixels.data, { raw: { width, height, channels } })
        .png({ compressionLevel: 3, adaptiveFiltering: false })
        .toFile(staged);
      const fingerprint = await fingerprintPixels(pixels.data, width, height, channels);
      // An enlarged image keeps its original pixels: the GPU runner re-makes it with an upscale
      // model (src/gpu/dataset-upscale.ts) where one is installed, instead of this plain resize.
      let stagedOriginal: string | undefined;
      if (size.upscaled) {
        stagedOriginal = join(stagingDir, `original-${String(index).padStart(5, '0')}.png`);
        await sharp(image.path, { limitInputPixels: limits.maxPixels })
          .rotate()
          .flatten({ background: '#ffffff' })
          .png({ compressionLevel: 3, adaptiveFiltering: false })
          .toFile(stagedOriginal);
      }
      return {
        ...image,
        fingerprint,
        staged,
        stagedOriginal,
        outWidth: width,
        outHeight: height,
        upscaledFrom: size.upscaled ? oriented : undefined,
      };
    });
    const decodable = decoded.flatMap((item, i) => {
      if (item) return [item];
      const image = usable[i];
      if (image)
        refused.push({
          source: image.source,
          code: 'corrupt',
          reason: `truncated or corrupt ${FORMAT_NAMES[image.format]}`,
        });
      return [];
    });

    progress('Looking for duplicates…');
    const { kept, duplicates } = removeDuplicates(decodable, context.duplicateThresholds);
    refused.push(...duplicates);
    if (kept.length < options.minImages) return tooFew(kept.length, duplicates.length);
    if (kept.length < options.recommendedImages) {
      warnings.push(
        `Only ${kept.length} images: a style can be trained from ${options.minImages}, but ${options.recommendedImages} or more give a steadier LoRA (${options.recommendedImages - kept.length} more would reach that).`,
      );
    }

    const imageFolder = `${options.repeats}_${options.trigger}`;
    const imageDir = join(out, imageFolder);
    await mkdir(imageDir);
    const prepared: PreparedImage[] = [];
    const lowres: LowresEntry[] = [];
    for (const [index, image] of kept.entries()) {
      const stem = String(index + 1).padStart(4, '0');
      await rename(image.staged, join(imageDir, `${stem}.png`));
      const file = `${imageFolder}/${stem}.png`;
      let original: string | undefined;
      if (image.stagedOriginal && image.upscaledFrom) {
        original = lowresOriginalPath(stem);
        if (lowres.length === 0) await mkdir(join(out, LOWRES_DIR));
        await rename(image.stagedOriginal, join(out, original));
        lowres.push({
          file,
          original,
          originalWidth: image.upscaledFrom.width,
          originalHeight: image.upscaledFrom.height,
          width: image.outWidth,
          height: image.outHeight,
        });
      }
      prepared.push({
        source: image.source,
        file,
        width: image.outWidth,
        height: image.outHeight,
        caption: options.trigger,
        ...(image.upscaledFrom ? { upscaledFrom: image.upscaledFrom } : {}),
        ...(original ? { original } : {}),
      });
    }
    if (lowres.length > 0) await writeLowresManifest(out, lowres);

    const upscaled = prepared.filter((p) => p.upscaledFrom);
    if (upscaled.length > 0) {
      const listed = upscaled
        .slice(0, 10)
        .map((p) => `${p.source} (${p.upscaledFrom?.width}×${p.upscaledFrom?.height})`)
        .join(', ');
      warnings.push(
        `${plural(upscaled.length, 'image')} under ${options.targetShortSide} px on the short side ${upscaled.length === 1 ? 'was' : 'were'} upscaled, which can teach blur: ${listed}${upscaled.length > 10 ? ` and ${upscaled.length - 10} more` : ''}. Their originals are kept in ${LOWRES_DIR}/: a GPU runner with an upscale model (Real-ESRGAN) re-makes them before training. Use --min-side-policy refuse to leave them out.`,
      );
    }

    const targets: CaptionTarget[] = prepared.map((p) => {
      const imagePath = join(out, p.file);
      return { imagePath, captionPath: imagePath.replace(/\.png$/, options.captionExtension) };
    });
    const styleWords = [...DEFAULT_STYLE_WORDS, ...options.extraStyleWords];
    progress(`Writing captions (${options.captions})…`);
    let captions: string[];
    if (options.captions === 'llm') {
      if (!context.llm)
        throw new InputError(
          'LLM captions need OPENAI_API_KEY or OPENAI_BASE_URL and a vision-capable LLM_MODEL.',
        );
      captions = await captionWithLlm(targets, options.trigger, styleWords, context.llm);
    } else if (options.captions === 'wd14') {
      if (!context.wd14)
        throw new InputError(
          'WD14 captions need SD_SCRIPTS_DIR (kohya sd-scripts with the tagger model) and TRAINER_PYTHON.',
        );
      captions = await captionWithWd14(imageDir, targets, options.trigger, styleWords, context.wd14);
    } else {
      captions = targets.map(() => options.trigger);
      await Promise.all(targets.map((t) => writeFile(t.captionPath, `${options.trigger}\n`, 'utf8')));
    }
    prepared.forEach((p, i) => (p.caption = captions[i] ?? options.trigger));

    return {
      status: 'prepared',
      message: `Prepared ${plural(prepared.length, 'image')} for the style "${options.trigger}" in ${out}.`,
      ...base,
      imageFolder,
      accepted: prepared,
      counts: {
        lookedAt: ingested.lookedAt,
        usable: kept.length,
        prepared: prepared.length,
        refused: refused.length,
        duplicates: duplicates.length,
      },
    };
  } finally {
    await rm(stagingDir, { recursive: true, force: true });
  }
}
