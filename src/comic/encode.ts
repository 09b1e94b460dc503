import sharp, { type Sharp } from 'sharp';
import { ComicMasterError } from '../errors.ts';

/** Discord's default upload limit for a server without boosts. */
export const DISCORD_UPLOAD_LIMIT = 10 * 1024 * 1024;

export type ImageFormat = 'png' | 'webp' | 'jpeg';

export interface EncodedImage {
  data: Buffer;
  format: ImageFormat;
  width: number;
  height: number;
}

// Page images are flat colour plus renders: these settings trade a little CPU for much smaller files.
export function toPng(image: Buffer | Sharp): Promise<Buffer> {
  const s = Buffer.isBuffer(image) ? sharp(image) : image;
  return s.png({ compressionLevel: 6 }).toBuffer();
}

export function toWebp(image: Buffer | Sharp, quality = 88): Promise<Buffer> {
  const s = Buffer.isBuffer(image) ? sharp(image) : image;
  return s.webp({ quality, effort: 3, smartSubsample: true }).toBuffer();
}

function toJpeg(image: Sharp, quality: number): Promise<Buffer> {
  return image
    .flatten({ background: '#ffffff' })
    .jpeg({ quality, optimiseCoding: true, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

const QUALITIES = [86, 76, 66, 56];
// WebP's hard limit is 16383 px a side; beyond that only JPEG/PNG remain.
const WEBP_MAX_SIDE = 16_383;

/**
 * Encodes an image so that it fits under `maxBytes`: the lossless PNG when it fits, else the preferred
 * lossy format (WebP unless told JPEG) at decreasing quality, then the same at smaller sizes. Lettering
 * stays readable longer by lowering quality first and resolution only after that.
 */
export async function encodeUnderLimit(
  image: Buffer,
  opts: { maxBytes: number; prefer?: ImageFormat },
): Promise<EncodedImage> {
  if (!Number.isFinite(opts.maxBytes) || opts.maxBytes < 1024) {
    throw new ComicMasterError('encode_limit', 'The upload limit is too small to hold an image.', {
      operatorMessage: `encodeUnderLimit: maxBytes ${opts.maxBytes} is below 1 KiB`,
    });
  }
  const meta = await sharp(image).metadata();
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) {
    throw new ComicMasterError('encode_input', 'The page image could not be read.', {
      operatorMessage: 'no image size',
    });
  }

  const prefer = opts.prefer ?? 'png';
  if (prefer === 'png') {
    const png = await toPng(sharp(image).rotate());
    if (png.length <= opts.maxBytes) return { data: png, format: 'png', width, height };
  }
  const lossy: 'webp' | 'jpeg' =
    prefer === 'jpeg' || Math.max(width, height) > WEBP_MAX_SIDE ? 'jpeg' : 'webp';

  // Lower quality first (lettering survives that better than downscaling), then shrink by the factor the
  // last attempt says is needed, so a hopeless first try does not walk every step.
  let scale = 1;
  let q = 0;
  for (let attempt = 0; attempt < 24; attempt++) {
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    const quality = QUALITIES[q] ?? QUALITIES[QUALITIES.length - 1]!;
    const resized = sharp(image).rotate().resize(w, h, { fit: 'fill', kernel: 'lanczos3' });
    const data = lossy === 'webp' ? await toWebp(resized, quality) : await toJpeg(resized, quality);
    if (data.length <= opts.maxBytes) return { data, format: lossy, width: w, height: h };
    const over = data.length / opts.maxBytes;
    if (over < 1.6 && q < QUALITIES.length - 1) {
      q++;
    } else {
      scale *= Math.min(0.9, Math.max(0.25, Math.sqrt(1 / over) * 0.92));
      if (w <= 16 || h <= 16) break;
    }
  }
  throw new ComicMasterError('encode_limit', 'The page could not be made small enough to upload.', {
    operatorMessage: `no encoding of a ${width}x${height} image fits ${opts.maxBytes} bytes`,
  });
}
