import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { DEFAULT_INGEST_LIMITS } from '../dataset/ingest.ts';
import { inspectImage, type ImageLimits } from '../dataset/images.ts';
import { InputError, UpstreamError } from '../errors.ts';
import type { ArtifactStore } from '../store/index.ts';

/**
 * Reference images of a character: fetched from a Discord attachment with limits on bytes and time,
 * judged by their bytes exactly like dataset images (src/dataset/images.ts: magic numbers, header-only
 * pixel count, minimum side), then decoded once under the pixel limit, turned upright (EXIF) and stored
 * as a PNG no larger than the IPAdapter needs.
 */

export const MAX_REFERENCE_IMAGES = 3;

export interface ReferenceLimits extends ImageLimits {
  /** Bytes of one attachment, checked against Discord's declared size and again while reading. */
  maxBytes: number;
  /** Whole download, connection to last byte. */
  timeoutMs: number;
  /** Long side of the stored image; IPAdapter's CLIP vision crops to 224 px anyway. */
  storedLongSide: number;
}

export const DEFAULT_REFERENCE_LIMITS: ReferenceLimits = {
  maxBytes: 10 * 1024 * 1024,
  maxPixels: DEFAULT_INGEST_LIMITS.maxPixels,
  // A face must be recognisable; the same floor as training images.
  minSide: DEFAULT_INGEST_LIMITS.minSide,
  timeoutMs: 20_000,
  storedLongSide: 1024,
};

/** An attachment as Discord describes it (discord.js Attachment has these fields). */
export interface AttachmentLike {
  name: string;
  url: string;
  size: number;
}

/** Reads a URL into memory, refusing before and while reading anything over `maxBytes`. */
export async function downloadLimited(
  attachment: AttachmentLike,
  limits: Pick<ReferenceLimits, 'maxBytes' | 'timeoutMs'> = DEFAULT_REFERENCE_LIMITS,
): Promise<Buffer> {
  const label = `“${attachment.name}”`;
  const tooBig = () =>
    new InputError(
      `${label} is too big for a reference image (at most ${Math.round(limits.maxBytes / 1024 / 1024)} MB).`,
    );
  if (attachment.size > limits.maxBytes) throw tooBig();
  let response: Response;
  try {
    response = await fetch(attachment.url, {
      signal: AbortSignal.timeout(limits.timeoutMs),
      redirect: 'follow',
    });
  } catch (cause) {
    throw new UpstreamError('discord', `I could not download ${label}; try again.`, {
      cause,
      operatorMessage: `reference image download failed for ${attachment.name}`,
    });
  }
  if (!response.ok || !response.body) {
    throw new UpstreamError(
      'discord',
      `I could not download ${label} (Discord answered ${response.status}); try again.`,
    );
  }
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      // The declared size may lie; the bytes themselves decide.
      if (total > limits.maxBytes) throw tooBig();
      chunks.push(Buffer.from(value));
    }
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    if (error instanceof InputError) throw error;
    throw new UpstreamError('discord', `The download of ${label} was cut off; try again.`, { cause: error });
  }
  return Buffer.concat(chunks);
}

/**
 * Judges the bytes like a dataset image, then decodes them once (under the pixel limit, failing on
 * truncation) into an upright PNG whose long side is at most `storedLongSide`.
 */
export async function prepareReferenceImage(
  name: string,
  bytes: Buffer,
  limits: ReferenceLimits = DEFAULT_REFERENCE_LIMITS,
): Promise<Buffer> {
  const inspection = await inspectImage(bytes, bytes.subarray(0, 64), limits);
  if (!inspection.ok) {
    const reason =
      inspection.code === 'too_small'
        ? `${inspection.reason.replace(' to train on', '')}`
        : inspection.reason;
    throw new InputError(`“${name}” can't be a reference image: ${reason}.`, {
      operatorMessage: `reference image ${name} refused (${inspection.code}): ${inspection.reason}`,
    });
  }
  try {
    return await sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'truncated' })
      .rotate()
      .resize({
        width: limits.storedLongSide,
        height: limits.storedLongSide,
        fit: 'inside',
        withoutEnlargement: true,
      })
      .flatten({ background: '#ffffff' })
      .png()
      .toBuffer();
  } catch (cause) {
    throw new InputError(`“${name}” can't be a reference image: the picture is damaged.`, {
      cause,
      operatorMessage: `reference image ${name} failed to decode`,
    });
  }
}

/** Where a character's reference image lives; named by content so the same picture is stored once. */
export function referenceImageKey(guildId: string, characterId: string, png: Buffer): string {
  const hash = createHash('sha256').update(png).digest('hex').slice(0, 24);
  return `characters/${guildId}/${characterId}/ref-${hash}.png`;
}

/** Downloads, checks and stores the attachments; returns their artifact keys in the given order. */
export async function storeReferenceImages(
  store: ArtifactStore,
  guildId: string,
  characterId: string,
  attachments: readonly AttachmentLike[],
  limits: ReferenceLimits = DEFAULT_REFERENCE_LIMITS,
): Promise<string[]> {
  if (attachments.length > MAX_REFERENCE_IMAGES) {
    throw new InputError(`A character has at most ${MAX_REFERENCE_IMAGES} reference images.`);
  }
  // All checked before any is stored: a refused third image leaves nothing half-saved.
  const prepared: Buffer[] = [];
  for (const attachment of attachments) {
    prepared.push(
      await prepareReferenceImage(attachment.name, await downloadLimited(attachment, limits), limits),
    );
  }
  const keys: string[] = [];
  for (const png of prepared) {
    const key = referenceImageKey(guildId, characterId, png);
    await store.put(key, png, { contentType: 'image/png' });
    keys.push(key);
  }
  return [...new Set(keys)];
}
