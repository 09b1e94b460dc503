import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError, type AppConfig } from '../config/env.ts';
import { S3ArtifactStore } from './s3-store.ts';
import {
  ArtifactKeyError,
  ArtifactNotFoundError,
  isValidSegment,
  validateKey,
  validatePrefix,
  type ArtifactMeta,
  type ArtifactStat,
  type ArtifactStore,
} from './artifact-store.ts';

/**
 * Temporary files carry a `~`, which no valid key segment can contain: so a temporary file can never
 * be mistaken for an artifact, list() can skip it by name, and no key can overwrite one.
 */
const TEMP_MARK = '~tmp~';

function isTemporary(name: string): boolean {
  return name.includes(TEMP_MARK);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

/** "Nothing there": the file is missing, or a parent of it is a file rather than a folder. */
function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Artifacts as files under one root folder (<DATA_DIR>/artifacts), shared by the bot and the runner
 * on one box. Writes go to a temporary file in the key's own folder, are fsynced, then renamed over
 * the key, and the folder is fsynced: a crash at any point leaves either the old artifact or the new
 * one, never a partial file under the key.
 */
export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async put(key: string, data: Buffer | Readable, _meta?: ArtifactMeta): Promise<ArtifactStat> {
    const path = this.pathOf(key);
    const folder = dirname(path);
    try {
      await mkdir(folder, { recursive: true });
    } catch (error) {
      if (errorCode(error) === 'EEXIST' || errorCode(error) === 'ENOTDIR') {
        throw new ArtifactKeyError(key, 'a part of its folder path is already an artifact');
      }
      throw error;
    }
    const temporary = `${path}${TEMP_MARK}${randomUUID()}`;
    let handle: FileHandle | undefined = await open(temporary, 'wx', 0o644);
    try {
      if (Buffer.isBuffer(data)) {
        await handle.writeFile(data);
      } else {
        // Awaiting each write gives the source back-pressure for free.
        for await (const chunk of data) {
          await handle.write(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array));
        }
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temporary, path).catch((error: unknown) => {
        if (errorCode(error) === 'EISDIR' || errorCode(error) === 'ENOTEMPTY') {
          throw new ArtifactKeyError(key, 'it is already a folder of other artifacts');
        }
        throw error;
      });
      await this.syncFolder(folder);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    const written = await stat(path);
    return { size: written.size, modified: written.mtime };
  }

  async getStream(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    let handle: FileHandle;
    try {
      // Open first, so a missing key is an error here rather than an 'error' event later.
      handle = await open(path, 'r');
    } catch (error) {
      if (isMissing(error) || errorCode(error) === 'EISDIR') throw new ArtifactNotFoundError(key);
      throw error;
    }
    const info = await handle.stat();
    if (!info.isFile()) {
      await handle.close();
      throw new ArtifactNotFoundError(key);
    }
    return handle.createReadStream();
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if (isMissing(error) || errorCode(error) === 'EISDIR') throw new ArtifactNotFoundError(key);
      throw error;
    }
  }

  async stat(key: string): Promise<ArtifactStat | null> {
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { size: info.size, modified: info.mtime } : null;
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async delete(key: string): Promise<boolean> {
    const path = this.pathOf(key);
    if ((await this.stat(key)) === null) return false;
    try {
      await unlink(path);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  async list(prefix = ''): Promise<string[]> {
    const { folder, partial } = validatePrefix(prefix);
    const keys: string[] = [];
    await this.walk(
      folder,
      (relative) => {
        if (relative.startsWith(prefix)) keys.push(relative);
      },
      partial,
    );
    return keys.sort();
  }

  /**
   * Remove temporary files that a crashed writer left behind (they never show as artifacts, but they
   * take disk space). Only files older than `olderThanMs` are touched, so writes in progress in other
   * processes are safe. Returns how many were removed. Run it at start-up.
   */
  async removeStaleTemporaryFiles(olderThanMs = 24 * 3600 * 1000): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const visit = async (folder: string): Promise<void> => {
      const entries = await readdir(folder, { withFileTypes: true }).catch((error: unknown) => {
        if (isMissing(error)) return [];
        throw error;
      });
      for (const entry of entries) {
        const path = join(folder, entry.name);
        if (entry.isDirectory()) {
          await visit(path);
        } else if (entry.isFile() && isTemporary(entry.name)) {
          const info = await stat(path).catch(() => null);
          if (
            info &&
            info.mtimeMs <= cutoff &&
            (await unlink(path).then(
              () => true,
              () => false,
            ))
          )
            removed++;
        }
      }
    };
    await visit(this.root);
    return removed;
  }

  /** The file path of a key, after validation; never outside the root. */
  private pathOf(key: string): string {
    const path = join(this.root, ...validateKey(key));
    // Validation already rules out escaping; this guards the guard.
    if (!path.startsWith(this.root + sep)) throw new ArtifactKeyError(key, 'it points outside the store');
    return path;
  }

  /** Visit every artifact key under a folder (given as key segments), depth first. */
  private async walk(folder: string[], visit: (key: string) => void, partial: string): Promise<void> {
    const directory = join(this.root, ...folder);
    const entries = await readdir(directory, { withFileTypes: true }).catch((error: unknown) => {
      if (isMissing(error)) return [];
      throw error;
    });
    for (const entry of entries) {
      // Only the first level is narrowed by the partial segment; deeper levels are all in.
      if (partial !== '' && !entry.name.startsWith(partial)) continue;
      // Temporary files, and anything put here by hand that no key could name, are not artifacts.
      if (isTemporary(entry.name) || !isValidSegment(entry.name)) continue;
      const segments = [...folder, entry.name];
      if (entry.isDirectory()) {
        await this.walk(segments, visit, '');
      } else if (entry.isFile()) {
        visit(segments.join('/'));
      }
    }
  }

  /** fsync a folder so a rename in it survives a power cut (not supported on every platform). */
  private async syncFolder(folder: string): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(folder, 'r');
      await handle.sync();
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw error;
    } finally {
      await handle?.close();
    }
  }
}

/** The artifact store the processes use: a local folder under DATA_DIR (S3 comes later). */
export function createArtifactStore(
  config: Pick<AppConfig, 'dataDir'> &
    Partial<
      Pick<
        AppConfig,
        | 'ARTIFACT_STORE'
        | 'S3_ENDPOINT'
        | 'S3_BUCKET'
        | 'S3_REGION'
        | 'S3_ACCESS_KEY_ID'
        | 'S3_SECRET_ACCESS_KEY'
      >
    >,
): ArtifactStore {
  if (config.ARTIFACT_STORE === 's3') {
    const missing = (
      ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const
    ).filter((name) => !config[name]);
    if (missing.length > 0) {
      throw new ConfigError(
        missing.map((variable) => ({ variable, expected: 'required when ARTIFACT_STORE=s3' })),
      );
    }
    return new S3ArtifactStore({
      endpoint: config.S3_ENDPOINT ?? '',
      bucket: config.S3_BUCKET ?? '',
      region: config.S3_REGION ?? 'us-east-1',
      accessKeyId: config.S3_ACCESS_KEY_ID ?? '',
      secretAccessKey: config.S3_SECRET_ACCESS_KEY ?? '',
    });
  }
  return new LocalArtifactStore(join(config.dataDir, 'artifacts'));
}
