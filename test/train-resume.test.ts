/**
 * A runner killed mid-training (SIGKILL: no shutdown, its detached trainer left running) and a new
 * runner that picks the stalled job up: it stops the leftover trainer, resumes from the newest saved
 * state (kohya --resume), and the training ends with every checkpoint and the right step count.
 * Also: while a training runs, the runner's presence says the GPU is taken and until when.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.ts';
import { checkpoints, trainings } from '../src/db/schema.ts';
import { listRunners } from '../src/gpu/presence.ts';
import type { RunnerHandle } from '../src/gpu/runner.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import type { JobProducer } from '../src/queue/producer.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import { settledJob, TEST_REDIS_URL } from './helpers/redis.ts';
import {
  insertQueuedTraining,
  openRunnerDatabase,
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
let trainQueue: Queue;
let env: Record<string, string>;
const runners: RunnerHandle[] = [];

beforeAll(async () => {
  db = await openRunnerDatabase('cm-train-resume');
  ({ dir, database } = db);
  env = {
    DATABASE_URL: db.url!,
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: dir,
    TRAINER_PYTHON: 'python3',
    SD_SCRIPTS_DIR: join(FAKES, 'sd-scripts'),
    AI_TOOLKIT_DIR: join(FAKES, 'ai-toolkit'),
    RUNNER_ID: 'gpu-a',
  };
  // The store in DATA_DIR, where the runner process started below keeps its own.
  harness = await startRunnerHarness(db, 'train-resume', { storeDir: dir });
  ({ store, connection, producer } = harness);
  trainQueue = new Queue('train', { connection: connection.options('worker'), prefix: connection.prefix });
  harness.defer(() => trainQueue.close());
});

afterAll(async () => {
  await harness?.close();
  await db?.close();
});

async function createTraining(stepMs: number, trainingConfig: Record<string, unknown>): Promise<string> {
  const id = await insertQueuedTraining(database.db, { config: trainingConfig, datasetKey: 'pending' });
  const datasetKey = `trainings/${id}/dataset`;
  const png = await sharp({ create: { width: 64, height: 96, channels: 3, background: '#345' } })
    .png()
    .toBuffer();
  for (let i = 1; i <= 20; i++) {
    const stem = String(i).padStart(4, '0');
    await store.put(`${datasetKey}/10_ohwx/${stem}.png`, png);
    await store.put(`${datasetKey}/10_ohwx/${stem}.txt`, Buffer.from('ohwx, 1girl\n'));
  }
  await store.put(`${datasetKey}/fake-trainer.json`, Buffer.from(JSON.stringify({ stepMs })));
  await database.db.update(trainings).set({ datasetKey }).where(eq(trainings.id, id));
  return id;
}

async function until<T>(what: () => Promise<T | undefined | null | false>): Promise<T> {
  for (;;) {
    const value = await what();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('training on the runner', () => {
  it('resumes from the last saved state after the runner is killed', async () => {
    // 20 images × 2 repeats in one bucket = 40 batches, 10 steps per epoch, 6 epochs = 60 steps.
    const id = await createTraining(120, { repeats: 2, epochs: 6 });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(FAKES, 'runner-process.ts'), connection.prefix],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    harness.defer(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await until(
      async () => new Promise<boolean>((resolve) => child.stdout!.once('data', () => resolve(true))),
    );
    const job = await producer.enqueue('train', { trainingId: id });

    // Kill the runner once the first checkpoint (epoch 2, with its state) is stored.
    await until(
      async () =>
        (await database.db.select().from(checkpoints).where(eq(checkpoints.trainingId, id))).length > 0,
    );
    const pidFile = join(dir, 'trainings', id, 'trainer.pid');
    const leftoverPid = Number((await readFile(pidFile, 'utf8')).trim());
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(alive(leftoverPid)).toBe(true); // the detached trainer outlives its runner

    // A new runner: BullMQ hands it the stalled job once the dead runner's lock expires.
    const runner = await harness.startRunner(env, {
      train: {
        lockDurationMs: 2_000,
        stalledIntervalMs: 500,
        progressIntervalMs: 20,
        cancelPollMs: 100,
        stopGraceMs: 2_000,
      },
    });
    runners.push(runner);
    const done = await settledJob(trainQueue, job.id);
    expect(done.failedReason).toBeUndefined();
    expect(done.returnvalue).toMatchObject({ status: 'trained' });

    const rows = await database.db
      .select()
      .from(checkpoints)
      .where(eq(checkpoints.trainingId, id))
      .orderBy(checkpoints.epoch);
    expect(rows.map((r) => r.epoch)).toEqual([2, 4, 6]);
    // The final file counts the steps of the whole run once: resumed, not restarted, not doubled.
    expect(rows.map((r) => r.metadata.ss_steps)).toEqual(['20', '40', '60']);
    const training = (await database.db.select().from(trainings).where(eq(trainings.id, id)))[0]!;
    expect(training.status).toBe('evaluating');
    expect(training.progress).toMatchObject({ step: 60, totalSteps: 60, epoch: 6 });
    const log = await readFile(join(dir, 'trainings', id, 'trainer.log'), 'utf8');
    expect(log).toMatch(/resume training from local state: .*ohwx-0000(02|04)-state/);
    expect(alive(leftoverPid)).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
  });

  it('while a training runs, the runner says the GPU is taken and until when; after it, it is free', async () => {
    const runner = runners[0]!;
    const id = await createTraining(60, { repeats: 1, epochs: 2 });
    const job = await producer.enqueue('train', { trainingId: id });
    const redis = createRedisClient(connection, 'worker');
    try {
      const busy = await until(async () =>
        (await listRunners(redis, connection.prefix)).find(
          (r) => r.id === runner.runnerId && r.trainingUntil,
        ),
      );
      expect(Date.parse(busy.trainingUntil!)).toBeGreaterThan(Date.now());
      expect(runner.trainWorker.active()?.trainingId).toBe(id);
      await settledJob(trainQueue, job.id);
      const free = await until(async () =>
        (await listRunners(redis, connection.prefix)).find(
          (r) => r.id === runner.runnerId && !r.trainingUntil,
        ),
      );
      expect(free.trainingUntil ?? null).toBeNull();
      expect(runner.trainWorker.active()).toBeNull();
    } finally {
      await redis.quit();
    }
  });
});
