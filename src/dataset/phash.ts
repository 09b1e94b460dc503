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

export const DEFAULT_DUPLICATE_THRESHOLDS: DuplicateThresholds = { maxHammingDistance: 6, maxMeanDifference: 16 };

/**
 * Decodes the image fully (so a truncated or corrupt file throws here) with EXIF orientation applied,
 * and returns its fingerprint. `failOn: 'truncated'` refuses a cut-off file instead of padding it.
 */
export async function fingerprint(input: Buffer | string, maxPixels: number): Promise<Fingerprint> {
  // One decode, straight to a small colour thumbnail (JPEG shrink-on-load makes this cheap); both
  // the hash and the mean colour come from it.
  const size = 32;
  const thumb = await sharp(input, { limitInputPixels: maxPixels, failOn: 'truncated' })
    .rotate()
    .flatten({ background: '#ffffff' })
    .resize(size, size, { fit: 'fill' })
    .toColourspace('srgb')
    .raw()
    .toBuffer();
  const mean: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) mean[c as 0 | 1 | 2] += (thumb[i * 3 + c] ?? 0) / (size * size);
  }
  const grey = await sharp(thumb, { raw: { width: size, height: size, channels: 3 } })
    .greyscale()
    .resize(9, 8, { fit: 'fill' })
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

export function isNearDuplicate(a: Fingerprint, b: Fingerprint, thresholds: DuplicateThresholds = DEFAULT_DUPLICATE_THRESHOLDS): boolean {
  if (hammingDistance(a.dhash, b.dhash) > thresholds.maxHammingDistance) return false;
  return a.mean.every((m, i) => Math.abs(m - (b.mean[i] ?? 0)) <= thresholds.maxMeanDifference);
}
