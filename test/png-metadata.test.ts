import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { RenderRecipe } from '../src/comic/recipe.ts';
import {
  a1111Parameters,
  crc32,
  embedRecipe,
  PngFormatError,
  readEmbeddedRecipe,
  readPngText,
  readPngTextChunks,
  writePngText,
} from '../src/gpu/png-metadata.ts';
import { addTextChunks } from './fakes/comfyui/png.ts';

const recipe: RenderRecipe = RenderRecipe.parse({
  version: 1,
  family: 'illustrious',
  vPrediction: false,
  models: { kind: 'checkpoint', checkpoint: 'illustriousXL_v01.safetensors' },
  positive: 'masterpiece, best quality, 1girl, rooftop, night',
  negative: 'lowres, bad anatomy',
  loras: [
    {
      name: 'style/comic_style_v1.safetensors',
      strength: 0.8,
      artifactKey: null,
      trigger: 'cmstyle',
      sha256: 'ab'.repeat(32),
    },
  ],
  width: 832,
  height: 1216,
  sampler: 'euler_ancestral',
  scheduler: 'karras',
  steps: 28,
  cfg: 5.5,
  guidance: null,
  seed: 123456789,
  candidates: 1,
  controlNet: null,
  panel: {
    comicId: 'c1',
    page: 1,
    panel: 2,
    attempt: 0,
    shot: 'wide',
    angle: 'eye',
    setting: 'rooftop',
    action: 'stands',
    characters: [],
  },
});

const smallPng = () =>
  sharp({ create: { width: 16, height: 8, channels: 3, background: { r: 200, g: 10, b: 10 } } })
    .png()
    .toBuffer();

describe('PNG text chunks', () => {
  it('computes the PNG CRC-32 (IEND chunk check value)', () => {
    expect(crc32(Buffer.from('IEND', 'latin1')).toString(16)).toBe('ae426082');
  });

  it('keeps ComfyUI prompt/workflow chunks and adds parameters + comicmaster; the image still decodes', async () => {
    const comfy = addTextChunks(await smallPng(), {
      prompt: '{"1":{"class_type":"SaveImage"}}',
      workflow: '{"nodes":[]}',
    });
    const out = embedRecipe(comfy, recipe);
    const text = readPngText(out);
    expect(text.prompt).toBe('{"1":{"class_type":"SaveImage"}}');
    expect(text.workflow).toBe('{"nodes":[]}');
    expect(text.parameters).toContain('Negative prompt: lowres, bad anatomy');
    expect(readEmbeddedRecipe(out)).toEqual(recipe);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([16, 8]);
  });

  it('writes A1111 parameters other tools can parse', () => {
    const text = a1111Parameters(recipe);
    const [positive, negative, settings] = text.split('\n');
    expect(positive).toBe('masterpiece, best quality, 1girl, rooftop, night <lora:comic_style_v1:0.8>');
    expect(negative).toBe('Negative prompt: lowres, bad anatomy');
    expect(settings).toContain(
      'Steps: 28, Sampler: Euler a, Schedule type: Karras, CFG scale: 5.5, Seed: 123456789, Size: 832x1216, Model: illustriousXL_v01',
    );
    expect(settings).toContain('Lora hashes: "comic_style_v1: abababababab"');
  });

  it('replaces a chunk of the same keyword instead of adding a second one', async () => {
    const once = embedRecipe(await smallPng(), recipe);
    const twice = embedRecipe(once, { ...recipe, seed: 42 });
    const keywords = readPngTextChunks(twice).map((c) => c.keyword);
    expect(keywords.filter((k) => k === 'comicmaster')).toHaveLength(1);
    expect(readEmbeddedRecipe(twice)?.seed).toBe(42);
  });

  it('stores non-Latin-1 text as UTF-8 iTXt and reads zTXt', async () => {
    const png = writePngText(await smallPng(), { Title: 'コミック — 第1話' });
    const [chunk] = readPngTextChunks(png);
    expect(chunk).toEqual({ keyword: 'Title', text: 'コミック — 第1話', kind: 'iTXt' });

    const z = Buffer.concat([
      Buffer.from('Comment\0\0', 'latin1'),
      deflateSync(Buffer.from('squeezed', 'latin1')),
    ]);
    const withZ = insertRawChunk(await smallPng(), 'zTXt', z);
    expect(readPngText(withZ).Comment).toBe('squeezed');
    await expect(sharp(withZ).metadata()).resolves.toMatchObject({ width: 16 });
  });

  it('refuses something that is not a PNG', () => {
    expect(() => readPngText(Buffer.from('GIF89a not a png at all'))).toThrow(PngFormatError);
  });
});

function insertRawChunk(png: Buffer, type: string, data: Buffer): Buffer {
  const ihdrEnd = 8 + 12 + 13;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([png.subarray(0, ihdrEnd), len, body, crc, png.subarray(ihdrEnd)]);
}
