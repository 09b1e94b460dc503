/**
 * PNG text chunks: read and write tEXt / iTXt (and read zTXt), in pure Node.
 *
 * Why: every panel image carries what made it, so it can be re-made and so other tools can read it.
 * - ComfyUI's own `prompt` and `workflow` chunks (written by SaveImage) are kept as they are.
 * - An A1111-style `parameters` chunk ("<positive>\nNegative prompt: …\nSteps: …") is what Civitai,
 *   A1111/Forge's "PNG Info" and most image viewers understand.
 * - A `comicmaster` chunk holds the RenderRecipe JSON: the exact input to re-make the image.
 *
 * Text that fits Latin-1 goes in tEXt (the PNG spec's encoding for it); anything else goes in iTXt as
 * UTF-8, which is what PIL and A1111 do too.
 */
import { inflateSync } from 'node:zlib';
import * as zlib from 'node:zlib';
import { RenderRecipe } from '../comic/recipe.ts';
import { ComicMasterError } from '../errors.ts';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export class PngFormatError extends ComicMasterError {
  constructor(reason: string) {
    super('png_invalid', 'An image could not be read (it is not a valid PNG).', {
      operatorMessage: `PNG: ${reason}`,
    });
    this.name = 'PngFormatError';
  }
}

export interface PngTextChunk {
  keyword: string;
  text: string;
  kind: 'tEXt' | 'iTXt' | 'zTXt';
}

// ---------------------------------------------------------------------------------------------
// CRC-32 (ISO 3309, as PNG uses it). node:zlib has crc32 from Node 20.15 / 22.2; the table is the
// fallback for older runtimes.
// ---------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32Fallback(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const nodeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
export function crc32(data: Uint8Array): number {
  return nodeCrc32 ? nodeCrc32(data) >>> 0 : crc32Fallback(data);
}

// ---------------------------------------------------------------------------------------------
// Chunks
// ---------------------------------------------------------------------------------------------

interface RawChunk {
  type: string;
  data: Buffer;
  /** The whole chunk, length to CRC, as it appeared in the file. */
  bytes: Buffer;
}

function splitChunks(png: Buffer): RawChunk[] {
  if (png.length < 8 || !png.subarray(0, 8).equals(PNG_SIGNATURE))
    throw new PngFormatError('missing PNG signature');
  const chunks: RawChunk[] = [];
  let offset = 8;
  while (offset < png.length) {
    if (offset + 12 > png.length) throw new PngFormatError(`truncated chunk header at byte ${offset}`);
    const length = png.readUInt32BE(offset);
    const end = offset + 12 + length;
    if (end > png.length) throw new PngFormatError(`chunk at byte ${offset} runs past the end of the file`);
    const type = png.subarray(offset + 4, offset + 8).toString('latin1');
    chunks.push({
      type,
      data: png.subarray(offset + 8, offset + 8 + length),
      bytes: png.subarray(offset, end),
    });
    offset = end;
    if (type === 'IEND') break;
  }
  if (chunks[0]?.type !== 'IHDR') throw new PngFormatError('the first chunk is not IHDR');
  if (chunks.at(-1)?.type !== 'IEND') throw new PngFormatError('no IEND chunk');
  return chunks;
}

function encodeChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length, 0);
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData), 0);
  return Buffer.concat([length, typeAndData, crc]);
}

function decodeTextChunk(chunk: RawChunk): PngTextChunk | undefined {
  const { data } = chunk;
  const zero = data.indexOf(0);
  if (zero <= 0) return undefined;
  const keyword = data.subarray(0, zero).toString('latin1');
  try {
    if (chunk.type === 'tEXt')
      return { keyword, text: data.subarray(zero + 1).toString('latin1'), kind: 'tEXt' };
    if (chunk.type === 'zTXt') {
      // keyword \0 method(1) compressed
      return { keyword, text: inflateSync(data.subarray(zero + 2)).toString('latin1'), kind: 'zTXt' };
    }
    if (chunk.type === 'iTXt') {
      // keyword \0 compressionFlag(1) method(1) languageTag \0 translatedKeyword \0 text
      const compressed = data[zero + 1] === 1;
      const langEnd = data.indexOf(0, zero + 3);
      if (langEnd < 0) return undefined;
      const translatedEnd = data.indexOf(0, langEnd + 1);
      if (translatedEnd < 0) return undefined;
      const body = data.subarray(translatedEnd + 1);
      return { keyword, text: (compressed ? inflateSync(body) : body).toString('utf8'), kind: 'iTXt' };
    }
  } catch {
    return undefined; // a corrupt compressed chunk is skipped, like image viewers do
  }
  return undefined;
}

const LATIN1_ONLY = /^[\x20-\x7e\xa0-\xff\n]*$/;
const KEYWORD = /^[\x20-\x7e\xa1-\xff]{1,79}$/;

function textChunkFor(keyword: string, text: string): Buffer {
  if (!KEYWORD.test(keyword) || keyword.startsWith(' ') || keyword.endsWith(' ')) {
    throw new PngFormatError(`invalid text chunk keyword ${JSON.stringify(keyword)}`);
  }
  if (LATIN1_ONLY.test(text)) {
    return encodeChunk(
      'tEXt',
      Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]),
    );
  }
  // iTXt, uncompressed, no language tag, no translated keyword.
  return encodeChunk(
    'iTXt',
    Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, 'utf8')]),
  );
}

const TEXT_TYPES = new Set(['tEXt', 'iTXt', 'zTXt']);

/** Every text chunk in file order. */
export function readPngTextChunks(png: Buffer): PngTextChunk[] {
  return splitChunks(png)
    .filter((c) => TEXT_TYPES.has(c.type))
    .map(decodeTextChunk)
    .filter((c): c is PngTextChunk => c !== undefined);
}

/** Text chunks as keyword → text (the last one wins when a keyword repeats). */
export function readPngText(png: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const chunk of readPngTextChunks(png)) out[chunk.keyword] = chunk.text;
  return out;
}

/**
 * Set text chunks: chunks with the same keywords are replaced, every other chunk is kept byte for
 * byte. New chunks go right before the first IDAT, where readers that stop early still find them.
 */
export function writePngText(png: Buffer, texts: Record<string, string>): Buffer {
  const chunks = splitChunks(png);
  const replacing = new Set(Object.keys(texts));
  const fresh = Object.entries(texts).map(([k, v]) => textChunkFor(k, v));
  const out: Buffer[] = [PNG_SIGNATURE];
  let inserted = false;
  for (const chunk of chunks) {
    if (TEXT_TYPES.has(chunk.type)) {
      const decoded = decodeTextChunk(chunk);
      if (decoded && replacing.has(decoded.keyword)) continue;
    }
    if (!inserted && (chunk.type === 'IDAT' || chunk.type === 'IEND')) {
      out.push(...fresh);
      inserted = true;
    }
    out.push(chunk.bytes);
  }
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------
// What we embed
// ---------------------------------------------------------------------------------------------

/** The keyword of the chunk holding the recipe JSON. */
export const RECIPE_KEYWORD = 'comicmaster';

/** ComfyUI sampler names → A1111/Forge names (what their PNG Info and Civitai expect). */
const A1111_SAMPLERS: Record<string, string> = {
  euler: 'Euler',
  euler_ancestral: 'Euler a',
  heun: 'Heun',
  dpm_2: 'DPM2',
  dpm_2_ancestral: 'DPM2 a',
  lms: 'LMS',
  dpm_fast: 'DPM fast',
  dpm_adaptive: 'DPM adaptive',
  dpmpp_2s_ancestral: 'DPM++ 2S a',
  dpmpp_sde: 'DPM++ SDE',
  dpmpp_sde_gpu: 'DPM++ SDE',
  dpmpp_2m: 'DPM++ 2M',
  dpmpp_2m_sde: 'DPM++ 2M SDE',
  dpmpp_2m_sde_gpu: 'DPM++ 2M SDE',
  dpmpp_2m_sde_heun: 'DPM++ 2M SDE Heun',
  dpmpp_3m_sde: 'DPM++ 3M SDE',
  dpmpp_3m_sde_gpu: 'DPM++ 3M SDE',
  ddim: 'DDIM',
  lcm: 'LCM',
  uni_pc: 'UniPC',
  uni_pc_bh2: 'UniPC',
  ipndm: 'iPNDM',
  restart: 'Restart',
};

const A1111_SCHEDULES: Record<string, string> = {
  normal: 'Normal',
  karras: 'Karras',
  exponential: 'Exponential',
  sgm_uniform: 'SGM Uniform',
  simple: 'Simple',
  ddim_uniform: 'DDIM',
  beta: 'Beta',
  kl_optimal: 'KL Optimal',
  linear_quadratic: 'Linear Quadratic',
};

const baseName = (file: string) =>
  (file.split('/').pop() ?? file).replace(/\.(safetensors|ckpt|pt|pth|bin|gguf)$/i, '');

/** A1111 quotes a parameter value that holds a comma, colon or quote. */
function quoteIfNeeded(value: string): string {
  return /[,:"\n]/.test(value) ? JSON.stringify(value) : value;
}

/**
 * The A1111 "parameters" text for a recipe. LoRAs are also written as `<lora:name:strength>` at the
 * end of the positive prompt, as A1111 does, so pasting the text there loads them.
 */
export function a1111Parameters(recipe: RenderRecipe): string {
  const loraTags = recipe.loras.map((l) => `<lora:${baseName(l.name)}:${l.strength}>`).join(' ');
  const positive = loraTags ? `${recipe.positive}${recipe.positive ? ' ' : ''}${loraTags}` : recipe.positive;
  const model =
    recipe.models.kind === 'checkpoint' || recipe.models.kind === 'sd3'
      ? recipe.models.checkpoint
      : recipe.models.unet;
  const fields: [string, string][] = [
    ['Steps', String(recipe.steps)],
    ['Sampler', A1111_SAMPLERS[recipe.sampler] ?? recipe.sampler],
    ['Schedule type', A1111_SCHEDULES[recipe.scheduler] ?? recipe.scheduler],
    ['CFG scale', String(recipe.cfg)],
  ];
  if (recipe.guidance !== null) fields.push(['Distilled CFG Scale', String(recipe.guidance)]);
  fields.push(
    ['Seed', String(recipe.seed)],
    ['Size', `${recipe.width}x${recipe.height}`],
    ['Model', baseName(model)],
  );
  if (recipe.candidates > 1) fields.push(['Batch size', String(recipe.candidates)]);
  if (recipe.controlNet) {
    fields.push([
      'ControlNet 0',
      `Module: none, Model: ${baseName(recipe.controlNet.model)}, Weight: ${recipe.controlNet.strength}, ` +
        `Guidance Start: ${recipe.controlNet.startPercent}, Guidance End: ${recipe.controlNet.endPercent}`,
    ]);
  }
  const hashed = recipe.loras.filter((l) => l.sha256);
  if (hashed.length > 0) {
    // A1111's LoRA "AutoV3" short hash is the first 12 hex digits of the file's sha256.
    fields.push([
      'Lora hashes',
      hashed.map((l) => `${baseName(l.name)}: ${(l.sha256 ?? '').slice(0, 12)}`).join(', '),
    ]);
  }
  if (recipe.vPrediction) fields.push(['Noise schedule', 'v-prediction, zero terminal SNR']);
  fields.push(['Version', 'ComicMaster']);
  const line = fields.map(([k, v]) => `${k}: ${quoteIfNeeded(v)}`).join(', ');
  return `${positive}\nNegative prompt: ${recipe.negative}\n${line}`;
}

/** Add `parameters` and `comicmaster` to a PNG, keeping ComfyUI's `prompt` and `workflow`. */
export function embedRecipe(png: Buffer, recipe: RenderRecipe): Buffer {
  return writePngText(png, { parameters: a1111Parameters(recipe), [RECIPE_KEYWORD]: JSON.stringify(recipe) });
}

/** The recipe a PNG carries, or undefined when it has none (or an unreadable one). */
export function readEmbeddedRecipe(png: Buffer): RenderRecipe | undefined {
  const text = readPngText(png)[RECIPE_KEYWORD];
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = RenderRecipe.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}
