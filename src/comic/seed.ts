import { createHash } from 'node:crypto';

/**
 * The seed of one render, derived from what the render is: the comic, the panel and the attempt.
 * The same tuple always gives the same seed, so any image can be remade, and a re-roll (attempt + 1)
 * gives a new image that is itself reproducible.
 *
 * 48 bits: well inside Number.MAX_SAFE_INTEGER (2^53 − 1) and inside KSampler's 0..2^64 − 1, so the
 * value survives JSON, jsonb and ComfyUI unchanged.
 */
export function seedFor(comicId: string, page: number, panel: number, attempt: number): number {
  // JSON of the tuple keeps the fields apart ("ab",1 never collides with "a",b1).
  const digest = createHash('sha256')
    .update(JSON.stringify([comicId, page, panel, attempt]))
    .digest();
  return digest.readUIntBE(0, 6);
}
