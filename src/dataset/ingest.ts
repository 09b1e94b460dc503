import { lstat, open, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { inspectImage, type AcceptedFormat, type ImageLimits } from './images.ts';
import {
  DEFAULT_ZIP_LIMITS,
  looksLikeZip,
  unsafeEntryName,
  ZipReader,
  ZipRefusal,
  type ZipLimits,
} from './zip.ts';

/**
 * Turning what a person handed us (files, a folder, a zip) into a list of images worth training on,
 * with a reason for every file left out. Files are judged by their bytes; limits on how many files
 * we look at, how many we accept, how big each may be and how many pixels it may claim are enforced
 * before anything expensive happens. Zip entries are inflated into `stagingDir` (inside the dataset's
 * output folder), never next to their own names.
 */

export interface IngestLimits extends ImageLimits {
  /** Images accepted at most; later files are refused without being read. */
  maxAccepted: number;
  /** Files (and zip entries) looked at, at most; the rest are not read. */
  maxLookedAt: number;
  /** Bytes per file (for zip entries: inflated bytes). */
  maxFileBytes: number;
  zip: ZipLimits;
  /** Images decoded at the same time (2 suits a 2-core box: PNG encoding is single-threaded). */
  parallelism: number;
}

export const DEFAULT_INGEST_LIMITS: IngestLimits = {
  maxAccepted: 300,
  maxLookedAt: 2000,
  maxFileBytes: 50 * 1024 * 1024,
  maxPixels: 50_000_000,
  minSide: 256,
  zip: DEFAULT_ZIP_LIMITS,
  parallelism: 2,
};

export type RefusalCode =
  | 'not_found'
  | 'not_image'
  | 'unsupported_format'
  | 'too_many_pixels'
  | 'too_small'
  | 'too_large_file'
  | 'corrupt'
  | 'symlink'
  | 'over_count_limit'
  | 'over_entry_limit'
  | 'duplicate'
  | 'below_min_side'
  | ZipRefusal['code'];

export interface Refusal {
  /** Where the file came from: a path, or `archive.zip:inner/name.png`. */
  source: string;
  code: RefusalCode;
  /** For people: "not an image (text)", "40000×40000 pixels is over the 50 MP limit". */
  reason: string;
}

export interface IngestedImage {
  source: string;
  /** The bytes on disk: the original file, or the inflated zip entry in the staging folder. */
  path: string;
  format: AcceptedFormat;
  /** As stored (before EXIF orientation). */
  width: number;
  height: number;
  /** EXIF orientation (1–8); 5–8 swap width and height when applied. */
  orientation: number;
  bytes: number;
}

export interface IngestResult {
  accepted: IngestedImage[];
  refused: Refusal[];
  /** How many files and entries were looked at. */
  lookedAt: number;
}

/** Names that are operating-system clutter, skipped without a word (they are never pictures). */
function isClutter(name: string): boolean {
  const base = basename(name.replace(/\/+$/, ''));
  return (
    base.startsWith('.') ||
    base === 'Thumbs.db' ||
    base === 'desktop.ini' ||
    name.split('/').includes('__MACOSX')
  );
}

function mb(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MB`
    : `${Math.ceil(bytes / 1024)} KB`;
}

class Ingestion {
  readonly refused: Refusal[] = [];
  readonly pending: IngestedImage[] = [];
  lookedAt = 0;
  private staged = 0;
  private stoppedLooking = false;

  constructor(
    private readonly limits: IngestLimits,
    private readonly stagingDir: string,
  ) {}

  private refuse(source: string, code: RefusalCode, reason: string): void {
    this.refused.push({ source, code, reason });
  }

  /** Counts one more file looked at; false (and one note in the report) once the limit is reached. */
  private mayLook(where: string): boolean {
    if (this.lookedAt >= this.limits.maxLookedAt) {
      if (!this.stoppedLooking) {
        this.stoppedLooking = true;
        this.refuse(
          where,
          'over_entry_limit',
          `stopped after looking at ${this.limits.maxLookedAt} files; the rest were not read`,
        );
      }
      return false;
    }
    this.lookedAt++;
    return true;
  }

  private full(): boolean {
    return this.pending.length >= this.limits.maxAccepted;
  }

  private refuseOverCount(source: string): void {
    this.refuse(
      source,
      'over_count_limit',
      `over the ${this.limits.maxAccepted}-image limit for one dataset (not read)`,
    );
  }

  async addInput(input: string): Promise<void> {
    let stats;
    try {
      stats = await lstat(input);
    } catch {
      this.refuse(input, 'not_found', 'no such file or folder');
      return;
    }
    if (stats.isSymbolicLink()) {
      this.refuse(input, 'symlink', 'a symbolic link; links are not followed');
      return;
    }
    if (stats.isDirectory()) {
      await this.addFolder(input);
      return;
    }
    if (!stats.isFile()) {
      this.refuse(input, 'not_image', 'not a regular file');
      return;
    }
    const head = await readHead(input);
    if (looksLikeZip(head)) {
      await this.addZip(input);
      return;
    }
    if (!this.mayLook(input)) return;
    await this.addFile(input, stats.size, head);
  }

  private async addFolder(folder: string): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(folder)).sort();
    } catch {
      this.refuse(folder, 'not_found', 'the folder cannot be read');
      return;
    }
    for (const name of names) {
      if (this.stoppedLooking) return;
      if (isClutter(name)) continue;
      const path = join(folder, name);
      const stats = await lstat(path);
      if (stats.isDirectory()) {
        await this.addFolder(path);
        continue;
      }
      if (!this.mayLook(folder)) return;
      if (stats.isSymbolicLink()) {
        this.refuse(path, 'symlink', 'a symbolic link; links are not followed');
      } else if (!stats.isFile()) {
        this.refuse(path, 'not_image', 'not a regular file');
      } else if (this.full()) {
        this.refuseOverCount(path);
      } else {
        await this.addFile(path, stats.size, await readHead(path));
      }
    }
  }

  private async addFile(path: string, size: number, head: Buffer): Promise<void> {
    if (this.full()) return this.refuseOverCount(path);
    if (size > this.limits.maxFileBytes) {
      return this.refuse(
        path,
        'too_large_file',
        `${mb(size)} is over the ${mb(this.limits.maxFileBytes)} per-file limit`,
      );
    }
    const inspection = await inspectImage(path, head, this.limits);
    if (!inspection.ok) return this.refuse(path, inspection.code, inspection.reason);
    this.pending.push({
      source: path,
      path,
      format: inspection.format,
      width: inspection.width,
      height: inspection.height,
      orientation: inspection.orientation,
      bytes: size,
    });
  }

  private async addZip(archive: string): Promise<void> {
    const zipLimits: ZipLimits = {
      ...this.limits.zip,
      maxEntryBytes: Math.min(this.limits.zip.maxEntryBytes, this.limits.maxFileBytes),
    };
    let reader: ZipReader;
    try {
      reader = await ZipReader.open(archive, zipLimits);
    } catch (error) {
      if (error instanceof ZipRefusal) return this.refuse(archive, error.code, error.reason);
      return this.refuse(
        archive,
        'zip_unreadable',
        `not a readable zip archive (${(error as Error).message})`,
      );
    }
    const budget = { remaining: zipLimits.maxTotalBytes };
    try {
      for (const entry of reader.entries) {
        const source = `${archive}:${entry.name}`;
        // Unsafe names first: a name like "..\\evil.png" must be reported, not skipped as a dot-file.
        const unsafe = unsafeEntryName(entry.name);
        if (unsafe) {
          if (!this.mayLook(archive)) return;
          this.refuse(source, 'zip_unsafe_path', `refused: an unsafe path in the archive (${unsafe})`);
          continue;
        }
        if (entry.isDirectory || isClutter(entry.name)) continue;
        if (!this.mayLook(archive)) return;
        if (this.full()) {
          this.refuseOverCount(source);
          continue;
        }
        let bytes: Buffer;
        try {
          bytes = await reader.read(entry, zipLimits, budget);
        } catch (error) {
          if (!(error instanceof ZipRefusal)) throw error;
          this.refuse(source, error.code, error.reason);
          // Once the archive's total budget is spent, nothing more can be read from it.
          if (budget.remaining <= 0) {
            this.refuse(
              archive,
              'zip_bomb',
              `inflates to more than the archive limit; the remaining entries were not read`,
            );
            return;
          }
          continue;
        }
        const inspection = await inspectImage(bytes, bytes.subarray(0, 4096), this.limits);
        if (!inspection.ok) {
          this.refuse(source, inspection.code, inspection.reason);
          continue;
        }
        // The staged name is a counter: the entry's own name never becomes a path.
        const path = join(this.stagingDir, `${String(++this.staged).padStart(5, '0')}.${inspection.format}`);
        await writeFile(path, bytes, { flag: 'wx' });
        this.pending.push({
          source,
          path,
          format: inspection.format,
          width: inspection.width,
          height: inspection.height,
          orientation: inspection.orientation,
          bytes: bytes.length,
        });
      }
    } finally {
      await reader.close();
    }
  }
}

async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(4096);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * Collects and checks every input by its bytes and header. `stagingDir` must exist and lie inside the
 * dataset's output folder. Pixels are not decoded here: preparation decodes each image once, and
 * that is where truncated and corrupt files are caught.
 */
export async function ingest(
  inputs: string[],
  stagingDir: string,
  limits: IngestLimits = DEFAULT_INGEST_LIMITS,
): Promise<IngestResult> {
  const ingestion = new Ingestion(limits, stagingDir);
  for (const input of inputs) await ingestion.addInput(input);
  return { accepted: ingestion.pending, refused: ingestion.refused, lookedAt: ingestion.lookedAt };
}
