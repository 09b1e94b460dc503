import sharp, { type Metadata } from 'sharp';

/**
 * Deciding what a file is from its bytes, never from its name: magic numbers first (so the reason can
 * say "a GIF" or "text"), then sharp's header parse for the dimensions. Nothing here decodes pixels;
 * the pixel limit is judged from the header, before any decoder can be made to allocate 1.6 GP.
 */

export const ACCEPTED_FORMATS = ['jpeg', 'png', 'webp'] as const;
export type AcceptedFormat = (typeof ACCEPTED_FORMATS)[number];

export interface ImageLimits {
  /** Width × height, judged from the header (and passed to sharp as limitInputPixels when decoding). */
  maxPixels: number;
  /** Below this on the short side an image is refused outright: upscaling it would only teach blur. */
  minSide: number;
}

export type Inspection =
  | {
      ok: true;
      format: AcceptedFormat;
      width: number;
      height: number;
      /** EXIF orientation, 1–8 (1 when absent). */ orientation: number;
    }
  | {
      ok: false;
      code: 'not_image' | 'unsupported_format' | 'too_many_pixels' | 'too_small' | 'corrupt';
      reason: string;
    };

/** Formats we can name from their first bytes, to explain a refusal. */
function sniff(head: Buffer): string | undefined {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  const ascii = (at: number, text: string) => head.subarray(at, at + text.length).toString('latin1') === text;
  if (starts(0xff, 0xd8, 0xff)) return 'jpeg';
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'a GIF';
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return 'a TIFF';
  if (ascii(0, 'BM')) return 'a BMP';
  if (ascii(4, 'ftyp')) {
    const brand = head.subarray(8, 12).toString('latin1');
    if (/^(heic|heix|hevc|heim|heis|mif1|msf1)$/.test(brand)) return 'a HEIC/HEIF photo';
    if (/^avi[fs]$/.test(brand)) return 'an AVIF';
    return 'a video or MP4-family file';
  }
  if (ascii(0, '%PDF')) return 'a PDF';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'a zip archive (nested archives are not opened)';
  return undefined;
}

/** Text: no NUL bytes and valid UTF-8 (allowing one multi-byte character cut off at the end of `head`). */
function looksLikeText(head: Buffer): boolean {
  if (head.includes(0)) return false;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let cut = 0; cut < 4 && cut <= head.length; cut++) {
    try {
      decoder.decode(head.subarray(0, head.length - cut));
      return true;
    } catch {
      // try again without the last byte(s)
    }
  }
  return false;
}

function megapixels(pixels: number): string {
  const mp = pixels / 1_000_000;
  return mp >= 10 ? `${Math.round(mp)} MP` : `${mp.toFixed(1).replace(/\.0$/, '')} MP`;
}

/**
 * Inspects an image file's bytes (a Buffer or a path). `head` is the file's first bytes (at least 16),
 * used for the magic numbers.
 */
export async function inspectImage(
  input: Buffer | string,
  head: Buffer,
  limits: ImageLimits,
): Promise<Inspection> {
  const sniffed = sniff(head);
  if (sniffed === undefined) {
    if (head.length === 0) return { ok: false, code: 'not_image', reason: 'not an image (empty file)' };
    if (looksLikeText(head)) {
      const svg = /<svg[\s>]/i.test(head.toString('utf8'));
      return svg
        ? {
            ok: false,
            code: 'unsupported_format',
            reason: 'an SVG drawing; only JPEG, PNG and WebP are accepted',
          }
        : { ok: false, code: 'not_image', reason: 'not an image (text)' };
    }
    return { ok: false, code: 'not_image', reason: 'not an image (unrecognised data)' };
  }
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(sniffed)) {
    return {
      ok: false,
      code: 'unsupported_format',
      reason: `${sniffed}; only JPEG, PNG and WebP are accepted`,
    };
  }
  const label = sniffed.toUpperCase();
  let metadata: Metadata;
  try {
    // Header only: metadata() does not decode pixels, so a pixel bomb costs nothing here.
    metadata = await sharp(input, { limitInputPixels: false }).metadata();
  } catch {
    return { ok: false, code: 'corrupt', reason: `a damaged ${label} (its header cannot be read)` };
  }
  if (metadata.format !== sniffed && !(sniffed === 'jpeg' && metadata.format === 'jpeg')) {
    return { ok: false, code: 'corrupt', reason: `a damaged ${label} (its header cannot be read)` };
  }
  if (metadata.pages !== undefined && metadata.pages > 1) {
    return {
      ok: false,
      code: 'unsupported_format',
      reason: `an animated ${label}; only still images are accepted`,
    };
  }
  const { width, height } = metadata;
  if (!width || !height) return { ok: false, code: 'corrupt', reason: `a damaged ${label} (no dimensions)` };
  if (width * height > limits.maxPixels) {
    return {
      ok: false,
      code: 'too_many_pixels',
      reason: `${width}×${height} pixels is over the ${megapixels(limits.maxPixels)} limit`,
    };
  }
  if (Math.min(width, height) < limits.minSide) {
    return {
      ok: false,
      code: 'too_small',
      reason: `${width}×${height} is too small to train on (the short side must be at least ${limits.minSide} px)`,
    };
  }
  return {
    ok: true,
    format: sniffed as AcceptedFormat,
    width,
    height,
    orientation: metadata.orientation ?? 1,
  };
}

/** The human name of an accepted format, for messages. */
export function formatLabel(format: AcceptedFormat): string {
  return format === 'webp' ? 'WebP' : format.toUpperCase();
}
