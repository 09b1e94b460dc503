/**
 * GPU scheduling end to end: real PostgreSQL and Redis, runners (runRunner) over fake ComfyUIs on
 * loopback. Order is read from BullMQ (when each job started) and from the renders rows (which runner
 * drew each panel) — what an operator would look at.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Job, Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import type { RenderRecipe } from '../src/comic/recipe.ts';
import { createComic } from '../src/db/comics.ts';
import { pages } from '../src/db/schema.ts';
import { listRunners } from '../src/gpu/presence.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import type { JobProducer } from '../src/queue/producer.ts';
import { DEFAULT_POLICY, type PolicyOptions } from '../src/scheduling/policy.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import type { FakeComfyUI } from './fakes/comfyui.ts';
import { settledJob, TEST_REDIS_URL } from './helpers/redis.ts';
import {
  checkpointRecipe,
  insertPanel,
  insertRender,
  renderRow as readRenderRow,
  useRunnerHarness,
  type RunnerHarness,
} from './helpers/runner.ts';

const CKPT_A = 'illustriousXL_v01.safetensors';
const CKPT_B = 'noobaiXL_vpred10.safetensors';

const file = useRunnerHarness('sched');
let harness: RunnerHarness;
let connection: QueueConnection;
let producer: JobProducer;
let store: ArtifactStore;

async function setup() {
  harness = await file.setup();
  ({ connection, producer, store } = harness);
}

function fake(checkpoints: string[], stepMs: number): Promise<FakeComfyUI> {
  return harness.startFakeComfyUI({ checkpoints, previews: 'none', timing: { stepMs } });
}

const LANES_OFF: PolicyOptions['maxWaitMs'] = {
  interactive: 600_000,
  'first-panel': 600_000,
  comic: 600_000,
  evaluation: 600_000,
};

function startRunner(
  runnerId: string,
  comfy: FakeComfyUI,
  policy: PolicyOptions = { ...DEFAULT_POLICY, maxWaitMs: LANES_OFF },
) {
  return harness.startRunner(
    { RUNNER_ID: runnerId, COMFYUI_URL: comfy.url },
    {
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
}

function recipe(comicId: string, panel: number, checkpoint: string, steps = 4): RenderRecipe {
  return checkpointRecipe({ comicId, panel, checkpoint, steps, seed: 7 + panel });
}

/** A comic with panels 2–6 on each page (panel 1 left out, so none counts as a comic's first panel). */
async function makeRenders(
  checkpoints: string[],
  opts: { interactive?: boolean; owner?: string } = {},
): Promise<RenderJob[]> {
  const comic = await createComic(file.db.database.db, {
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
    await file.db.database.db.insert(pages).values({ comicId: comic.id, number: page });
  const jobs: RenderJob[] = [];
  for (const [i, checkpoint] of checkpoints.entries()) {
    const at = { comicId: comic.id, pageNumber: Math.floor(i / 5) + 1, panelNumber: (i % 5) + 2 };
    const panel = await insertPanel(file.db.database.db, at);
    jobs.push(
      await insertRender(file.db.database.db, panel.id, {
        ...at,
        attempt: 0,
        recipe: recipe(comic.id, i + 1, checkpoint),
        interactive: opts.interactive ?? false,
      }),
    );
  }
  return jobs;
}

const renderQueue = () => producer.queue('render') as Queue;
const enqueue = (p: RenderJob, priority = 100) =>
  producer.enqueue('render', p, { jobId: `render-${p.renderId}`, priority, attempts: 3 });

const renderRow = (id: string) => readRenderRow(file.db.database, id);

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
    const config = parseConfig({ DATABASE_URL: ${JSON.stringify(file.db.url)}, DATA_DIR: ${JSON.stringify(file.db.dir)}, RUNNER_ID: ${JSON.stringify(runnerId)}, LOG_LEVEL: 'silent', COMFYUI_URL: ${JSON.stringify(comfy.url)} });
    await runRunner(config, {
      connection: createQueueConnection({ redisUrl: ${JSON.stringify(TEST_REDIS_URL)}, prefix: ${JSON.stringify(connection.prefix)} }),
      store: createArtifactStore({ dataDir: ${JSON.stringify(harness.storeDir)} }),
      handleSignals: false,
      worker: { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 500 },
    });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  harness.defer(() => child.kill('SIGKILL'));
  return child;
}
