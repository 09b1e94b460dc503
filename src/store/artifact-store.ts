import type { Readable } from 'node:stream';
import { ComicMasterError, InputError } from '../errors.ts';

/**
 * Everything the product keeps as files — panel renders, pages, datasets, LoRA weights, training
 * logs — goes through this interface, addressed by a key such as `comics/<id>/pages/1.png`. The
 * local-folder implementation serves one box; an S3-compatible store can replace it for several.
 *
 * Keys look like relative POSIX paths and are validated the same way by every implementation, so a
 * key that works locally works on S3 and no key can escape the store's root.
 */

export interface ArtifactStat {
  /** Bytes. */
  size: number;
  modified: Date;
}

export interface ArtifactMeta {
  /**
   * A MIME type for stores that keep one (S3 serves it back). The local store does not record it:
   * readers there go by the key's extension.
   */
  contentType?: string;
}

export interface ArtifactStore {
  /** Write an artifact atomically: readers see the old content or the whole new one, never a part. */
  put(key: string, data: Buffer | Readable, meta?: ArtifactMeta): Promise<ArtifactStat>;
  /** Read as a stream. Throws ArtifactNotFoundError when the key holds nothing. */
  getStream(key: string): Promise<Readable>;
  /** Read whole. Throws ArtifactNotFoundError when the key holds nothing. */
  getBuffer(key: string): Promise<Buffer>;
  /** Size and modification time, or null when the key holds nothing. */
  stat(key: string): Promise<ArtifactStat | null>;
  /** Every key that starts with `prefix` (a plain string prefix: `comics/c1/` or `comics/c1/page`), sorted. */
  list(prefix?: string): Promise<string[]>;
  /** Remove an artifact. Returns false when there was nothing to remove. */
  delete(key: string): Promise<boolean>;
  exists(key: string): Promise<boolean>;
}

/** Longest key accepted (S3 allows 1024 bytes; we stay well under it and under PATH_MAX). */
export const MAX_KEY_LENGTH = 512;
/** Longest path segment (most filesystems allow 255 bytes per name). */
export const MAX_SEGMENT_LENGTH = 200;

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Whether a single file or folder name could be a segment of a valid key. */
export function isValidSegment(name: string): boolean {
  return name !== '.' && name !== '..' && name.length <= MAX_SEGMENT_LENGTH && SEGMENT.test(name);
}

/** A key (or list prefix) that the store refuses. Bad input: retrying will not help. */
export class ArtifactKeyError extends InputError {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    const shown = JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key);
    super(`The file name ${shown} is not allowed: ${reason}.`);
    this.name = 'ArtifactKeyError';
  }
}

/** Reading a key that holds nothing. */
export class ArtifactNotFoundError extends ComicMasterError {
  constructor(readonly key: string) {
    super('artifact_not_found', 'A file this needs is missing from the artifact store.', {
      operatorMessage: `artifact not found: ${key}`,
    });
    this.name = 'ArtifactNotFoundError';
  }
}

function checkSegments(key: string, segments: string[], allowEmptyLast: boolean): void {
  segments.forEach((segment, index) => {
    const isLast = index === segments.length - 1;
    if (segment === '') {
      if (isLast && allowEmptyLast) return;
      throw new ArtifactKeyError(key, 'it has an empty path segment (a leading, doubled or trailing "/")');
    }
    if (segment === '.' || segment === '..') {
      throw new ArtifactKeyError(key, 'it has a "." or ".." path segment');
    }
    if (segment.length > MAX_SEGMENT_LENGTH) {
      throw new ArtifactKeyError(key, `a path segment is longer than ${MAX_SEGMENT_LENGTH} characters`);
    }
    if (!SEGMENT.test(segment)) {
      throw new ArtifactKeyError(key, 'use only letters, digits, ".", "-" and "_" between "/" separators');
    }
  });
}

function checkCommon(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new ArtifactKeyError(String(key), 'it is not a string');
  if (key.length > MAX_KEY_LENGTH)
    throw new ArtifactKeyError(key, `it is longer than ${MAX_KEY_LENGTH} characters`);
  // Named checks first, so the message says what was wrong rather than "bad characters".
  if (key.includes('\0')) throw new ArtifactKeyError(key, 'it contains a NUL character');
  if (key.includes('\\')) throw new ArtifactKeyError(key, 'it contains a backslash');
  if (key.startsWith('/')) throw new ArtifactKeyError(key, 'it is an absolute path');
}

/** Validate a key; returns its path segments. Throws ArtifactKeyError. */
export function validateKey(key: string): string[] {
  checkCommon(key);
  if (key === '') throw new ArtifactKeyError(key, 'it is empty');
  const segments = key.split('/');
  checkSegments(key, segments, false);
  return segments;
}

/**
 * Validate a list prefix: '' (everything), a folder ending in '/', or the start of a key. Returns
 * the complete folder segments (what comes before the last '/') and the partial last segment.
 */
export function validatePrefix(prefix: string): { folder: string[]; partial: string } {
  checkCommon(prefix);
  if (prefix === '') return { folder: [], partial: '' };
  const segments = prefix.split('/');
  checkSegments(prefix, segments, true);
  const partial = segments.pop() ?? '';
  return { folder: segments, partial };
}
