import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import OpenAI from 'openai';
import sharp from 'sharp';
import { z } from 'zod';
import { InputError, UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import { mapPool } from './pool.ts';

/**
 * Captions for a style LoRA. Whatever writes them (nobody, the WD14 tagger, a vision LLM), the rules
 * are ours: the trigger word comes first, and words that describe the style are taken out, so the
 * LoRA ties the style to the trigger instead of to "manga" or "lineart".
 */

export const CAPTION_MODES = ['none', 'wd14', 'llm'] as const;
export type CaptionMode = (typeof CAPTION_MODES)[number];

/** Style-describing words and tags, removed from every caption (extendable per dataset). */
export const DEFAULT_STYLE_WORDS = [
  'anime style',
  'manga style',
  'comic style',
  'cartoon style',
  'art style',
  'anime',
  'manga',
  'comic',
  'comics',
  'cartoon',
  'illustration',
  'digital art',
  'digital illustration',
  'traditional media',
  'monochrome',
  'greyscale',
  'grayscale',
  'black and white',
  'lineart',
  'line art',
  'sketch',
  'ink',
  'inked',
  'cel shading',
  'screentone',
  'halftone',
  'watercolor',
  'watercolor (medium)',
  'watercolour',
  'official art',
  'realistic',
  'photorealistic',
] as const;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Tags as the tagger writes them may use underscores; compare on a normal form. */
function normalTag(tag: string): string {
  return tag.trim().toLowerCase().replace(/_/g, ' ').replace(/\s+/g, ' ');
}

/** WD14-style caption: comma-separated tags. Style tags dropped, duplicates dropped, trigger first. */
export function tagCaption(trigger: string, tags: string[], styleWords: readonly string[]): string {
  const banned = new Set(styleWords.map(normalTag));
  const seen = new Set<string>([normalTag(trigger)]);
  const kept: string[] = [];
  for (const raw of tags) {
    const tag = normalTag(raw);
    if (tag === '' || banned.has(tag) || seen.has(tag)) continue;
    seen.add(tag);
    kept.push(tag);
  }
  return [trigger, ...kept].join(', ');
}

/**
 * Natural-language caption: style phrases removed wherever they appear as words, with the small
 * repairs that keeps the sentence readable ("An anime illustration of a girl" → "A picture of a girl",
 * "smiling, in monochrome" → "smiling"), then the trigger put first.
 */
export function sentenceCaption(trigger: string, text: string, styleWords: readonly string[]): string {
  const GAP = '\u0001';
  let cleaned = text.replace(/\s+/g, ' ').trim();
  // Longest phrases first, so "anime style" goes before "anime" leaves a stray "style".
  const phrases = [...styleWords].sort((a, b) => b.length - a.length);
  for (const phrase of phrases) {
    const pattern = new RegExp(
      `(?<![\\p{L}\\p{N}])${escapeRegExp(phrase).replace(/ /g, '[\\s_-]+')}(?![\\p{L}\\p{N}])`,
      'giu',
    );
    cleaned = cleaned.replace(pattern, GAP);
  }
  cleaned = cleaned
    // Runs of removed words (possibly joined by "and", "-" or commas) become one gap.
    .replace(new RegExp(`${GAP}(?:[\\s,-]*(?:and\\s+)?${GAP})+`, 'g'), GAP)
    // "An <gap> of a girl" → "A picture of a girl".
    .replace(
      new RegExp(`\\b(an?|the)\\s+${GAP}\\s*(of|showing|depicting|with)\\b`, 'gi'),
      (_m, article: string, word: string) =>
        `${article[0] === article[0]?.toUpperCase() ? 'A' : 'a'} picture ${word}`,
    )
    // "in <gap>", "in a <gap>", "as <gap>" carry no meaning once the style is gone.
    .replace(new RegExp(`\\b(in|as|with|drawn in|done in)\\s+((an?|the)\\s+)?${GAP}`, 'gi'), GAP)
    .replace(new RegExp(`\\b(an?|the)\\s+${GAP}`, 'gi'), GAP)
    .replace(new RegExp(GAP, 'g'), ' ')
    .replace(/\s+([,.;:!?])/g, '$1')
    .replace(/([,;:])(\s*[,;:])+/g, '$1')
    .replace(/[,;:]\s*([.!?])/g, '$1')
    .replace(/(^|[.!?]\s*)[.!?]+/g, '$1')
    .replace(/\s{2,}/g, ' ')
    .replace(/^[\s,.;:]+|[\s,;:]+$/g, '')
    .trim();
  // Drop the trigger if the model echoed it, then put it first.
  cleaned = cleaned.replace(new RegExp(`^${escapeRegExp(trigger)}[\\s,]*`, 'i'), '');
  return cleaned ? `${trigger}, ${cleaned}` : trigger;
}

export interface CaptionTarget {
  /** The prepared PNG. */
  imagePath: string;
  /** Where the caption goes (image stem + caption extension). */
  captionPath: string;
}

export interface LlmCaptionSettings {
  baseURL?: string;
  apiKey?: string;
  model: string;
  timeoutMs: number;
}

const CAPTION_PROMPT =
  'Describe this picture for an image-model training caption: one or two plain sentences about what is ' +
  'shown (subjects, clothing, pose, expression, setting, composition, lighting). Do not describe the art ' +
  'style, medium or technique (no "anime", "manga", "sketch", "illustration", "comic", "lineart", ' +
  '"monochrome" and the like), and do not start with "This image" or "The picture".';

const CaptionReply = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullable().optional(),
          refusal: z.string().nullable().optional(),
        }),
      }),
    )
    .min(1),
});

/** Natural-language captions from a vision-capable model (for FLUX), one request per image. */
export async function captionWithLlm(
  targets: CaptionTarget[],
  trigger: string,
  styleWords: readonly string[],
  settings: LlmCaptionSettings,
): Promise<string[]> {
  if (!settings.baseURL && !settings.apiKey) {
    throw new InputError(
      'LLM captions need OPENAI_API_KEY or OPENAI_BASE_URL (a vision-capable model in LLM_MODEL).',
    );
  }
  const client = new OpenAI({
    baseURL: settings.baseURL,
    // Local OpenAI-compatible servers accept any key; the SDK insists on one.
    apiKey: settings.apiKey ?? 'not-needed',
    timeout: settings.timeoutMs,
    maxRetries: 2,
  });
  // A few requests in flight: a local vision server queues them, a hosted one answers in parallel.
  return mapPool(targets, 3, async (target) => {
    // Vision models see ~768 px anyway; a JPEG this size keeps the request small.
    const jpeg = await sharp(target.imagePath)
      .resize(768, 768, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 85 })
      .toBuffer();
    let text: string;
    try {
      const completion = await client.chat.completions.create({
        model: settings.model,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: CAPTION_PROMPT },
              { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${jpeg.toString('base64')}` } },
            ],
          },
        ],
        max_tokens: 200,
      });
      const reply = CaptionReply.parse(completion);
      const message = reply.choices[0]?.message;
      if (!message?.content)
        throw new Error(message?.refusal ? `refused: ${message.refusal}` : 'empty caption');
      text = message.content;
    } catch (error) {
      throw new UpstreamError(
        'llm',
        `The captioning model could not caption ${basename(target.imagePath)}.`,
        {
          cause: error,
          operatorMessage: `caption request for ${target.imagePath} failed: ${(error as Error).message}`,
        },
      );
    }
    const caption = sentenceCaption(trigger, text.split('\n')[0] ?? '', styleWords);
    await writeFile(target.captionPath, `${caption}\n`, 'utf8');
    return caption;
  });
}

export interface Wd14Settings {
  /** kohya sd-scripts checkout (SD_SCRIPTS_DIR). */
  sdScriptsDir: string;
  /** Python with sd-scripts' requirements (TRAINER_PYTHON). */
  python: string;
  /** Folder holding `<repo_id with / as _>/model.onnx` and `selected_tags.csv`; default <sdScriptsDir>/wd14_tagger_model. */
  modelDir?: string;
  repoId?: string;
  threshold?: number;
}

export const DEFAULT_WD14_REPO = 'SmilingWolf/wd-v1-4-convnext-tagger-v2';

/**
 * WD14 tags through kohya's finetune/tag_images_by_wd14_tagger.py, offline from its model folder
 * (ONNX). The tagger writes `<stem>.txt` next to each image; we read those, clean them and write the
 * final caption with our extension.
 */
export async function captionWithWd14(
  imageDir: string,
  targets: CaptionTarget[],
  trigger: string,
  styleWords: readonly string[],
  settings: Wd14Settings,
): Promise<string[]> {
  const script = join(settings.sdScriptsDir, 'finetune', 'tag_images_by_wd14_tagger.py');
  if (!existsSync(script)) {
    throw new InputError(
      `WD14 captions need kohya sd-scripts: ${script} was not found (set SD_SCRIPTS_DIR).`,
    );
  }
  const repoId = settings.repoId ?? DEFAULT_WD14_REPO;
  const modelDir = settings.modelDir ?? join(settings.sdScriptsDir, 'wd14_tagger_model');
  const modelFolder = join(modelDir, repoId.replace(/\//g, '_'));
  for (const file of ['model.onnx', 'selected_tags.csv']) {
    if (!existsSync(join(modelFolder, file))) {
      throw new InputError(
        `The WD14 tagger model is not installed: ${join(modelFolder, file)} is missing. ` +
          `Download ${repoId} once into ${modelFolder} (the tagger runs offline).`,
      );
    }
  }
  // The tagger's own extension is fixed to .txt here, so we know where to read its tags from.
  const args = [
    script,
    '--onnx',
    '--model_dir',
    modelDir,
    '--repo_id',
    repoId,
    '--thresh',
    String(settings.threshold ?? 0.35),
    '--batch_size',
    '1',
    '--caption_extension',
    '.txt',
    '--caption_separator',
    ', ',
    imageDir,
  ];
  await runTagger(settings.python, args, settings.sdScriptsDir);

  const captions: string[] = [];
  for (const target of targets) {
    const tagFile = target.imagePath.replace(/\.png$/i, '.txt');
    let line: string;
    try {
      line = (await readFile(tagFile, 'utf8')).split('\n')[0] ?? '';
    } catch (error) {
      throw new UpstreamError('wd14', 'The WD14 tagger did not tag every image.', {
        cause: error,
        operatorMessage: `no tag file ${tagFile} after the tagger ran`,
        retryable: false,
      });
    }
    const caption = tagCaption(trigger, line.split(','), styleWords);
    await writeFile(target.captionPath, `${caption}\n`, 'utf8');
    // With another caption extension the raw tags would sit beside it; kohya would ignore them, but
    // a person reading the folder should see one caption per image.
    if (target.captionPath !== tagFile) await unlink(tagFile);
    captions.push(caption);
  }
  return captions;
}

async function runTagger(python: string, args: string[], cwd: string): Promise<void> {
  const logger = log().child({ component: 'wd14' });
  logger.info({ python, args }, 'running the WD14 tagger');
  const child = spawn(python, args, {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HF_HUB_OFFLINE: '1', PYTHONUNBUFFERED: '1' },
  });
  // Keep only the tail of the output: it is where Python puts the traceback.
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  }).catch((error: unknown) => {
    throw new UpstreamError('wd14', `The WD14 tagger could not be started (${python}).`, {
      cause: error,
      operatorMessage: `spawn ${python} failed: ${(error as Error).message}`,
      retryable: false,
    });
  });
  if (code !== 0) {
    logger.error({ code, tail }, 'WD14 tagger failed');
    throw new UpstreamError('wd14', `The WD14 tagger failed (exit code ${code}).`, {
      operatorMessage: `tagger exited with ${code}: ${tail.split(/\r|\n/).filter(Boolean).slice(-5).join(' | ')}`,
      retryable: false,
    });
  }
}
