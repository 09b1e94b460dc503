// `npm run bench -- scheduling`: our GPU scheduler against plain first-in-first-out on one modelled
// workload (issue 8 §3), over the fake ComfyUI with realistic costs scaled down by BENCH_SCALE:
// checkpoint load 8 s, LoRA patch 1 s, a 28-step SDXL render 7 s (0.25 s a step).
//
// Workload (model seconds; deterministic):
// - 6 people start a comic each, one every 10 s from t=0; the script takes 8 s, then all its panels
//   (10, 8, 12, 9, 11, 10) are queued. Comics alternate between 2 checkpoints and use 4 styles.
// - An evaluation grid of 112 renders arrives at t=20 s (a training just finished): 4 epoch LoRAs ×
//   strengths 0.4 0.6 0.8 1.0 × 7 test prompts on checkpoint A, queued row by row (per prompt).
// - 10 re-rolls (🔁) of random panels, one every 25 s from t=60 s.
//
// Variant "interleaved" (a second table): comics' panels arrive over time, the way the script worker
// queues them. 8 people start a comic each, one every 15 s; each script takes 6–15 s (random,
// seeded); when it is done the comic's 2 pages are queued in sequence (page 2 a second after page 1),
// each with 4–6 panels; comics alternate between the 2 checkpoints and rotate the 4 styles. No grid,
// no re-rolls: it isolates what interleaved arrivals across checkpoints do to each order. Its lower
// bound is the larger of (sum of render times + one load per checkpoint) and (the span of arrivals +
// one render), since nothing can finish before the last panel arrives.
//
// Both runs use the same machinery (a BullMQ render queue in Redis, the dispatcher and the manual
// consumer of src/scheduling with 2 jobs in flight, ComfyClient against the fake); only the pick
// differs: the policy, or the oldest job. Figures are reported in model seconds (measured / scale).
// Lower bound: the sum of render times (measured per render on this machine, on a loaded model) plus
// one load per checkpoint. Needs Redis (REDIS_URL, default 127.0.0.1:6379).
import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import pino from 'pino';
import { RenderRecipe } from '../src/comic/recipe.ts';
import { ComfyClient } from '../src/gpu/comfy-client.ts';
import type { ApiGraph } from '../src/gpu/comfy-protocol.ts';
import { buildWorkflow } from '../src/gpu/workflow.ts';
import { createQueueConnection, createRedisClient, type QueueConnection } from '../src/queue/connection.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import { JobProducer } from '../src/queue/producer.ts';
import { startScheduledConsumer } from '../src/scheduling/consumer.ts';
import { RenderDispatcher, type SchedulingMode } from '../src/scheduling/dispatcher.ts';
import { DEFAULT_POLICY, scalePolicy } from '../src/scheduling/policy.ts';
import { startFakeComfyUI, type FakeComfyUI } from '../test/fakes/comfyui.ts';
import { cleanupQueues } from '../test/helpers/redis.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1 / 60);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const COST = { loadMs: 8_000, loraMs: 1_000, stepMs: 250, steps: 28 };
const CKPTS = ['illustriousXL_v01.safetensors', 'noobaiXL_vpred10.safetensors'] as const;
const STYLES = [
  'style-ink.safetensors',
  'style-watercolor.safetensors',
  'style-noir.safetensors',
  'style-pastel.safetensors',
];
const EPOCHS = [
  'newstyle-e04.safetensors',
  'newstyle-e08.safetensors',
  'newstyle-e12.safetensors',
  'newstyle-e16.safetensors',
];
const silent = pino({ level: 'silent' });

interface Arrival {
  /** Model seconds from the start. */
  at: number;
  job: RenderJob;
  kind: 'comic' | 'first' | 'reroll' | 'grid';
  /** For first panels: when the person started the comic (model seconds). */
  startedAt?: number;
}

function recipe(
  owner: string,
  checkpoint: string,
  loras: { name: string; strength: number }[],
  seed: number,
  page = 1,
  panel = 1,
  attempt = 0,
): RenderRecipe {
  return RenderRecipe.parse({
    version: 1,
    family: 'illustrious',
    vPrediction: false,
    models: { kind: 'checkpoint', checkpoint },
    positive: `masterpiece, scene ${seed}`,
    negative: 'lowres',
    loras: loras.map((l) => ({ ...l, artifactKey: null, trigger: null, sha256: null })),
    width: 256,
    height: 256,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: COST.steps,
    cfg: 5.5,
    guidance: null,
    seed,
    candidates: 1,
    controlNet: null,
    panel: {
      comicId: owner,
      page,
      panel,
      attempt,
      shot: 'wide',
      angle: 'eye',
      setting: 'street',
      action: 'walks',
      characters: [],
    },
  });
}

/** A small deterministic PRNG (mulberry32), so both runs see the same workload. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function workload(): Arrival[] {
  const random = rng(8);
  const arrivals: Arrival[] = [];
  let seed = 1;
  const comics = [10, 8, 12, 9, 11, 10].map((panels, i) => ({
    id: `comic${i + 1}`,
    owner: `person${i + 1}`,
    panels,
    start: i * 10,
    ckpt: CKPTS[i % 2] ?? CKPTS[0],
    style: STYLES[i % 4] ?? '',
  }));
  for (const c of comics) {
    for (let j = 0; j < c.panels; j++) {
      const page = Math.floor(j / 6) + 1;
      const panel = (j % 6) + 1;
      const job: RenderJob = {
        renderId: `${c.id}-p${page}-${panel}`,
        comicId: c.id,
        pageNumber: page,
        panelNumber: panel,
        attempt: 0,
        recipe: recipe(c.id, c.ckpt, [{ name: c.style, strength: 0.8 }], seed++, page, panel),
        interactive: false,
        owner: c.owner,
      };
      arrivals.push({ at: c.start + 8, job, kind: j === 0 ? 'first' : 'comic', startedAt: c.start });
    }
  }
  let cell = 0;
  for (let prompt = 0; prompt < 7; prompt++) {
    for (const epoch of EPOCHS) {
      for (const strength of [0.4, 0.6, 0.8, 1.0]) {
        cell++;
        const job: RenderJob = {
          renderId: `grid-${cell}`,
          comicId: 'training1',
          pageNumber: 1,
          panelNumber: 2,
          attempt: cell,
          recipe: recipe('training1', CKPTS[0], [{ name: epoch, strength }], 10_000 + prompt),
          interactive: false,
          purpose: 'evaluation',
          owner: 'trainer',
        };
        arrivals.push({ at: 20, job, kind: 'grid' });
      }
    }
  }
  for (let k = 0; k < 10; k++) {
    const c = comics[Math.floor(random() * comics.length)] ?? comics[0];
    if (!c) continue;
    const j = Math.floor(random() * c.panels);
    const page = Math.floor(j / 6) + 1;
    const panel = (j % 6) + 1;
    const job: RenderJob = {
      renderId: `${c.id}-p${page}-${panel}-reroll${k}`,
      comicId: c.id,
      pageNumber: page,
      panelNumber: panel,
      attempt: k + 1,
      recipe: recipe(c.id, c.ckpt, [{ name: c.style, strength: 0.8 }], 50_000 + k, page, panel, k + 1),
      interactive: true,
      owner: c.owner,
    };
    arrivals.push({ at: 60 + 25 * k, job, kind: 'reroll' });
  }
  return arrivals.sort((a, b) => a.at - b.at);
}

/** The interleaved variant (see the header): pages queued as each script completes. */
function interleavedWorkload(): Arrival[] {
  const random = rng(31);
  const arrivals: Arrival[] = [];
  let seed = 100_000;
  for (let i = 0; i < 8; i++) {
    const id = `late${i + 1}`;
    const start = i * 15;
    const scriptDone = start + 6 + Math.floor(random() * 10);
    const ckpt = CKPTS[i % 2] ?? CKPTS[0];
    const style = STYLES[i % 4] ?? '';
    for (let page = 1; page <= 2; page++) {
      const panels = 4 + Math.floor(random() * 3);
      for (let panel = 1; panel <= panels; panel++) {
        const job: RenderJob = {
          renderId: `${id}-p${page}-${panel}`,
          comicId: id,
          pageNumber: page,
          panelNumber: panel,
          attempt: 0,
          recipe: recipe(id, ckpt, [{ name: style, strength: 0.8 }], seed++, page, panel),
          interactive: false,
          owner: `member${i + 1}`,
        };
        const first = page === 1 && panel === 1;
        arrivals.push({
          at: scriptDone + (page - 1),
          job,
          kind: first ? 'first' : 'comic',
          ...(first ? { startedAt: start } : {}),
        });
      }
    }
  }
  return arrivals.sort((a, b) => a.at - b.at);
}

async function fakeComfy(): Promise<FakeComfyUI> {
  return startFakeComfyUI({
    objectInfoPath: false,
    checkpoints: [...CKPTS],
    loras: [...STYLES, ...EPOCHS],
    previews: 'none',
    timing: {
      checkpointLoadMs: COST.loadMs * SCALE,
      loraPatchMs: COST.loraMs * SCALE,
      stepMs: COST.stepMs * SCALE,
    },
  });
}

const graphOf = (r: RenderRecipe, tag: string) =>
  buildWorkflow(r, { filenamePrefix: `bench/${tag}` }) as ApiGraph;

/** Measured time of one render on a loaded model and LoRA (what the lower bound sums). */
async function calibrate(): Promise<number> {
  const fake = await fakeComfy();
  const client = new ComfyClient({ baseUrl: fake.url, logger: silent });
  await client.connect();
  const loras = [{ name: STYLES[0] ?? '', strength: 0.8 }];
  await client.run(graphOf(recipe('cal', CKPTS[0], loras, 1), 'cal'));
  // Two in flight, as in the runs, and ComfyUI's own busy time: what the GPU spends per render.
  const n = 12;
  fake.resetStats();
  for (let i = 0; i < n; i += 2) {
    await Promise.all(
      [0, 1].map((k) => client.run(graphOf(recipe('cal', CKPTS[0], loras, 2 + i + k), 'cal'))),
    );
  }
  const perRender = fake.getStats().busyMs / n;
  await client.close();
  await fake.close();
  return perRender;
}

interface Outcome {
  makespan_s: number;
  gpu_busy: number;
  checkpoint_loads: number;
  lora_changes: number;
  first_panel_p50_s: number;
  first_panel_p95_s: number;
  /** Null when the workload has no re-rolls (the interleaved variant). */
  reroll_p95_s: number | null;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
};
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

async function run(mode: SchedulingMode, arrivals: Arrival[]): Promise<Outcome> {
  const fake = await fakeComfy();
  const connection: QueueConnection = createQueueConnection({
    redisUrl: REDIS_URL,
    prefix: `bench-sched-${randomUUID().slice(0, 8)}`,
  });
  const producer = new JobProducer(connection, { logger: silent });
  const redis = createRedisClient(connection, 'worker');
  const client = new ComfyClient({ baseUrl: fake.url, logger: silent });
  await client.connect();
  const bull = { connection: connection.options('worker'), prefix: connection.prefix };
  const worker = new Worker('render', null, { ...bull, autorun: false });
  const queue = new Queue('render', bull);
  const dispatcher = new RenderDispatcher({
    queue,
    worker,
    redis,
    prefix: connection.prefix,
    runnerId: `bench-${mode}`,
    mode,
    policy: scalePolicy(
      {
        ...DEFAULT_POLICY,
        switchPatienceMs:
          Number(process.env.BENCH_PATIENCE_S ?? DEFAULT_POLICY.switchPatienceMs / 1_000) * 1_000,
      },
      SCALE,
    ),
    logger: silent,
  });
  const finishedAt = new Map<string, number>();
  const total = arrivals.length;
  let resolveAll!: () => void;
  const allDone = new Promise<void>((r) => (resolveAll = r));
  const consumer = startScheduledConsumer<{ ok: true }>({
    worker,
    dispatcher,
    concurrency: 2,
    pollIntervalMs: 5,
    logger: silent,
    handler: async (payload) => {
      await client.run(graphOf(payload.recipe, payload.renderId));
      finishedAt.set(payload.renderId, performance.now());
      if (finishedAt.size === total) resolveAll();
      return { ok: true };
    },
  });

  fake.resetStats();
  const t0 = performance.now();
  const timers = arrivals.map(
    (a) =>
      new Promise<void>((resolve, reject) => {
        setTimeout(
          () => {
            const priority = a.job.interactive ? 2 : a.job.purpose === 'evaluation' ? 1_000 : 100;
            producer
              .enqueue('render', a.job, { jobId: `render-${a.job.renderId}`, priority })
              .then(() => resolve(), reject);
          },
          a.at * 1_000 * SCALE,
        );
      }),
  );
  await Promise.all(timers);
  await allDone;
  // From the first job's arrival (the GPU has nothing to do before it) to the last completion.
  const firstArrivalMs = Math.min(...arrivals.map((a) => a.at)) * 1_000 * SCALE;
  const makespanMs = Math.max(...finishedAt.values()) - t0 - firstArrivalMs;
  const stats = fake.getStats();

  await consumer.stop();
  await worker.close();
  await queue.close();
  await client.close();
  await producer.close();
  await cleanupQueues(connection);
  await redis.quit();
  await fake.close();

  const model = (ms: number) => ms / 1_000 / SCALE;
  const firsts = arrivals
    .filter((a) => a.kind === 'first')
    .map((a) => model((finishedAt.get(a.job.renderId) ?? 0) - t0) - (a.startedAt ?? 0));
  const rerolls = arrivals
    .filter((a) => a.kind === 'reroll')
    .map((a) => model((finishedAt.get(a.job.renderId) ?? 0) - t0) - a.at);
  return {
    makespan_s: round(model(makespanMs)),
    gpu_busy: round(stats.busyMs / makespanMs, 3),
    checkpoint_loads: stats.checkpointLoads,
    lora_changes: stats.loraPatches,
    first_panel_p50_s: round(percentile(firsts, 50)),
    first_panel_p95_s: round(percentile(firsts, 95)),
    reroll_p95_s: rerolls.length > 0 ? round(percentile(rerolls, 95)) : null,
  };
}

const rows: [string, keyof Outcome][] = [
  ['makespan (s)', 'makespan_s'],
  ['GPU busy share', 'gpu_busy'],
  ['checkpoint loads', 'checkpoint_loads'],
  ['LoRA changes', 'lora_changes'],
  ['first panel p50 (s)', 'first_panel_p50_s'],
  ['first panel p95 (s)', 'first_panel_p95_s'],
  ['re-roll p95 (s)', 'reroll_p95_s'],
];
const cell = (v: number | null) => (v === null ? '-' : String(v)).padStart(10);
function printTable(title: string, ours: Outcome, fifo: Outcome, lowerBound: number): void {
  console.log(title);
  console.log(`  ${'figure'.padEnd(22)}${'ours'.padStart(10)}${'fifo'.padStart(10)}`);
  for (const [label, key] of rows) console.log(`  ${label.padEnd(22)}${cell(ours[key])}${cell(fifo[key])}`);
  console.log(
    `  lower bound ${lowerBound.toFixed(1)} s; ours ${(ours.makespan_s / lowerBound).toFixed(3)} × the bound; FIFO ${(fifo.makespan_s / ours.makespan_s).toFixed(2)} × ours`,
  );
}

const arrivals = workload();
const perRenderMs = await calibrate();
const perRenderS = perRenderMs / 1_000 / SCALE;
const lowerBound = arrivals.length * perRenderS + (CKPTS.length * COST.loadMs) / 1_000;
console.log(
  `scheduling: ${arrivals.length} renders (6 comics, 1 grid of 112, 10 re-rolls), scale ${SCALE.toFixed(4)}`,
);
console.log(
  `  one render measured at ${perRenderS.toFixed(2)} model s (nominal ${(COST.stepMs * COST.steps) / 1_000} s)`,
);
const ours = await run('scheduled', arrivals);
const fifo = await run('fifo', arrivals);
printTable('issue workload (all of a comic at once)', ours, fifo, lowerBound);

const late = interleavedWorkload();
const span = Math.max(...late.map((a) => a.at)) - Math.min(...late.map((a) => a.at));
const lateBound = Math.max(
  late.length * perRenderS + (CKPTS.length * COST.loadMs) / 1_000,
  span + perRenderS,
);
const lateOurs = await run('scheduled', late);
const lateFifo = await run('fifo', late);
printTable(
  `interleaved variant: ${late.length} renders, 8 comics whose pages arrive as their scripts complete, over ${span} s`,
  lateOurs,
  lateFifo,
  lateBound,
);

console.log(
  JSON.stringify({
    ours,
    fifo,
    lower_bound_s: round(lowerBound),
    interleaved: { ours: lateOurs, fifo: lateFifo, lower_bound_s: round(lateBound) },
  }),
);
process.exit(0);
