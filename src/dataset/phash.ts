import sharp from 'sharp';

/**
 * Perceptual fingerprints for finding duplicates and near-duplicates (the same picture re-saved,
 * resized or recompressed). dHash: shrink to 9×8 grey, and for each row record whether each pixel is
 * brighter than its right neighbour — 64 bits that survive scaling and JPEG noise. Flat images all
 * hash alike, so the mean colour is kept too and must also be close.
 */

export interface Fingerprint {
  /** 64-bit difference hash. */
  dhash: bigint;
  /** Mean R, G, B (0–255), to tell apart images whose structure is equally flat. */
  mean: [number, number, number];
}

export interface DuplicateThresholds {
  /** Maximum differing bits out of 64 (0–6 is "the same picture"; unrelated pictures are ~32). */
  maxHammingDistance: number;
  /** Maximum difference of any channel's mean. */
  maxMeanDifference: number;
}

export const DEFAULT_DUPLICATE_THRESHOLDS: DuplicateThresholds = {
  maxHammingDistance: 6,
  maxMeanDifference: 16,
};

/**
 * The fingerprint of decoded pixels (8-bit raw, 1–4 channels): the caller has already paid for the
 * decode (it is preparing the image anyway), so this only shrinks a buffer in memory.
 */
export async function fingerprintPixels(
  pixels: Buffer,
  width: number,
  height: number,
  channels: 1 | 2 | 3 | 4,
): Promise<Fingerprint> {
  const size = 32;
  const thumb = await sharp(pixels, { raw: { width, height, channels } })
    .flatten({ background: '#ffffff' })
    .resize(size, size, { fit: 'fill' })
    .toColourspace('srgb')
    .raw()
    .toBuffer();
  const thumbChannels = thumb.length / (size * size);
  const mean: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++)
      mean[c as 0 | 1 | 2] +=
        (thumb[i * thumbChannels + Math.min(c, thumbChannels - 1)] ?? 0) / (size * size);
  }
  const grey = await sharp(thumb, {
    raw: { width: size, height: size, channels: thumbChannels as 1 | 3 | 4 },
  })
    .greyscale()
    .resize(9, 8, { fit: 'fill' })
    .extractChannel(0)
    .raw()
    .toBuffer();
  let dhash = 0n;
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const left = grey[y * 9 + x] ?? 0;
      const right = grey[y * 9 + x + 1] ?? 0;
      dhash = (dhash << 1n) | (left > right ? 1n : 0n);
    }
  }
  return { dhash, mean };
}

export function hammingDistance(a: bigint, b: bigint): number {
  let x = a ^ b;
  let count = 0;
  while (x) {
    x &= x - 1n;
    count++;
  }
  return count;
}

export function isNearDuplicate(
  a: Fingerprint,
  b: Fingerprint,
  thresholds: DuplicateThresholds = DEFAULT_DUPLICATE_THRESHOLDS,
): boolean {
  if (hammingDistance(a.dhash, b.dhash) > thresholds.maxHammingDistance) return false;
  return a.mean.every((m, i) => Math.abs(m - (b.mean[i] ?? 0)) <= thresholds.maxMeanDifference);
}
