/**
 * GPU scheduling, second part: fairness by person through the real script worker, routing by every
 * model file a recipe loads (a FLUX render needs its text encoders and VAE), and a runner whose
 * ComfyUI is down claiming nothing until it is back. Real PostgreSQL and Redis, runners (runRunner)
 * over fake ComfyUIs on loopback; the down ComfyUI is a TCP proxy in front of a fake, closed and
 * reopened on the same port.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Job, Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import type { PipelineDeps } from '../src/comic/flow/deps.ts';
import { RenderRecipe } from '../src/comic/recipe.ts';
import { parseConfig } from '../src/config/env.ts';
import { createComic } from '../src/db/comics.ts';
import { pages } from '../src/db/schema.ts';
import { listRunners, type RunnerPresence } from '../src/gpu/presence.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import type { JobProducer } from '../src/queue/producer.ts';
import { DEFAULT_POLICY } from '../src/scheduling/policy.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import type { FakeComfyUI, FakeComfyUIOptions } from './fakes/comfyui.ts';
import { eventually, TEST_GEOMETRY } from './helpers/pipeline.ts';
import { settledJob } from './helpers/redis.ts';
import {
  checkpointRecipe,
  insertPanel,
  insertRender,
  panelBrief,
  renderRow as readRenderRow,
  silentLogger as silent,
  useRunnerHarness,
  type RunnerHarness,
} from './helpers/runner.ts';

const CKPT = 'illustriousXL_v01.safetensors';

const file = useRunnerHarness('sched-route');
let harness: RunnerHarness;
let connection: QueueConnection;
let producer: JobProducer;
let store: ArtifactStore;

async function setup() {
  harness = await file.setup();
  ({ connection, producer, store } = harness);
}

function fake(options: FakeComfyUIOptions = {}): Promise<FakeComfyUI> {
  return harness.startFakeComfyUI({
    checkpoints: [CKPT],
    previews: 'none',
    timing: { stepMs: 5 },
    ...options,
  });
}

function startRunner(runnerId: string, comfyUrl: string) {
  return harness.startRunner(
    { RUNNER_ID: runnerId, COMFYUI_URL: comfyUrl },
    {
      shutdownGraceMs: 5_000,
      heartbeatIntervalMs: 100,
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
      scheduling: { policy: DEFAULT_POLICY, pollIntervalMs: 20 },
    },
  );
}

async function presenceOf(runnerId: string): Promise<RunnerPresence | undefined> {
  const redis = createRedisClient(connection, 'worker');
  try {
    return (await listRunners(redis, connection.prefix)).find((r) => r.id === runnerId);
  } finally {
    await redis.quit();
  }
}

const renderQueue = () => producer.queue('render') as Queue;

const renderRow = (id: string) => readRenderRow(file.db.database, id);

/** One comic page whose panels carry the given recipes; returns their render payloads. */
async function makeRenders(
  recipes: ((comicId: string, panel: number) => RenderRecipe)[],
): Promise<RenderJob[]> {
  const comic = await createComic(file.db.database.db, {
    guildId: null,
    channelId: null,
    userId: 'u1',
    prompt: 'Mira on the rooftops',
    options: { pages: 1, panelsPerPage: 6, style: null, modelFamily: 'illustrious', rtl: false },
  });
  await file.db.database.db.insert(pages).values({ comicId: comic.id, number: 1 });
  const jobs: RenderJob[] = [];
  for (const [i, make] of recipes.entries()) {
    // Never panel 1: none of these is a comic's first panel.
    const at = { comicId: comic.id, pageNumber: 1, panelNumber: i + 2 };
    const panel = await insertPanel(file.db.database.db, at);
    jobs.push(
      await insertRender(file.db.database.db, panel.id, {
        ...at,
        attempt: 0,
        recipe: make(comic.id, at.panelNumber),
        interactive: false,
      }),
    );
  }
  return jobs;
}

const enqueue = (p: RenderJob) =>
  producer.enqueue('render', p, { jobId: `render-${p.renderId}`, priority: 100, attempts: 3 });

function sdxlRecipe(comicId: string, panel: number): RenderRecipe {
  return checkpointRecipe({ comicId, panel, checkpoint: CKPT, steps: 4, seed: 7 + panel });
}

function fluxRecipe(comicId: string, panel: number): RenderRecipe {
  return RenderRecipe.parse({
    version: 1,
    family: 'flux',
    vPrediction: false,
    models: {
      kind: 'flux',
      unet: 'flux1-dev.safetensors',
      weightDtype: 'default',
      clipT5: 't5xxl_fp8_e4m3fn.safetensors',
      clipL: 'clip_l.safetensors',
      vae: 'ae.safetensors',
    },
    positive: 'a woman on a rooftop at night, comic style',
    negative: '',
    loras: [],
    width: 256,
    height: 256,
    sampler: 'euler',
    scheduler: 'simple',
    steps: 4,
    cfg: 1,
    guidance: 3.5,
    seed: 11 + panel,
    candidates: 1,
    controlNet: null,
    panel: panelBrief(comicId, panel),
  });
}

/** A TCP proxy to a fake ComfyUI: close() is ComfyUI going away, open() it coming back on the same port. */
interface Proxy {
  readonly url: string;
  open(): Promise<void>;
  close(): Promise<void>;
}

async function proxyTo(target: FakeComfyUI): Promise<Proxy> {
  const { port: targetPort } = new URL(target.url);
  let server: Server | undefined;
  let port = 0;
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  const proxy: Proxy = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    async open() {
      const s = createServer((client) => {
        track(client);
        const upstream = connect(Number(targetPort), '127.0.0.1');
        track(upstream);
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      port = (s.address() as { port: number }).port;
      server = s;
    },
    async close() {
      const s = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  await proxy.open();
  harness.defer(() => proxy.close());
  return proxy;
}

describe('GPU scheduling: owners, model files, offline runners', () => {
  it('shares turns by person: two comics of member A and one of B, B’s first panel before A’s second comic’s', async () => {
    await setup();
    const deps: PipelineDeps = {
      db: file.db.database.db,
      store,
      producer,
      queueConnection: connection,
      config: parseConfig({ DATABASE_URL: file.db.url, DATA_DIR: file.db.dir, LOG_LEVEL: 'silent' }),
      logger: silent,
      geometry: TEST_GEOMETRY,
    };
    const newComic = (userId: string) =>
      createComic(file.db.database.db, {
        guildId: 'g1',
        channelId: 'c1',
        userId,
        prompt: 'Two friends race across the rooftops at night',
        options: { pages: 1, panelsPerPage: 2, style: null, modelFamily: 'illustrious', rtl: false },
      });
    // Queued in this order before any runner exists: A's two comics, then B's.
    const a1 = await newComic('member-a');
    const a2 = await newComic('member-a');
    const b1 = await newComic('member-b');
    for (const comic of [a1, a2, b1]) await processScriptJob(deps, { comicId: comic.id });

    const queued = await renderQueue().getJobs(['prioritized', 'waiting']);
    const firstPanel = (comicId: string) =>
      queued.find(
        (j: Job<RenderJob>) =>
          j.data.comicId === comicId && j.data.pageNumber === 1 && j.data.panelNumber === 1,
      )!;
    expect(new Set(queued.map((j: Job<RenderJob>) => j.data.owner))).toEqual(
      new Set(['g1:member-a', 'g1:member-b']),
    );
    const checkpoints = [
      ...new Set(
        queued.map((j: Job<RenderJob>) =>
          j.data.recipe.models.kind === 'checkpoint' ? j.data.recipe.models.checkpoint : '',
        ),
      ),
    ];

    await startRunner('gpu-1', (await fake({ checkpoints })).url);
    const started = await Promise.all(
      [a1, a2, b1].map(async (c) => (await settledJob(renderQueue(), firstPanel(c.id).id)).processedOn ?? 0),
    );
    const [a1At, a2At, b1At] = started as [number, number, number];
    expect(a1At).toBeLessThan(a2At);
    // One person, one turn: B's comic does not wait behind A's second comic.
    expect(b1At).toBeLessThan(a2At);
  }, 60_000);

  it('a FLUX render goes only to the runner that has its text encoders, which presence announces', async () => {
    await setup();
    const noEncoders = await fake({ diffusionModels: ['flux1-dev.safetensors'], textEncoders: [] });
    const complete = await fake({ diffusionModels: ['flux1-dev.safetensors'] });
    await startRunner('gpu-bare', noEncoders.url);
    await startRunner('gpu-full', complete.url);
    const bare = await eventually(() => presenceOf('gpu-bare'));
    const full = await eventually(() => presenceOf('gpu-full'));
    expect(bare.checkpoints).toContain('flux1-dev.safetensors');
    expect(bare.textEncoders).toEqual([]);
    expect(full.textEncoders).toEqual(
      expect.arrayContaining(['clip_l.safetensors', 't5xxl_fp8_e4m3fn.safetensors']),
    );
    expect(full.vaes).toContain('ae.safetensors');

    const payloads = await makeRenders([fluxRecipe, fluxRecipe, sdxlRecipe, fluxRecipe]);
    const jobs = [];
    for (const p of payloads) jobs.push(await enqueue(p));
    for (const job of jobs)
      expect(await (await settledJob(renderQueue(), job.id)).getState()).toBe('completed');
    for (const p of payloads) {
      const row = await renderRow(p.renderId);
      expect(row.status).toBe('done');
      if (p.recipe.family === 'flux') expect(row.runnerId).toBe('gpu-full');
    }
    expect(noEncoders.getStats().promptsFailed).toBe(0);
  }, 60_000);

  it('a runner whose ComfyUI is down claims nothing, and claims again once it is back', async () => {
    await setup();
    const flaky = await fake();
    const steady = await fake();
    const proxy = await proxyTo(flaky);
    await startRunner('gpu-flaky', proxy.url);
    const steadyRunner = await startRunner('gpu-steady', steady.url);
    await eventually(async () => (await presenceOf('gpu-flaky'))?.online === true);

    await proxy.close();
    await eventually(async () => (await presenceOf('gpu-flaky'))?.online === false);
    const whileDown = await makeRenders([sdxlRecipe, sdxlRecipe, sdxlRecipe, sdxlRecipe]);
    for (const p of whileDown) {
      const done = await settledJob(renderQueue(), (await enqueue(p)).id);
      expect(await done.getState()).toBe('completed');
      // No attempt was burnt on the runner that could not render.
      expect(done.stacktrace ?? []).toEqual([]);
      expect((await renderRow(p.renderId)).runnerId).toBe('gpu-steady');
    }

    await proxy.open();
    await eventually(async () => (await presenceOf('gpu-flaky'))?.online === true);
    // Only the runner that came back is left to do the work.
    await steadyRunner.stop();
    const afterBack = await makeRenders([sdxlRecipe, sdxlRecipe]);
    for (const p of afterBack) {
      const done = await settledJob(renderQueue(), (await enqueue(p)).id);
      expect(await done.getState()).toBe('completed');
      expect((await renderRow(p.renderId)).runnerId).toBe('gpu-flaky');
    }
    expect(flaky.getStats().promptsExecuted).toBe(2);
  }, 60_000);
});
