import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInflateRaw, crc32 } from 'node:zlib';

/**
 * A small, defensive zip reader for uploaded datasets. We read the central directory ourselves and
 * inflate each entry through node:zlib, counting the bytes that actually come out: the sizes written
 * in the archive's headers are never trusted (a bomb lies about them). Entry names are only ever used
 * in reports; nothing is written under an entry's name, and unsafe names are refused anyway.
 */

export interface ZipLimits {
  /** Entries in the central directory; more and the archive is refused before anything is inflated. */
  maxEntries: number;
  /** Bytes one entry may inflate to. */
  maxEntryBytes: number;
  /** Bytes all entries together may inflate to. */
  maxTotalBytes: number;
  /** Inflated bytes per compressed byte, checked once an entry passes `ratioFloorBytes`. */
  maxRatio: number;
  /** Below this many inflated bytes the ratio is not judged (tiny files compress absurdly well). */
  ratioFloorBytes: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 2000,
  maxEntryBytes: 50 * 1024 * 1024,
  maxTotalBytes: 2 * 1024 * 1024 * 1024,
  maxRatio: 100,
  ratioFloorBytes: 1024 * 1024,
};

export interface ZipEntry {
  /** The name as stored, decoded for display. */
  name: string;
  isDirectory: boolean;
  method: number;
  encrypted: boolean;
  compressedSize: number;
  /** What the archive claims; used only to notice lies, never to size anything. */
  declaredSize: number;
  crc: number;
  localHeaderOffset: number;
}

/** Why a whole archive or one of its entries was refused; `reason` is written for people. */
export class ZipRefusal extends Error {
  constructor(
    readonly code:
      | 'zip_unreadable'
      | 'zip_too_many_entries'
      | 'zip_unsafe_path'
      | 'zip_bomb'
      | 'zip_unsupported'
      | 'zip_corrupt',
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'ZipRefusal';
  }
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
/** End-of-central-directory record (22 bytes) plus the longest possible comment. */
const EOCD_SEARCH_BYTES = 22 + 0xffff;
const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;

/** True when the first bytes are a zip's local file header or an empty zip's end record. */
export function looksLikeZip(head: Buffer): boolean {
  if (head.length < 4) return false;
  const sig = head.readUInt32LE(0);
  return sig === LOCAL_SIGNATURE || sig === EOCD_SIGNATURE;
}

/**
 * Whether an entry name could escape the folder it is extracted into (zip slip) or is otherwise
 * unsafe: absolute paths, drive letters, backslashes (Windows separators), `..` segments, control
 * characters. Returns the reason, or undefined when the name is fine.
 */
export function unsafeEntryName(name: string): string | undefined {
  if (name.length === 0) return 'an empty name';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(name)) return 'control characters in the name';
  if (name.startsWith('/')) return 'an absolute path';
  if (/^[a-zA-Z]:/.test(name)) return 'a Windows drive letter';
  if (name.includes('\\')) return 'a backslash in the path';
  if (name.split('/').some((segment) => segment === '..')) return 'a ".." that points outside the folder';
  return undefined;
}

const cp437Fallback = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

export class ZipReader {
  private constructor(
    private readonly path: string,
    private readonly handle: FileHandle,
    private readonly fileSize: number,
    readonly entries: ZipEntry[],
  ) {}

  /** Opens an archive and reads its directory. Throws ZipRefusal for archives refused as a whole. */
  static async open(path: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Promise<ZipReader> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const entries = await readCentralDirectory(handle, size, limits);
      return new ZipReader(path, handle, size, entries);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /**
   * Inflates one entry into memory, refusing it (ZipRefusal) as soon as it inflates past the per-entry
   * limit, the remaining total budget, or the compression ratio limit, and when its checksum or its
   * size disagrees with the archive. `budget.remaining` is decreased by the bytes produced.
   */
  async read(entry: ZipEntry, limits: ZipLimits, budget: { remaining: number }): Promise<Buffer> {
    if (entry.encrypted)
      throw new ZipRefusal('zip_unsupported', 'encrypted (password-protected) entries are not supported');
    if (entry.method !== 0 && entry.method !== 8) {
      throw new ZipRefusal(
        'zip_unsupported',
        `compression method ${entry.method} is not supported (only stored and deflate)`,
      );
    }
    const local = Buffer.alloc(30);
    await this.handle.read(local, 0, 30, entry.localHeaderOffset);
    if (local.readUInt32LE(0) !== LOCAL_SIGNATURE)
      throw new ZipRefusal('zip_corrupt', 'the archive is damaged (bad local header)');
    const dataStart = entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataStart + entry.compressedSize > this.fileSize) {
      throw new ZipRefusal(
        'zip_corrupt',
        'the archive is truncated (entry data runs past the end of the file)',
      );
    }
    const perEntryLimit = Math.min(limits.maxEntryBytes, budget.remaining);
    const chunks: Buffer[] = [];
    let produced = 0;
    let crc = 0;

    const raw =
      entry.compressedSize === 0
        ? undefined
        : createReadStream(this.path, { start: dataStart, end: dataStart + entry.compressedSize - 1 });
    const output = raw && entry.method === 8 ? raw.pipe(createInflateRaw()) : raw;
    try {
      if (output) {
        for await (const chunk of output as AsyncIterable<Buffer>) {
          produced += chunk.length;
          if (produced > perEntryLimit) {
            // Past the archive's total budget nothing more may be read from it.
            if (perEntryLimit < limits.maxEntryBytes) budget.remaining = 0;
            const which =
              perEntryLimit === limits.maxEntryBytes
                ? `the ${mb(limits.maxEntryBytes)} per-file limit`
                : `the ${mb(limits.maxTotalBytes)} limit for the whole archive`;
            throw new ZipRefusal('zip_bomb', `inflates to more than ${which} (archive bomb?)`);
          }
          if (
            produced > limits.ratioFloorBytes &&
            produced > limits.maxRatio * Math.max(1, entry.compressedSize)
          ) {
            throw new ZipRefusal(
              'zip_bomb',
              `compresses more than ${limits.maxRatio}:1 (${mb(entry.compressedSize)} inflating past ${mb(produced)}), which is how archive bombs look`,
            );
          }
          crc = crc32(chunk, crc);
          chunks.push(chunk);
        }
      }
    } catch (error) {
      if (error instanceof ZipRefusal) throw error;
      throw new ZipRefusal(
        'zip_corrupt',
        `the entry's compressed data is damaged (${(error as Error).message})`,
      );
    } finally {
      raw?.destroy();
      if (output && output !== raw) output.destroy();
    }
    budget.remaining -= produced;
    if (produced !== entry.declaredSize) {
      throw new ZipRefusal(
        'zip_corrupt',
        `the archive says ${entry.declaredSize} bytes but the entry holds ${produced}`,
      );
    }
    if (crc >>> 0 !== entry.crc >>> 0)
      throw new ZipRefusal('zip_corrupt', 'the checksum does not match (damaged archive)');
    return Buffer.concat(chunks, produced);
  }
}

function mb(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${Math.round(bytes / (1024 * 1024))} MB`;
}

async function readCentralDirectory(
  handle: FileHandle,
  fileSize: number,
  limits: ZipLimits,
): Promise<ZipEntry[]> {
  const tailLength = Math.min(fileSize, EOCD_SEARCH_BYTES);
  const tail = Buffer.alloc(tailLength);
  await handle.read(tail, 0, tailLength, fileSize - tailLength);
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw new ZipRefusal(
      'zip_unreadable',
      'not a readable zip archive (no central directory; damaged or truncated?)',
    );
  const totalEntries = tail.readUInt16LE(eocd + 10);
  const directorySize = tail.readUInt32LE(eocd + 12);
  const directoryOffset = tail.readUInt32LE(eocd + 16);
  if (totalEntries === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    throw new ZipRefusal(
      'zip_unsupported',
      'ZIP64 archives are not supported (a dataset never needs one; re-zip the images)',
    );
  }
  if (totalEntries > limits.maxEntries) {
    throw new ZipRefusal(
      'zip_too_many_entries',
      `${totalEntries} entries is over the ${limits.maxEntries}-entry limit for an archive`,
    );
  }
  if (directorySize > MAX_CENTRAL_DIRECTORY_BYTES || directoryOffset + directorySize > fileSize) {
    throw new ZipRefusal('zip_unreadable', 'not a readable zip archive (its directory is damaged)');
  }
  const directory = Buffer.alloc(directorySize);
  await handle.read(directory, 0, directorySize, directoryOffset);

  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < totalEntries; i++) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== CENTRAL_SIGNATURE) {
      throw new ZipRefusal('zip_unreadable', 'not a readable zip archive (its directory is damaged)');
    }
    const flags = directory.readUInt16LE(at + 8);
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    const nameBytes = directory.subarray(at + 46, at + 46 + nameLength);
    // Bit 11 says UTF-8; otherwise the name is CP437, close enough to latin1 for a report.
    const name = (flags & 0x800 ? utf8 : cp437Fallback).decode(nameBytes);
    const compressedSize = directory.readUInt32LE(at + 20);
    const declaredSize = directory.readUInt32LE(at + 24);
    const localHeaderOffset = directory.readUInt32LE(at + 42);
    if (compressedSize === 0xffffffff || declaredSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      throw new ZipRefusal(
        'zip_unsupported',
        'ZIP64 archives are not supported (a dataset never needs one; re-zip the images)',
      );
    }
    entries.push({
      name,
      isDirectory: name.endsWith('/'),
      method: directory.readUInt16LE(at + 10),
      encrypted: (flags & 0x1) !== 0,
      compressedSize,
      declaredSize,
      crc: directory.readUInt32LE(at + 16),
      localHeaderOffset,
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}
