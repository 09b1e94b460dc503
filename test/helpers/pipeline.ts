import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job, Worker } from 'bullmq';
import { type PipelineDeps, startCpuWorkers } from '../../src/comic/flow/index.ts';
import { parseConfig } from '../../src/config/env.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import { runMigrations } from '../../src/db/migrate.ts';
import { finishRender, markRenderRunning } from '../../src/db/renders.ts';
import { renders } from '../../src/db/schema.ts';
import { StoryboardRenderer } from '../../src/gpu/storyboard-renderer.ts';
import { createLogger } from '../../src/log.ts';
import { isTrainingPostJob, PostJob, type ComicPostJob, type RenderJob } from '../../src/queue/payloads.ts';
import { JobProducer } from '../../src/queue/producer.ts';
import { createWorker } from '../../src/queue/worker.ts';
import { LocalArtifactStore } from '../../src/store/local-store.ts';
import { artifactKeys } from '../../src/store/keys.ts';
import { eq } from 'drizzle-orm';
import { createTestDatabase } from './database.ts';
import { cleanupQueues, testQueueConnection } from './redis.ts';

/** A small page, so lettering stays quick on a 2-core machine; the layout rules are the same. */
export const TEST_GEOMETRY = { width: 600, height: 920, margin: 30, gutter: 14, border: 3 };

/**
 * Everything the comic pipeline runs on, for one test file: a fresh PostgreSQL database (migrated),
 * a temporary artifact store, a queue prefix of its own on the real Redis, a producer, and a config
 * with no LLM (the template writer) and no ComfyUI. close() removes all of it.
 */
export interface PipelineHarness {
  deps: PipelineDeps;
  database: Database;
  store: LocalArtifactStore;
  producer: JobProducer;
  close(): Promise<void>;
}

export async function createPipelineHarness(label: string): Promise<PipelineHarness> {
  const testDb = await createTestDatabase();
  const dataDir = await mkdtemp(join(tmpdir(), `cm-${label}-`));
  const database = await openDatabase({ databaseUrl: testDb.url, dataDir });
  await runMigrations(database);
  const store = new LocalArtifactStore(join(dataDir, 'artifacts'));
  const queueConnection = testQueueConnection(label);
  const logger = createLogger({ level: 'silent' });
  const producer = new JobProducer(queueConnection, { logger });
  const config = parseConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
  const deps: PipelineDeps = {
    db: database.db,
    store,
    producer,
    queueConnection,
    config,
    logger,
    geometry: TEST_GEOMETRY,
  };
  return {
    deps,
    database,
    store,
    producer,
    async close() {
      await producer.close();
      await cleanupQueues(queueConnection);
      await database.close();
      await testDb.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A stand-in for the GPU runner's render worker, doing what the runner does around the image: mark the
 * render running, draw it (storyboard sketch), store it at artifactKeys.render, finishRender (which
 * makes it the panel's current render), then ask the bot to post the panel and refresh the status.
 * `onRender` runs before each render, for tests that need to hold or count them.
 */
export function startTestRenderWorker(
  deps: PipelineDeps,
  options: { runnerId?: string; onRender?: (job: RenderJob) => Promise<void> | void } = {},
): Worker {
  const renderer = new StoryboardRenderer();
  const worker = createWorker(
    'render',
    async (payload: RenderJob) => {
      await options.onRender?.(payload);
      const [row] = await deps.db.select().from(renders).where(eq(renders.id, payload.renderId));
      if (!row || (row.status !== 'queued' && row.status !== 'running'))
        return { skipped: row?.status ?? 'missing' };
      await markRenderRunning(deps.db, payload.renderId, options.runnerId ?? 'test-runner');
      const [image] = await renderer.render(payload.recipe);
      if (!image) throw new Error('storyboard renderer returned nothing');
      const key = artifactKeys.render(
        payload.comicId,
        payload.pageNumber,
        payload.panelNumber,
        payload.attempt,
      );
      await deps.store.put(key, image.png);
      const finished = await finishRender(deps.db, payload.renderId, key);
      if (!finished) return { skipped: 'finished elsewhere or cancelled' };
      const { comicId, pageNumber, panelNumber, renderId } = payload;
      await deps.producer.enqueue('post', { kind: 'panel', comicId, pageNumber, panelNumber, renderId });
      await deps.producer.enqueue('post', { kind: 'status', comicId });
      return { artifactKey: key };
    },
    { connection: deps.queueConnection, logger: deps.logger, concurrency: 2 },
  );
  return worker;
}

/** The CPU workers and a test render worker together: the whole pipeline minus Discord. */
export async function startPipelineWorkers(
  deps: PipelineDeps,
  options: Parameters<typeof startTestRenderWorker>[1] = {},
): Promise<{ close(): Promise<void> }> {
  const cpu = await startCpuWorkers(deps);
  const render = startTestRenderWorker(deps, options);
  await render.waitUntilReady();
  return {
    async close() {
      await Promise.all([cpu.close(), render.close()]);
    },
  };
}

/** Every comic post job ever enqueued under the harness's prefix (the bot would consume these), validated. */
export async function postJobs(producer: JobProducer): Promise<ComicPostJob[]> {
  const jobs = (await producer
    .queue('post')
    .getJobs(['wait', 'active', 'completed', 'failed', 'delayed', 'prioritized'])) as Array<Job | undefined>;
  return jobs
    .filter((j): j is Job => j !== undefined)
    .map((j) => PostJob.parse(j.data))
    .filter((p): p is ComicPostJob => !isTrainingPostJob(p));
}

/** Polls until `check` returns a value other than undefined/false; the test's own timeout bounds it. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  intervalMs = 50,
): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
