/**
 * Checkpoints: reading a .safetensors header (8-byte little-endian length, then a JSON object whose
 * `__metadata__` holds string values: kohya's ss_epoch, ss_steps, …; ai-toolkit's training_info), and
 * copying each finished file into the artifact store with a checkpoints row as it appears.
 *
 * A file is taken only once it is complete: its size must equal 8 + header length + the end of the
 * last tensor. kohya announces `saving checkpoint:` before writing, so a file seen early is simply
 * picked up by a later scan.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import { checkpoints } from '../db/schema.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';

/** Headers larger than this are not safetensors files we wrote (the format caps it at 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** 8 + header length + the largest tensor end offset: the size of the whole file. */
  expectedSize: number;
}

/** Reads the header, or null when the file is too short (still being written) or not safetensors. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader | null> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size < 8) return null;
    const lengthBytes = Buffer.alloc(8);
    await handle.read(lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) return null;
    const headerBytes = Buffer.alloc(headerLength);
    await handle.read(headerBytes, 0, headerLength, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch {
      return null;
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) return null;
    let dataEnd = 0;
    const metadata: Record<string, string> = {};
    for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
      if (key === '__metadata__') {
        if (typeof value === 'object' && value !== null) {
          for (const [k, v] of Object.entries(value as Record<string, unknown>))
            metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
        }
        continue;
      }
      const offsets = (value as { data_offsets?: unknown }).data_offsets;
      if (Array.isArray(offsets) && typeof offsets[1] === 'number') dataEnd = Math.max(dataEnd, offsets[1]);
    }
    return { metadata, expectedSize: 8 + headerLength + dataEnd };
  } finally {
    await handle.close();
  }
}

/** Artifact key of a checkpoint file of a training. */
export function checkpointKey(trainingId: string, file: string): string {
  return `trainings/${trainingId}/checkpoints/${file}`;
}

/**
 * Which epoch and step a checkpoint is. kohya: ss_epoch and ss_steps. ai-toolkit counts only steps
 * (training_info {"step","epoch"}, or the `_NNNNNNNNN` file suffix), so its checkpoints are numbered
 * by save: step ÷ save interval, rounded up — the final file gets the last number.
 */
export function checkpointPosition(
  file: string,
  metadata: Record<string, string>,
  plan: {
    trainer: 'kohya' | 'ai-toolkit';
    name: string;
    totalSteps: number;
    epochs: number;
    saveEverySteps?: number;
  },
): { epoch: number; step: number } | null {
  if (plan.trainer === 'kohya') {
    let epoch = Number(metadata.ss_epoch);
    let step = Number(metadata.ss_steps);
    const named = new RegExp(`^${plan.name}-(\\d{6})\\.safetensors$`).exec(file);
    if (!Number.isInteger(epoch))
      epoch = named ? Number(named[1]) : file === `${plan.name}.safetensors` ? plan.epochs : NaN;
    if (!Number.isInteger(step)) step = 0;
    return Number.isInteger(epoch) ? { epoch, step } : null;
  }
  let step = NaN;
  try {
    const info = JSON.parse(metadata.training_info ?? 'null') as { step?: unknown } | null;
    if (typeof info?.step === 'number') step = info.step;
  } catch {
    // fall back to the name
  }
  const named = new RegExp(`^${plan.name}_(\\d{9})\\.safetensors$`).exec(file);
  if (!Number.isInteger(step))
    step = named ? Number(named[1]) : file === `${plan.name}.safetensors` ? plan.totalSteps : NaN;
  if (!Number.isInteger(step)) return null;
  const every = plan.saveEverySteps ?? 250;
  return { epoch: Math.max(1, Math.ceil(step / every)), step };
}

export interface StoredCheckpoint {
  file: string;
  epoch: number;
  step: number;
  artifactKey: string;
  metadata: Record<string, string>;
}

export interface CheckpointCollectorOptions {
  db: Db;
  store: ArtifactStore;
  trainingId: string;
  /** The folder the trainer writes its .safetensors files to. */
  dir: string;
  plan: {
    trainer: 'kohya' | 'ai-toolkit';
    name: string;
    totalSteps: number;
    epochs: number;
    saveEverySteps?: number;
  };
  logger: Logger;
  onStored?: (checkpoint: StoredCheckpoint) => void;
}

/** Copies each complete checkpoint file in `dir` to the store, once, with its row. */
export class CheckpointCollector {
  private readonly done = new Set<string>();
  private running: Promise<StoredCheckpoint[]> = Promise.resolve([]);

  constructor(private readonly options: CheckpointCollectorOptions) {}

  /** Files already stored (by an earlier run of the same training too: the rows are idempotent). */
  stored(): string[] {
    return [...this.done];
  }

  /** Scan now (scans never overlap); returns what this scan stored. */
  scan(): Promise<StoredCheckpoint[]> {
    this.running = this.running.catch(() => []).then(() => this.scanOnce());
    return this.running;
  }

  private async scanOnce(): Promise<StoredCheckpoint[]> {
    const { dir, store, db, trainingId, plan, logger } = this.options;
    const names = await readdir(dir).catch(() => [] as string[]);
    const stored: StoredCheckpoint[] = [];
    for (const file of names.filter((n) => n.endsWith('.safetensors')).sort()) {
      if (this.done.has(file)) continue;
      const path = join(dir, file);
      const header = await readSafetensorsHeader(path).catch(() => null);
      const size = (await stat(path).catch(() => null))?.size;
      if (!header || size !== header.expectedSize) continue; // still being written
      const position = checkpointPosition(file, header.metadata, plan);
      if (!position) {
        logger.warn({ file }, 'a .safetensors file that is not a checkpoint of this training; left alone');
        this.done.add(file);
        continue;
      }
      const artifactKey = checkpointKey(trainingId, basename(file));
      await store.put(artifactKey, createReadStream(path), { contentType: 'application/octet-stream' });
      await db
        .insert(checkpoints)
        .values({
          trainingId,
          epoch: position.epoch,
          step: position.step,
          artifactKey,
          metadata: header.metadata,
        })
        .onConflictDoNothing();
      this.done.add(file);
      const checkpoint = { file, ...position, artifactKey, metadata: header.metadata };
      logger.info({ trainingId, file, epoch: position.epoch, step: position.step }, 'checkpoint stored');
      this.options.onStored?.(checkpoint);
      stored.push(checkpoint);
    }
    return stored;
  }
}
