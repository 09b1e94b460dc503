/**
 * The `train` worker against the fake kohya and ai-toolkit trainers (test/fakes/trainer, started
 * through TRAINER_PYTHON + SD_SCRIPTS_DIR / AI_TOOLKIT_DIR exactly like the real ones), on real
 * PostgreSQL and Redis: checkpoints stored with their metadata, each failure explained, cancel.
 */
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/env.ts';
import type { Database } from '../src/db/client.ts';
import { checkpoints, trainings } from '../src/db/schema.ts';
import { startTrainWorker, type TrainWorker } from '../src/gpu/train-worker.ts';
import type { QueueConnection } from '../src/queue/connection.ts';
import type { JobProducer } from '../src/queue/producer.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import { readSafetensorsHeader } from '../src/training/checkpoints.ts';
import { settledJob } from './helpers/redis.ts';
import {
  insertQueuedTraining,
  openRunnerDatabase,
  silentLogger,
  startRunnerHarness,
  type RunnerDatabase,
  type RunnerHarness,
} from './helpers/runner.ts';

const FAKES = join(import.meta.dirname, 'fakes', 'trainer');

let db: RunnerDatabase;
let harness: RunnerHarness;
let dir: string;
let database: Database;
let store: ArtifactStore;
let connection: QueueConnection;
let producer: JobProducer;
let worker: TrainWorker;
let trainQueue: Queue;
let evaluateQueue: Queue;
const gpuEvents: string[] = [];
/** One set of PNG bytes per shape, reused for every dataset. */
let pictures: Buffer[];

beforeAll(async () => {
  db = await openRunnerDatabase('cm-train');
  ({ dir, database } = db);
  const config = parseConfig({
    DATA_DIR: dir,
    TRAINER_PYTHON: 'python3',
    SD_SCRIPTS_DIR: join(FAKES, 'sd-scripts'),
    AI_TOOLKIT_DIR: join(FAKES, 'ai-toolkit'),
  });
  harness = await startRunnerHarness(db, 'train', { storeDir: dir });
  ({ store, connection, producer } = harness);
  trainQueue = new Queue('train', { connection: connection.options('worker'), prefix: connection.prefix });
  evaluateQueue = new Queue('evaluate', {
    connection: connection.options('worker'),
    prefix: connection.prefix,
  });
  harness.defer(async () => {
    await trainQueue.close();
    await evaluateQueue.close();
  });
  worker = startTrainWorker({
    connection,
    db: database.db,
    store,
    producer,
    runnerId: 'test-runner',
    config,
    logger: silentLogger,
    gpu: {
      acquire: async ({ trainingId }) => void gpuEvents.push(`acquire ${trainingId}`),
      release: async () => void gpuEvents.push('release'),
    },
    progressIntervalMs: 20,
    cancelPollMs: 50,
    stopGraceMs: 2_000,
    stallTimeoutMs: 1_500,
    nanStepLimit: 3,
  });
  harness.defer(() => worker.close());
  // Mixed aspect ratios: portrait, landscape and square land in three kohya buckets.
  const shapes: [number, number][] = [
    [64, 96],
    [96, 64],
    [80, 80],
  ];
  pictures = await Promise.all(
    shapes.map(([width, height], i) =>
      sharp({ create: { width, height, channels: 3, background: { r: 40 * i, g: 90, b: 200 } } })
        .png()
        .toBuffer(),
    ),
  );
});

afterAll(async () => {
  await harness?.close();
  await db?.close();
});

interface TrainingSetup {
  base?: 'illustrious' | 'noobai' | 'flux';
  config?: Record<string, unknown>;
  fake?: Record<string, unknown>;
  images?: number;
  dropCaption?: boolean;
}

/** A dataset in the store (as the bot leaves it) and a queued trainings row. */
async function createTraining(setup: TrainingSetup = {}): Promise<string> {
  const id = await insertQueuedTraining(database.db, {
    base: setup.base,
    config: setup.config ?? { repeats: 1, epochs: 4 },
  });
  const datasetKey = `trainings/${id}/dataset`;
  for (let i = 1; i <= (setup.images ?? 20); i++) {
    const stem = String(i).padStart(4, '0');
    await store.put(`${datasetKey}/10_ohwx/${stem}.png`, pictures[i % 3]!);
    if (!(setup.dropCaption && i === 5))
      await store.put(`${datasetKey}/10_ohwx/${stem}.txt`, Buffer.from('ohwx, 1girl, smile\n'));
  }
  if (setup.fake) await store.put(`${datasetKey}/fake-trainer.json`, Buffer.from(JSON.stringify(setup.fake)));
  await database.db.update(trainings).set({ datasetKey }).where(eq(trainings.id, id));
  return id;
}

async function train(setup: TrainingSetup = {}) {
  const id = await createTraining(setup);
  const job = await producer.enqueue('train', { trainingId: id });
  return { id, job };
}

async function rowOf(id: string) {
  const [row] = await database.db.select().from(trainings).where(eq(trainings.id, id));
  if (!row) throw new Error('row gone');
  return row;
}

describe('train worker with the fake kohya trainer', () => {
  it('trains to its checkpoints, each stored with its safetensors metadata, then queues the evaluation', async () => {
    const { id, job } = await train({ fake: { stepMs: 5 } });
    const done = await settledJob(trainQueue, job.id);
    expect(done.failedReason).toBeUndefined();
    expect(done.returnvalue).toMatchObject({ status: 'trained', checkpoints: 2 });

    const rows = await database.db
      .select()
      .from(checkpoints)
      .where(eq(checkpoints.trainingId, id))
      .orderBy(checkpoints.epoch);
    expect(rows.map((r) => r.epoch)).toEqual([2, 4]);
    const training = await rowOf(id);
    for (const row of rows) {
      expect(row.metadata.ss_epoch).toBe(String(row.epoch));
      expect(row.metadata.ss_network_dim).toBe('128');
      expect(row.metadata.ss_base_model_version).toBe('sdxl_base_v1-0');
      expect(Number(row.metadata.ss_steps)).toBe(row.step);
      // The stored file is the whole checkpoint, with the same header.
      const path = join(dir, 'artifacts-check', row.artifactKey.replaceAll('/', '_'));
      const { mkdir, writeFile } = await import('node:fs/promises');
      await mkdir(join(dir, 'artifacts-check'), { recursive: true });
      await writeFile(path, await store.getBuffer(row.artifactKey));
      expect((await readSafetensorsHeader(path))?.metadata.ss_epoch).toBe(String(row.epoch));
    }
    expect(rows.map((r) => r.artifactKey)).toEqual([
      `trainings/${id}/checkpoints/ohwx-000002.safetensors`,
      `trainings/${id}/checkpoints/ohwx.safetensors`,
    ]);
    expect(training.status).toBe('evaluating');
    expect(training.error).toBeNull();
    expect(training.progress).toMatchObject({
      step: rows[1]!.step,
      totalSteps: rows[1]!.step,
      epoch: 4,
      totalEpochs: 4,
    });
    expect(training.progress?.loss).toBeGreaterThan(0);
    expect(await evaluateQueue.getJob(`evaluate-${id}`)).toMatchObject({ data: { trainingId: id } });
    expect(gpuEvents).toContain(`acquire ${id}`);
    expect(gpuEvents.at(-1)).toBe('release');
  });

  const failures: [string, TrainingSetup, RegExp][] = [
    ['CUDA out of memory', { fake: { fail: 'oom', failAtStep: 3 } }, /ran out of memory/],
    [
      'a NaN loss (stopped after a few steps)',
      { fake: { fail: 'nan', failAtStep: 2, stepMs: 30 } },
      /loss became NaN/,
    ],
    ['"No data found" with exit 0', { fake: { fail: 'no_data' } }, /found no images/],
    ['missing captions', { dropCaption: true }, /1 images have no caption file \(\.txt\)/],
    ['a killed process (137)', { fake: { fail: 'killed', failAtStep: 2 } }, /was killed \(exit 137\)/],
    ['no progress for too long (watchdog)', { fake: { fail: 'stall', failAtStep: 2 } }, /no progress for/],
    ['a crash', { fake: { fail: 'crash', failAtStep: 2 } }, /RuntimeError: something broke/],
  ];
  for (const [what, setup, advice] of failures) {
    it(`reports ${what} with its advice`, async () => {
      const { id, job } = await train(setup);
      const done = await settledJob(trainQueue, job.id);
      expect(done.failedReason).toMatch(advice);
      const training = await rowOf(id);
      expect(training.status).toBe('failed');
      expect(training.error).toMatch(advice);
      expect(await evaluateQueue.getJob(`evaluate-${id}`)).toBeUndefined();
    });
  }

  it('cancel: the row set to cancelled stops the trainer and the job ends as cancelled', async () => {
    const { id, job } = await train({ fake: { stepMs: 40 }, config: { repeats: 4, epochs: 10 } });
    // Wait for the trainer to report progress, then cancel the way /train cancel does.
    for (;;) {
      const row = await rowOf(id);
      if (row.status === 'training' && (row.progress?.step ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await database.db.update(trainings).set({ status: 'cancelled' }).where(eq(trainings.id, id));
    const done = await settledJob(trainQueue, job.id);
    expect(done.returnvalue).toMatchObject({ status: 'cancelled' });
    const training = await rowOf(id);
    expect(training.status).toBe('cancelled');
    expect(training.progress!.step).toBeLessThan(training.progress!.totalSteps);
    expect(await evaluateQueue.getJob(`evaluate-${id}`)).toBeUndefined();
    expect(gpuEvents.at(-1)).toBe('release');
  });
});

describe('train worker with the fake ai-toolkit trainer (FLUX)', () => {
  it('trains to its step checkpoints, numbered by save, with training_info', async () => {
    const { id, job } = await train({
      base: 'flux',
      config: { steps: 30, saveEverySteps: 10 },
      fake: { stepMs: 3 },
    });
    const done = await settledJob(trainQueue, job.id);
    expect(done.failedReason).toBeUndefined();
    const rows = await database.db
      .select()
      .from(checkpoints)
      .where(eq(checkpoints.trainingId, id))
      .orderBy(checkpoints.epoch);
    expect(rows.map((r) => [r.epoch, r.step])).toEqual([
      [1, 10],
      [2, 20],
      [3, 30],
    ]);
    expect(JSON.parse(rows[0]!.metadata.training_info!)).toMatchObject({ step: 10 });
    expect((await rowOf(id)).status).toBe('evaluating');
  });

  it('reports a gated model with what to do about it', async () => {
    const { id, job } = await train({
      base: 'flux',
      config: { steps: 30, saveEverySteps: 10 },
      fake: { fail: 'gated' },
    });
    const done = await settledJob(trainQueue, job.id);
    expect(done.failedReason).toMatch(/gated on Hugging Face.*HF_TOKEN/);
    expect((await rowOf(id)).status).toBe('failed');
  });

  it('reports an OOM abort with its advice', async () => {
    const { job } = await train({
      base: 'flux',
      config: { steps: 30, saveEverySteps: 10 },
      fake: { fail: 'oom', failAtStep: 4 },
    });
    expect((await settledJob(trainQueue, job.id)).failedReason).toMatch(/ran out of memory/);
  });
});
