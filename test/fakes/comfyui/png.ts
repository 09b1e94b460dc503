/** Real PNGs for the fake ComfyUI: sharp renders them, tEXt chunks carry the prompt like SaveImage does. */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

/** A colour derived from a seed, so different seeds give visibly different images. */
export function seedColour(seed: number | string): { r: number; g: number; b: number } {
  const h = createHash('sha256').update(String(seed)).digest();
  return { r: h[0] ?? 0, g: h[1] ?? 0, b: h[2] ?? 0 };
}

export async function renderPng(width: number, height: number, seed: number | string): Promise<Buffer> {
  const c = seedColour(seed);
  const stripe = seedColour(`${String(seed)}:stripe`);
  // A stripe whose position depends on the seed, so images differ in layout as well as colour.
  const stripeHeight = Math.max(1, Math.floor(height / 8));
  const top =
    (parseInt(createHash('md5').update(String(seed)).digest('hex').slice(0, 6), 16) %
      Math.max(1, height - stripeHeight)) |
    0;
  const band = await sharp({ create: { width, height: stripeHeight, channels: 3, background: stripe } })
    .png()
    .toBuffer();
  return sharp({ create: { width, height, channels: 3, background: c } })
    .composite([{ input: band, top, left: 0 }])
    .png({ compressionLevel: 1 })
    .toBuffer();
}

export async function renderPreview(
  seed: number | string,
  step: number,
  format: 'jpeg' | 'png',
): Promise<Buffer> {
  const img = sharp({
    create: { width: 64, height: 64, channels: 3, background: seedColour(`${String(seed)}:${step}`) },
  });
  return format === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 95 }).toBuffer();
}

/** Insert tEXt chunks right after IHDR (PIL's PngInfo.add_text writes tEXt, latin-1). */
export function addTextChunks(png: Buffer, texts: Record<string, string>): Buffer {
  const ihdrEnd = 8 + 4 + 4 + 13 + 4;
  const chunks = Object.entries(texts).map(([keyword, text]) => {
    const data = Buffer.concat([
      Buffer.from(keyword, 'latin1'),
      Buffer.from([0]),
      Buffer.from(text, 'latin1'),
    ]);
    const type = Buffer.from('tEXt', 'latin1');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length, 0);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([type, data])) >>> 0, 0);
    return Buffer.concat([length, type, data, crc]);
  });
  return Buffer.concat([png.subarray(0, ihdrEnd), ...chunks, png.subarray(ihdrEnd)]);
}

/** Read tEXt chunks back (for tests). */
export function readTextChunks(png: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let offset = 8;
  while (offset + 8 <= png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.subarray(offset + 4, offset + 8).toString('latin1');
    if (type === 'tEXt') {
      const data = png.subarray(offset + 8, offset + 8 + length);
      const zero = data.indexOf(0);
      out[data.subarray(0, zero).toString('latin1')] = data.subarray(zero + 1).toString('latin1');
    }
    if (type === 'IEND') break;
    offset += 12 + length;
  }
  return out;
}
