/**
 * The GPU runner end to end: real PostgreSQL and Redis, the fake ComfyUI on loopback, the local
 * artifact store in a temp folder. Each test starts its own fake, queue prefix and runner.
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { RenderRecipe, type LoraRef } from '../src/comic/recipe.ts';
import { createComic } from '../src/db/comics.ts';
import { pages, renders } from '../src/db/schema.ts';
import { readPngText, readEmbeddedRecipe } from '../src/gpu/png-metadata.ts';
import { listRunners } from '../src/gpu/presence.ts';
import type { RunnerHandle } from '../src/gpu/runner.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import type { JobProducer } from '../src/queue/producer.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import { artifactKeys } from '../src/store/keys.ts';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';
import { settledJob } from './helpers/redis.ts';
import {
  checkpointRecipe,
  insertPanel,
  insertRender,
  renderRow as readRenderRow,
  useRunnerHarness,
  type RunnerHarness,
} from './helpers/runner.ts';

const CKPT = 'illustriousXL_v01.safetensors';

const file = useRunnerHarness('runner');

// Per test
let harness: RunnerHarness;
let fake: FakeComfyUI | undefined;
let connection: QueueConnection;
let producer: JobProducer;
let store: ArtifactStore;
let loraDir: string;

async function setup(opts: { comfy?: boolean; steps?: { stepMs?: number } } = {}) {
  harness = await file.setup();
  ({ connection, producer, store } = harness);
  loraDir = await mkdtemp(join(harness.dir, 'loras-'));
  if (opts.comfy !== false) {
    // Not through the harness: some tests close or replace this fake themselves.
    fake = await startFakeComfyUI({
      objectInfoPath: false,
      loraDir,
      timing: { stepMs: opts.steps?.stepMs ?? 0 },
    });
  }
  // Whichever fake is current when the test ends, closed after the runners stop.
  harness.defer(async () => {
    await fake?.close();
    fake = undefined;
  });
}

async function startRunner(runnerId = 'gpu-1', shutdownGraceMs = 10_000): Promise<RunnerHandle> {
  return harness.startRunner(
    { RUNNER_ID: runnerId, ...(fake ? { COMFYUI_URL: fake.url, COMFYUI_LORA_DIR: loraDir } : {}) },
    {
      shutdownGraceMs,
      heartbeatIntervalMs: 200,
      worker: {
        lockDurationMs: 2_000,
        stalledIntervalMs: 1_000,
        previewIntervalMs: 0,
        progressIntervalMs: 0,
      },
      comfy: {
        pollIntervalMs: 500,
        recoveryPollIntervalMs: 50,
        reconnectInitialDelayMs: 20,
        reconnectMaxDelayMs: 200,
      },
    },
  );
}

function recipeFor(
  comicId: string,
  panel: number,
  o: { loras?: LoraRef[]; steps?: number; seed?: number } = {},
): RenderRecipe {
  return checkpointRecipe({
    comicId,
    panel,
    checkpoint: CKPT,
    negative: 'lowres, bad anatomy',
    height: 320,
    loras: o.loras ?? [],
    steps: o.steps ?? 3,
    seed: o.seed ?? 1234 + panel,
  });
}

/** A comic with one page of `count` panels, each with a queued render; returns their jobs' payloads. */
async function makeRenders(count: number, o: Parameters<typeof recipeFor>[2] = {}): Promise<RenderJob[]> {
  const comic = await createComic(file.db.database.db, {
    guildId: null,
    channelId: null,
    userId: 'u1',
    prompt: 'Mira on the rooftops',
    options: { pages: 1, panelsPerPage: count, style: null, modelFamily: 'illustrious', rtl: false },
  });
  await file.db.database.db.insert(pages).values({ comicId: comic.id, number: 1 });
  const jobs: RenderJob[] = [];
  for (let n = 1; n <= count; n++) {
    const at = { comicId: comic.id, pageNumber: 1, panelNumber: n };
    const panel = await insertPanel(file.db.database.db, at);
    jobs.push(
      await insertRender(file.db.database.db, panel.id, {
        ...at,
        attempt: 0,
        recipe: recipeFor(comic.id, n, o),
        interactive: false,
      }),
    );
  }
  return jobs;
}

async function enqueue(payload: RenderJob, attempts = 3) {
  return producer.enqueue('render', payload, { attempts, backoff: { type: 'fixed', delay: 100 } });
}

const renderRow = (id: string) => readRenderRow(file.db.database, id);

async function postJobs(): Promise<{ id: string | undefined; data: unknown }[]> {
  const queue = producer.queue('post') as Queue;
  const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized']);
  return jobs.map((j) => ({ id: j.id, data: j.data }));
}

const renderQueue = () => producer.queue('render') as Queue;

describe('runner with ComfyUI', () => {
  it('renders a recipe to a PNG in the store that carries its metadata; the row is done and the bot is told', async () => {
    await setup({ steps: { stepMs: 10 } });
    await startRunner();
    const [payload] = await makeRenders(1);
    const job = await enqueue(payload!);
    const done = await settledJob(renderQueue(), job.id);

    const key = artifactKeys.render(payload!.comicId, 1, 1, 0);
    expect(done.returnvalue).toEqual({ artifactKey: key });
    const png = await store.getBuffer(key);
    expect(await sharp(png).metadata()).toMatchObject({ width: 256, height: 320, format: 'png' });
    const text = readPngText(png);
    expect(text.parameters).toContain('Steps: 3, Sampler: Euler a');
    expect(text.parameters).toContain('Seed: 1235, Size: 256x320');
    expect(JSON.parse(text.prompt ?? '{}')).toHaveProperty('80.class_type', 'SaveImage'); // ComfyUI's own chunk kept
    expect(readEmbeddedRecipe(png)).toEqual(payload!.recipe);

    const row = await renderRow(payload!.renderId);
    expect(row).toMatchObject({ status: 'done', artifactKey: key, runnerId: 'gpu-1' });
    const posts = await postJobs();
    expect(posts).toContainEqual({
      id: `panel-${payload!.renderId}`,
      data: {
        kind: 'panel',
        comicId: payload!.comicId,
        pageNumber: 1,
        panelNumber: 1,
        renderId: payload!.renderId,
      },
    });
    expect(await store.exists(artifactKeys.preview(payload!.renderId))).toBe(true);
    // Progress goes through the job for the bot: step of max, and where the latest preview is.
    // (Progress writes are fire-and-forget; wait for the last one rather than racing it.)
    let progress = (await renderQueue().getJob(job.id!))?.progress as { step?: number; previewKey?: unknown };
    while (progress.step !== 3) {
      await new Promise((r) => setTimeout(r, 20));
      progress = (await renderQueue().getJob(job.id!))?.progress as { step?: number; previewKey?: unknown };
    }
    expect(progress).toMatchObject({ step: 3, of: 3 });
    expect(['string', 'undefined']).toContain(typeof progress.previewKey);
  });

  it('publishes presence with the GPU and models, and reports itself offline when ComfyUI is gone', async () => {
    await setup();
    const runner = await startRunner('gpu-7');
    const redis = createRedisClient(connection, 'worker');
    try {
      const [me] = await listRunners(redis, connection.prefix);
      expect(me).toMatchObject({
        id: 'gpu-7',
        renderer: 'comfyui',
        gpu: 'NVIDIA GeForce RTX 3090',
        online: true,
        offlineReason: null,
      });
      expect(me?.checkpoints).toContain(CKPT);
      expect(me?.description).toMatch(
        /^ComfyUI at http:\/\/127\.0\.0\.1:\d+ \(NVIDIA GeForce RTX 3090, 24 GB\)$/,
      );

      await fake!.close();
      fake = undefined;
      let seen = me;
      while (seen?.online !== false) {
        await new Promise((r) => setTimeout(r, 50));
        [seen] = await listRunners(redis, connection.prefix);
      }
      expect(seen.offlineReason).toMatch(/not reachable|did not answer/);

      await runner.stop();
      expect(await listRunners(redis, connection.prefix)).toEqual([]);
    } finally {
      await redis.quit();
    }
  });

  it('installs a missing LoRA from the artifact store, then renders', async () => {
    await setup();
    const lora: LoraRef = {
      name: 'comic_style_v1.safetensors',
      strength: 0.8,
      artifactKey: 'loras/comic_style_v1.safetensors',
      trigger: 'cmstyle',
      sha256: null,
    };
    await store.put(lora.artifactKey!, Buffer.from('fake safetensors bytes'));
    await startRunner();
    const [payload] = await makeRenders(1, { loras: [lora] });
    const done = await settledJob(renderQueue(), (await enqueue(payload!)).id);

    expect(done.finishedOn && done.failedReason).toBeFalsy();
    expect(existsSync(join(loraDir, 'comic_style_v1.safetensors'))).toBe(true);
    expect((await renderRow(payload!.renderId)).status).toBe('done');
    expect(fake!.stats.loraPatches).toBe(1);
  });

  it('a LoRA that is not installed and cannot be fetched fails the render once, with a clear message', async () => {
    await setup();
    await startRunner();
    const lora: LoraRef = {
      name: 'comic_style_v1.safetensors',
      strength: 0.8,
      artifactKey: null,
      trigger: null,
      sha256: null,
    };
    const [payload] = await makeRenders(1, { loras: [lora] });
    const failed = await settledJob(renderQueue(), (await enqueue(payload!, 3)).id);

    expect(await failed.getState()).toBe('failed');
    expect(failed.attemptsMade).toBe(1);
    expect(failed.failedReason).toBe('LoRA comic_style_v1.safetensors is not installed on runner gpu-1.');
    const row = await renderRow(payload!.renderId);
    expect(row).toMatchObject({
      status: 'failed',
      error: 'LoRA comic_style_v1.safetensors is not installed on runner gpu-1.',
    });
    expect(fake!.received).toHaveLength(0); // never sent to ComfyUI
  });

  it('out of memory fails the render with its reason, without retrying', async () => {
    await setup();
    await startRunner();
    fake!.injectOom('KSampler');
    // Not instantly: ComfyClient.run leaves its result promise unobserved until POST /prompt answers,
    // so an error event that beats the answer is reported as an unhandled rejection (told to the lead).
    fake!.setTiming({ checkpointLoadMs: 100 });
    const [payload] = await makeRenders(1);
    const failed = await settledJob(renderQueue(), (await enqueue(payload!, 3)).id);

    expect(await failed.getState()).toBe('failed');
    expect(failed.attemptsMade).toBe(1);
    const row = await renderRow(payload!.renderId);
    expect(row.status).toBe('failed');
    expect(row.error).toMatch(/^The GPU ran out of memory while running KSampler\. Try a smaller image size/);
  });

  it('a WebSocket cut mid-render still completes the job exactly once', async () => {
    await setup({ steps: { stepMs: 30 } });
    await startRunner();
    const [payload] = await makeRenders(1, { steps: 10 });
    const job = await enqueue(payload!);
    await fake!.waitForRunning();
    fake!.dropConnections();
    const done = await settledJob(renderQueue(), job.id);

    expect(await done.getState()).toBe('completed');
    expect(await store.list(`comics/${payload!.comicId}/renders/`)).toEqual([
      artifactKeys.render(payload!.comicId, 1, 1, 0),
    ]);
    expect((await postJobs()).filter((p) => (p.data as { kind: string }).kind === 'panel')).toHaveLength(1);
    expect(fake!.stats.promptsExecuted).toBe(1);
  });

  it('ComfyUI restarting mid-queue loses nothing: the lost prompts are submitted again and complete', async () => {
    await setup({ steps: { stepMs: 30 } });
    await startRunner();
    const payloads = await makeRenders(3, { steps: 6 });
    const jobs = await Promise.all(payloads.map((p) => enqueue(p)));
    await fake!.waitForRunning();
    await fake!.restart({ downMs: 150 });

    for (const job of jobs)
      expect(await (await settledJob(renderQueue(), job.id)).getState()).toBe('completed');
    for (const p of payloads) expect((await renderRow(p.renderId)).status).toBe('done');
    expect(await store.list(`comics/${payloads[0]!.comicId}/renders/`)).toHaveLength(3);
  });

  it('stopping mid-render hands the job back; after a restart of the runner it completes exactly once', async () => {
    await setup({ steps: { stepMs: 40 } });
    const first = await startRunner('gpu-1', 50);
    const [payload] = await makeRenders(1, { steps: 25 });
    const job = await enqueue(payload!);
    await fake!.waitForRunning();
    await first.stop();

    expect(await renderQueue().getJobState(job.id!)).toBe('waiting');
    expect((await renderRow(payload!.renderId)).status).toBe('running');
    expect(await store.exists(artifactKeys.render(payload!.comicId, 1, 1, 0))).toBe(false);

    fake!.setTiming({ stepMs: 0 });
    await startRunner('gpu-1');
    const done = await settledJob(renderQueue(), job.id);
    expect(await done.getState()).toBe('completed');
    expect(done.attemptsMade).toBeLessThanOrEqual(1);
    expect((await renderRow(payload!.renderId)).status).toBe('done');
    expect(await store.list(`comics/${payload!.comicId}/renders/`)).toHaveLength(1);
    expect((await postJobs()).filter((p) => (p.data as { kind: string }).kind === 'panel')).toHaveLength(1);
  });

  it('ComfyUI unreachable: the job is retried with backoff and completes once ComfyUI is back', async () => {
    await setup();
    await startRunner();
    const [payload] = await makeRenders(1);
    const down = fake!.restart({ downMs: 700 }); // the port closes now and reopens after 700 ms
    const job = await enqueue(payload!, 20);
    await down;
    const done = await settledJob(renderQueue(), job.id);
    expect(await done.getState()).toBe('completed');
    expect(done.attemptsMade).toBeGreaterThanOrEqual(1); // at least one attempt failed while it was down
    expect((await renderRow(payload!.renderId)).status).toBe('done');
  });

  it('uploads the ControlNet control image from the store and passes the name ComfyUI returned', async () => {
    await setup();
    await fake!.close();
    fake = await startFakeComfyUI({
      objectInfoPath: false,
      loraDir,
      controlnets: ['cn_lineart.safetensors'],
    });
    await startRunner();
    const control = await sharp({ create: { width: 256, height: 320, channels: 3, background: '#ffffff' } })
      .png()
      .toBuffer();
    await store.put('control/pose.png', control);
    const [base] = await makeRenders(1);
    const recipe = RenderRecipe.parse({
      ...base!.recipe,
      controlNet: {
        model: 'cn_lineart.safetensors',
        imageKey: 'control/pose.png',
        strength: 0.7,
        startPercent: 0,
        endPercent: 0.8,
      },
    });
    await file.db.database.db.update(renders).set({ recipe }).where(eq(renders.id, base!.renderId));
    const done = await settledJob(renderQueue(), (await enqueue({ ...base!, recipe })).id);
    expect(await done.getState()).toBe('completed');

    const graph = fake!.received.at(-1)?.prompt as Record<
      string,
      { class_type: string; inputs: Record<string, unknown> }
    >;
    const loadImage = Object.values(graph).find((n) => n.class_type === 'LoadImage');
    expect(loadImage?.inputs.image).toMatch(/^comicmaster\/[0-9a-f]{24}\.png$/);
    expect(existsSync(join(fake!.dataDir, 'input', String(loadImage?.inputs.image)))).toBe(true);
  });

  it('a render already done completes its duplicate job without rendering again', async () => {
    await setup();
    await startRunner();
    const [payload] = await makeRenders(1);
    await settledJob(renderQueue(), (await enqueue(payload!)).id);
    const executed = fake!.stats.promptsExecuted;
    const dup = await settledJob(renderQueue(), (await enqueue(payload!)).id);
    expect(dup.returnvalue).toEqual({ artifactKey: artifactKeys.render(payload!.comicId, 1, 1, 0) });
    expect(fake!.stats.promptsExecuted).toBe(executed);
    expect((await postJobs()).filter((p) => (p.data as { kind: string }).kind === 'panel')).toHaveLength(1);
  });
});

describe('runner without ComfyUI', () => {
  it('renders storyboard sketches with the same metadata when COMFYUI_URL is unset', async () => {
    await setup({ comfy: false });
    const runner = await startRunner();
    expect(runner.renderer.kind).toBe('storyboard');
    const [payload] = await makeRenders(1);
    const done = await settledJob(renderQueue(), (await enqueue(payload!)).id);
    expect(await done.getState()).toBe('completed');
    const png = await store.getBuffer(artifactKeys.render(payload!.comicId, 1, 1, 0));
    expect(await sharp(png).metadata()).toMatchObject({ width: 256, height: 320 });
    expect(readEmbeddedRecipe(png)).toEqual(payload!.recipe);
    expect(readPngText(png).parameters).toContain('Negative prompt: lowres, bad anatomy');
    expect((await renderRow(payload!.renderId)).status).toBe('done');
  });
});
