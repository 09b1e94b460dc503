/**
 * The trainers' sample images: found in the folder the trainer writes them to, copied into the
 * artifact store (trainings/<id>/samples/<file>) once each is complete, so the bot can show the newest
 * ones on the training's status message.
 *
 * Names (shared/reference/training.md §3.5, §6.2):
 * - kohya: `{name}_{e000002|000180}_{NN}_{YYYYmmddHHMMSS}[_{seed}].png` in `<output>/sample/`: `e` +
 *   epoch for epoch sampling, the bare step for step sampling; NN is the prompt index.
 * - ai-toolkit: `{unix time}__{step:09d}_{i}.jpg` in `<output>/<name>/samples/`.
 *
 * A file counts as complete once it decodes: the trainers write with PIL, so a scan can see one half
 * written; it is simply taken by a later scan.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import sharp from 'sharp';
import type { ArtifactStore } from '../store/artifact-store.ts';

/** Discord takes 10 attachments a message; one is the loss chart. */
export const MAX_SAMPLES_SHOWN = 9;

/** Artifact key of a sample image of a training. */
export function sampleKey(trainingId: string, file: string): string {
  return `trainings/${trainingId}/samples/${file}`;
}

export interface SamplePosition {
  step: number;
  /** kohya: the epoch; ai-toolkit: the checkpoint number (step ÷ save interval, rounded up), as checkpoints are numbered. */
  epoch: number;
  /** 0-based sample prompt index. */
  index: number;
}

export interface SamplePlanInfo {
  trainer: 'kohya' | 'ai-toolkit';
  name: string;
  stepsPerEpoch: number;
  saveEverySteps?: number;
}

/** Where a sample file sits in the run, from its name; null for a file that is not a sample of this run. */
export function samplePosition(file: string, plan: SamplePlanInfo): SamplePosition | null {
  if (plan.trainer === 'kohya') {
    // The name is letters, digits, "-" and "_" (PlanOptions), none of them special in a regex.
    const match = new RegExp(`^${plan.name}_(e?)(\\d{6,})_(\\d{2,})_\\d{14}(?:_\\d+)?\\.png$`).exec(file);
    if (!match) return null;
    const n = Number(match[2]);
    const index = Number(match[3]);
    if (match[1] === 'e') return { epoch: n, step: n * plan.stepsPerEpoch, index };
    return { step: n, epoch: plan.stepsPerEpoch > 0 ? Math.floor(n / plan.stepsPerEpoch) : 0, index };
  }
  const match = /^\d+__(\d{9,})_(\d+)\.(?:jpe?g|png|webp)$/.exec(file);
  if (!match) return null;
  const step = Number(match[1]);
  const every = plan.saveEverySteps ?? 250;
  return { step, epoch: Math.ceil(step / every), index: Number(match[2]) };
}

export interface StoredSample extends SamplePosition {
  file: string;
  key: string;
}

export interface SampleCollectorOptions {
  store: ArtifactStore;
  trainingId: string;
  /** The folder the trainer writes its samples to (plan.samples.dir). */
  dir: string;
  plan: SamplePlanInfo;
  logger: Logger;
}

const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

/** Copies each complete sample image in `dir` to the store, once. */
export class SampleCollector {
  private readonly stored = new Map<string, StoredSample>();
  private running: Promise<StoredSample[]> = Promise.resolve([]);

  constructor(private readonly options: SampleCollectorOptions) {}

  /** Scan now (scans never overlap); returns what this scan stored. */
  scan(): Promise<StoredSample[]> {
    this.running = this.running.catch(() => []).then(() => this.scanOnce());
    return this.running;
  }

  /**
   * The samples of the newest step that has all `expected` of them (one per prompt; a set still being
   * drawn waits, so it is shown whole), by prompt index, at most MAX_SAMPLES_SHOWN.
   */
  latest(expected = 1): StoredSample[] {
    const byStep = new Map<number, StoredSample[]>();
    for (const sample of this.stored.values())
      byStep.set(sample.step, [...(byStep.get(sample.step) ?? []), sample]);
    const complete = [...byStep.entries()]
      .filter(([, set]) => set.length >= Math.min(expected, MAX_SAMPLES_SHOWN))
      .sort(([a], [b]) => b - a);
    return (complete[0]?.[1] ?? [])
      .sort((a, b) => a.index - b.index || a.file.localeCompare(b.file))
      .slice(0, MAX_SAMPLES_SHOWN);
  }

  private async scanOnce(): Promise<StoredSample[]> {
    const { dir, store, trainingId, plan, logger } = this.options;
    const names = await readdir(dir).catch(() => [] as string[]);
    const stored: StoredSample[] = [];
    for (const file of names.sort()) {
      if (this.stored.has(file)) continue;
      const position = samplePosition(file, plan);
      if (!position) continue;
      const path = join(dir, file);
      const data = await readFile(path).catch(() => null);
      if (!data || !(await decodes(data))) continue; // still being written
      const key = sampleKey(trainingId, file);
      const extension = file.slice(file.lastIndexOf('.') + 1).toLowerCase();
      await store.put(key, data, { contentType: CONTENT_TYPES[extension] ?? 'application/octet-stream' });
      const sample = { file, key, ...position };
      this.stored.set(file, sample);
      logger.info({ trainingId, file, step: position.step, epoch: position.epoch }, 'sample image stored');
      stored.push(sample);
    }
    return stored;
  }
}

/** Whether the whole image decodes (a truncated PNG or JPEG does not). */
async function decodes(data: Buffer): Promise<boolean> {
  try {
    await sharp(data).stats();
    return true;
  } catch {
    return false;
  }
}
