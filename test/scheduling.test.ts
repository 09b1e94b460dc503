/**
 * GPU scheduling end to end: real PostgreSQL and Redis, runners (runRunner) over fake ComfyUIs on
 * loopback. Order is read from BullMQ (when each job started) and from the renders rows (which runner
 * drew each panel) — what an operator would look at.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Job, Queue } from 'bullmq';
import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RenderRecipe } from '../src/comic/recipe.ts';
import { parseConfig } from '../src/config/env.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { createComic } from '../src/db/comics.ts';
import { runMigrations } from '../src/db/migrate.ts';
import { pages, panels, renders } from '../src/db/schema.ts';
import { listRunners } from '../src/gpu/presence.ts';
import { runRunner, type RunnerHandle } from '../src/gpu/runner.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import { JobProducer } from '../src/queue/producer.ts';
import { DEFAULT_POLICY, type PolicyOptions } from '../src/scheduling/policy.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import { createArtifactStore } from '../src/store/local-store.ts';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';
import { createTestDatabase } from './helpers/database.ts';
import { cleanupQueues, settledJob, TEST_REDIS_URL, testQueueConnection } from './helpers/redis.ts';

const silent = pino({ level: 'silent' });
const CKPT_A = 'illustriousXL_v01.safetensors';
const CKPT_B = 'noobaiXL_vpred10.safetensors';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let database: Database;
let dir: string;
let connection: QueueConnection;
let producer: JobProducer;
let store: ArtifactStore;
let storeDir: string;
const fakes: FakeComfyUI[] = [];
const runners: RunnerHandle[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'scheduling-test-'));
  database = await openDatabase({ databaseUrl: testDb.url, dataDir: dir });
  await runMigrations(database);
}, 60_000);

afterAll(async () => {
  await database.close();
  await testDb.drop();
  await rm(dir, { recursive: true, force: true });
});

async function setup() {
  storeDir = await mkdtemp(join(dir, 'data-'));
  store = createArtifactStore({ dataDir: storeDir });
  connection = testQueueConnection('sched');
  producer = new JobProducer(connection, { logger: silent });
}

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const r of runners.splice(0)) await r.stop();
  await producer.close();
  await cleanupQueues(connection);
  for (const f of fakes.splice(0)) await f.close();
});

async function fake(checkpoints: string[], stepMs: number): Promise<FakeComfyUI> {
  const f = await startFakeComfyUI({
    objectInfoPath: false,
    checkpoints,
    previews: 'none',
    timing: { stepMs },
  });
  fakes.push(f);
  return f;
}

const LANES_OFF: PolicyOptions['maxWaitMs'] = {
  interactive: 600_000,
  'first-panel': 600_000,
  comic: 600_000,
  evaluation: 600_000,
};

async function startRunner(
  runnerId: string,
  comfy: FakeComfyUI,
  policy: PolicyOptions = { ...DEFAULT_POLICY, maxWaitMs: LANES_OFF },
) {
  const runner = await runRunner(
    parseConfig({
      DATABASE_URL: testDb.url,
      DATA_DIR: dir,
      RUNNER_ID: runnerId,
      LOG_LEVEL: 'silent',
      COMFYUI_URL: comfy.url,
    }),
    {
      logger: silent,
      connection,
      store,
      handleSignals: false,
      shutdownGraceMs: 5_000,
      heartbeatIntervalMs: 200,
      worker: {
        concurrency: 1,
        lockDurationMs: 2_000,
        stalledIntervalMs: 500,
        previewIntervalMs: 0,
        progressIntervalMs: 0,
      },
      comfy: {
        pollIntervalMs: 500,
        recoveryPollIntervalMs: 50,
        reconnectInitialDelayMs: 20,
        reconnectMaxDelayMs: 200,
      },
      scheduling: { policy, pollIntervalMs: 20 },
    },
  );
  runners.push(runner);
  return runner;
}

function recipe(comicId: string, panel: number, checkpoint: string, steps = 4): RenderRecipe {
  return RenderRecipe.parse({
    version: 1,
    family: 'illustrious',
    vPrediction: false,
    models: { kind: 'checkpoint', checkpoint },
    positive: 'masterpiece, 1girl, rooftop, night',
    negative: 'lowres',
    loras: [],
    width: 256,
    height: 256,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps,
    cfg: 5.5,
    guidance: null,
    seed: 7 + panel,
    candidates: 1,
    controlNet: null,
    panel: {
      comicId,
      page: 1,
      panel,
      attempt: 0,
      shot: 'wide',
      angle: 'eye',
      setting: 'rooftop',
      action: 'stands',
      characters: [],
    },
  });
}

/** A comic with panels 2–6 on each page (panel 1 left out, so none counts as a comic's first panel). */
async function makeRenders(
  checkpoints: string[],
  opts: { interactive?: boolean; owner?: string } = {},
): Promise<RenderJob[]> {
  const db = database.db;
  const comic = await createComic(db, {
    guildId: null,
    channelId: null,
    userId: opts.owner ?? 'u1',
    prompt: 'Mira on the rooftops',
    options: {
      pages: Math.ceil(checkpoints.length / 5),
      panelsPerPage: 6,
      style: null,
      modelFamily: 'illustrious',
      rtl: false,
    },
  });
  for (let page = 1; page <= Math.ceil(checkpoints.length / 5); page++)
    await db.insert(pages).values({ comicId: comic.id, number: page });
  const jobs: RenderJob[] = [];
  for (const [i, checkpoint] of checkpoints.entries()) {
    const pageNumber = Math.floor(i / 5) + 1;
    const panelNumber = (i % 5) + 2;
    const [panel] = await db
      .insert(panels)
      .values({
        comicId: comic.id,
        pageNumber,
        panelNumber,
        scriptPanel: {
          shot: 'wide',
          angle: 'eye-level',
          setting: 'rooftop',
          time: 'night',
          lighting: 'neon',
          action: 'stands',
          characters: [],
          balloons: [],
          caption: null,
          sfx: null,
        },
      })
      .returning();
    const r = recipe(comic.id, i + 1, checkpoint);
    const [row] = await db.insert(renders).values({ panelId: panel!.id, attempt: 0, recipe: r }).returning();
    jobs.push({
      renderId: row!.id,
      comicId: comic.id,
      pageNumber,
      panelNumber,
      attempt: 0,
      recipe: r,
      interactive: opts.interactive ?? false,
    });
  }
  return jobs;
}

const renderQueue = () => producer.queue('render') as Queue;
const enqueue = (p: RenderJob, priority = 100) =>
  producer.enqueue('render', p, { jobId: `render-${p.renderId}`, priority, attempts: 3 });

async function renderRow(id: string) {
  const [row] = await database.db.select().from(renders).where(eq(renders.id, id));
  return row!;
}

/** Job ids in the order the runners started them. */
async function startOrder(jobs: Job[]): Promise<string[]> {
  const settled = await Promise.all(jobs.map((j) => settledJob(renderQueue(), j.id)));
  for (const j of settled) expect(j.finishedOn && j.returnvalue).toBeTruthy();
  return settled.sort((a, b) => (a.processedOn ?? 0) - (b.processedOn ?? 0)).map((j) => j.id ?? '');
}

describe('GPU scheduling', () => {
  it('groups renders by checkpoint, yet a job on another checkpoint does not wait past the bound', async () => {
    await setup();
    // 4 steps × 60 ms: the A work (12 renders) takes about 3 s, twice the bound. The margins on both
    // sides are wide so that a slow start or a busy machine cannot reorder the result.
    const comfy = await fake([CKPT_A, CKPT_B], 60);
    // Two comic panels on A, one on B, then ten more on A: FIFO would load A, B, A.
    const early = await makeRenders([CKPT_A, CKPT_A]);
    const [onB] = await makeRenders([CKPT_B]);
    const late = await makeRenders(Array<string>(10).fill(CKPT_A));
    const bound = 1500;
    await startRunner('gpu-1', comfy, {
      ...DEFAULT_POLICY,
      maxWaitMs: { ...LANES_OFF, comic: bound },
      overdueWindowMs: 0,
    });
    await renderQueue().pause();
    const jobs = [];
    for (const p of [...early, onB!, ...late]) jobs.push(await enqueue(p));
    await renderQueue().resume();

    const order = await startOrder(jobs);
    const positionOfB = order.indexOf(`render-${onB!.renderId}`);
    // Not in arrival order (third): grouped behind A work…
    expect(positionOfB).toBeGreaterThan(2);
    // …but not last either: once it waited past the bound, it went next.
    expect(positionOfB).toBeLessThan(order.length - 1);
    expect(comfy.getStats().checkpointLoads).toBeLessThanOrEqual(3);
  });

  it('a re-roll overtakes the bulk work queued before it', async () => {
    await setup();
    const comfy = await fake([CKPT_A], 25);
    const bulk = await makeRenders(Array<string>(8).fill(CKPT_A));
    const [reroll] = await makeRenders([CKPT_A], { interactive: true, owner: 'u2' });
    await renderQueue().pause();
    const jobs = [];
    for (const p of bulk) jobs.push(await enqueue(p));
    const rerollJob = await enqueue(reroll!, 2);
    await startRunner('gpu-1', comfy);
    await renderQueue().resume();

    const order = await startOrder([...jobs, rerollJob]);
    expect(order.indexOf(rerollJob.id!)).toBeLessThanOrEqual(1);
  });

  it('a job goes to the runner that has its checkpoint', async () => {
    await setup();
    const hasA = await fake([CKPT_A], 5);
    const hasB = await fake([CKPT_B], 5);
    await startRunner('gpu-a', hasA);
    await startRunner('gpu-b', hasB);
    const payloads = await makeRenders([CKPT_A, CKPT_B, CKPT_B, CKPT_A, CKPT_B, CKPT_A]);
    const jobs = [];
    for (const p of payloads) jobs.push(await enqueue(p));
    for (const job of jobs)
      expect(await (await settledJob(renderQueue(), job.id)).getState()).toBe('completed');

    for (const p of payloads) {
      const row = await renderRow(p.renderId);
      expect(row.status).toBe('done');
      expect(row.runnerId).toBe(
        p.recipe.models.kind === 'checkpoint' && p.recipe.models.checkpoint === CKPT_A ? 'gpu-a' : 'gpu-b',
      );
    }
  });

  it('a training blocks renders on its own runner only, and presence shows until when', async () => {
    await setup();
    const first = await fake([CKPT_A], 5);
    const second = await fake([CKPT_A], 5);
    const training = await startRunner('gpu-1', first);
    await startRunner('gpu-2', second);
    await training.renderWorker.pause();
    const until = new Date(Date.now() + 3_600_000);
    await training.setTrainingUntil(until);

    const payloads = await makeRenders(Array<string>(4).fill(CKPT_A));
    for (const p of payloads) await settledJob(renderQueue(), (await enqueue(p)).id);
    for (const p of payloads) expect((await renderRow(p.renderId)).runnerId).toBe('gpu-2');
    expect(first.getStats().promptsExecuted).toBe(0);

    const redis = createRedisClient(connection, 'worker');
    try {
      const presence = await listRunners(redis, connection.prefix);
      expect(presence.find((r) => r.id === 'gpu-1')?.trainingUntil).toBe(until.toISOString());
      expect(presence.find((r) => r.id === 'gpu-2')?.trainingUntil ?? null).toBeNull();
    } finally {
      await redis.quit();
    }
  });

  it('a runner killed mid-render: another runner completes the job, posted once', async () => {
    await setup();
    const comfy = await fake([CKPT_A], 60);
    const [payload] = await makeRenders([CKPT_A]);
    const job = await enqueue(payload!);

    // The doomed runner is a real process, killed with SIGKILL while its render runs.
    const child = spawnRunner('gpu-doomed', comfy);
    await comfy.waitForRunning();
    expect((await renderRow(payload!.renderId)).runnerId).toBe('gpu-doomed');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    comfy.setTiming({ stepMs: 0 });
    await startRunner('gpu-2', comfy);
    const done = await settledJob(renderQueue(), job.id);
    expect(await done.getState()).toBe('completed');
    expect((await renderRow(payload!.renderId)).status).toBe('done');
    expect(await store.list(`comics/${payload!.comicId}/renders/`)).toHaveLength(1);
    const posts = await (producer.queue('post') as Queue).getJobs([
      'waiting',
      'prioritized',
      'active',
      'completed',
    ]);
    expect(posts.filter((p) => (p.data as { kind: string }).kind === 'panel')).toHaveLength(1);
  }, 60_000);
});

/** A runner in its own process, with a short BullMQ lock so its death is noticed quickly. */
function spawnRunner(runnerId: string, comfy: FakeComfyUI): ChildProcess {
  const root = resolve(import.meta.dirname, '..');
  const script = `
    import { runRunner } from ${JSON.stringify(join(root, 'src/gpu/runner.ts'))};
    import { parseConfig } from ${JSON.stringify(join(root, 'src/config/env.ts'))};
    import { createQueueConnection } from ${JSON.stringify(join(root, 'src/queue/connection.ts'))};
    import { createArtifactStore } from ${JSON.stringify(join(root, 'src/store/local-store.ts'))};
    const config = parseConfig({ DATABASE_URL: ${JSON.stringify(testDb.url)}, DATA_DIR: ${JSON.stringify(dir)}, RUNNER_ID: ${JSON.stringify(runnerId)}, LOG_LEVEL: 'silent', COMFYUI_URL: ${JSON.stringify(comfy.url)} });
    await runRunner(config, {
      connection: createQueueConnection({ redisUrl: ${JSON.stringify(TEST_REDIS_URL)}, prefix: ${JSON.stringify(connection.prefix)} }),
      store: createArtifactStore({ dataDir: ${JSON.stringify(storeDir)} }),
      handleSignals: false,
      worker: { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 500 },
    });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}
