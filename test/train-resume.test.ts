/**
 * A runner killed mid-training (SIGKILL: no shutdown, its detached trainer left running) and a new
 * runner that picks the stalled job up: it stops the leftover trainer, resumes from the newest saved
 * state (kohya --resume), and the training ends with every checkpoint and the right step count.
 * Also: while a training runs, the runner's presence says the GPU is taken and until when.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { eq } from 'drizzle-orm';
import pino from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type AppConfig } from '../src/config/env.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { runMigrations } from '../src/db/migrate.ts';
import { checkpoints, trainings } from '../src/db/schema.ts';
import { listRunners } from '../src/gpu/presence.ts';
import { runRunner, type RunnerHandle } from '../src/gpu/runner.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import { JobProducer } from '../src/queue/producer.ts';
import { createArtifactStore } from '../src/store/local-store.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import { createTestDatabase } from './helpers/database.ts';
import { cleanupQueues, settledJob, TEST_REDIS_URL, testQueueConnection } from './helpers/redis.ts';

const FAKES = join(import.meta.dirname, 'fakes', 'trainer');

let dir: string;
let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let database: Database;
let store: ArtifactStore;
let connection: QueueConnection;
let producer: JobProducer;
let trainQueue: Queue;
let env: Record<string, string>;
let config: AppConfig;
const runners: RunnerHandle[] = [];
let child: ChildProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cm-train-resume-'));
  testDb = await createTestDatabase();
  database = await openDatabase({ databaseUrl: testDb.url, dataDir: dir });
  await runMigrations(database);
  env = {
    DATABASE_URL: testDb.url,
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: dir,
    TRAINER_PYTHON: 'python3',
    SD_SCRIPTS_DIR: join(FAKES, 'sd-scripts'),
    AI_TOOLKIT_DIR: join(FAKES, 'ai-toolkit'),
    RUNNER_ID: 'gpu-a',
  };
  config = parseConfig(env);
  store = createArtifactStore(config);
  connection = testQueueConnection('train-resume');
  producer = new JobProducer(connection);
  trainQueue = new Queue('train', { connection: connection.options('worker'), prefix: connection.prefix });
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const runner of runners) await runner.stop();
  await trainQueue?.close();
  await producer?.close();
  if (connection) await cleanupQueues(connection);
  await database?.close();
  await testDb?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function createTraining(stepMs: number, trainingConfig: Record<string, unknown>): Promise<string> {
  const [row] = await database.db
    .insert(trainings)
    .values({
      guildId: '1',
      channelId: '2',
      userId: '3',
      kind: 'style',
      name: 'Ink',
      trigger: 'ohwx',
      modelFamily: 'illustrious',
      baseModel: 'illustriousXL_v01.safetensors',
      config: trainingConfig,
      status: 'queued',
      datasetKey: 'pending',
    })
    .returning();
  if (!row) throw new Error('no row');
  const datasetKey = `trainings/${row.id}/dataset`;
  const png = await sharp({ create: { width: 64, height: 96, channels: 3, background: '#345' } })
    .png()
    .toBuffer();
  for (let i = 1; i <= 20; i++) {
    const stem = String(i).padStart(4, '0');
    await store.put(`${datasetKey}/10_ohwx/${stem}.png`, png);
    await store.put(`${datasetKey}/10_ohwx/${stem}.txt`, Buffer.from('ohwx, 1girl\n'));
  }
  await store.put(`${datasetKey}/fake-trainer.json`, Buffer.from(JSON.stringify({ stepMs })));
  await database.db.update(trainings).set({ datasetKey }).where(eq(trainings.id, row.id));
  return row.id;
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
    child = spawn(
      process.execPath,
      ['--import', 'tsx', join(FAKES, 'runner-process.ts'), connection.prefix],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await until(
      async () => new Promise<boolean>((resolve) => child!.stdout!.once('data', () => resolve(true))),
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
    await new Promise((r) => child!.once('exit', r));
    expect(alive(leftoverPid)).toBe(true); // the detached trainer outlives its runner

    // A new runner: BullMQ hands it the stalled job once the dead runner's lock expires.
    const runner = await runRunner(config, {
      connection,
      handleSignals: false,
      logger: pino({ level: 'silent' }),
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
