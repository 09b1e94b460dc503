// `npm run bench -- runner`: what the runner (BullMQ worker + database + artifact store + posts)
// costs per render on top of the ComfyUI client, and how much ComfyUI sits idle between consecutive
// renders. Both against the fake ComfyUI; a baseline in the same run is the raw ComfyClient.run in a
// sequential loop (no queue, no database, no store).
//
// Figures:
// - overhead per render (ms) = runner wall time per render − baseline wall time per render, at zero
//   render time (the fake's step time 0), so only our own cost shows.
// - idle share = ComfyUI idle time between consecutive prompts / (busy + that idle). At zero render
//   time nothing can hide our turnaround, so the share is also measured with a small step time
//   (STEP_MS × 20 steps), which is where "ComfyUI never waits for us" matters.
//
// Needs Redis (REDIS_URL, default 127.0.0.1:6379) and PostgreSQL (TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test; a scratch database is created and dropped).
import type { RenderRecipe } from '../src/comic/recipe.ts';
import { createComic } from '../src/db/comics.ts';
import { pages } from '../src/db/schema.ts';
import { ComfyClient } from '../src/gpu/comfy-client.ts';
import type { ApiGraph } from '../src/gpu/comfy-protocol.ts';
import { buildWorkflow } from '../src/gpu/workflow.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import { startFakeComfyUI, type FakeComfyUI } from '../test/fakes/comfyui.ts';
import { settledJob } from '../test/helpers/redis.ts';
import {
  checkpointRecipe,
  insertPanel,
  insertRender,
  openRunnerDatabase,
  silentLogger as silent,
  startRunnerHarness,
  type RunnerDatabase,
} from '../test/helpers/runner.ts';

const N = Number(process.env.BENCH_N ?? 40);
const STEPS = 20;
const STEP_MS = Number(process.env.BENCH_STEP_MS ?? 5);

function recipe(comicId: string, panel: number, seed: number): RenderRecipe {
  return checkpointRecipe({ comicId, panel, seed, steps: STEPS, negative: 'lowres, bad anatomy' });
}

const idleShare = (fake: FakeComfyUI) => {
  const s = fake.getStats();
  return s.idleBetweenPromptsMs / Math.max(1, s.busyMs + s.idleBetweenPromptsMs);
};

/** Raw client: one prompt at a time, as a simple script would. */
async function baseline(
  fake: FakeComfyUI,
  count: number,
  seedBase: number,
): Promise<{ msPerRender: number; idle: number }> {
  const client = new ComfyClient({ baseUrl: fake.url, logger: silent });
  await client.connect();
  const graphs: ApiGraph[] = [];
  for (let i = 0; i < count; i++) {
    graphs.push(
      buildWorkflow(recipe('bench', 1, seedBase + i), { filenamePrefix: 'bench/base' }) as ApiGraph,
    );
  }
  await client.run(
    buildWorkflow(recipe('bench', 1, seedBase - 1), { filenamePrefix: 'bench/warm' }) as ApiGraph,
  );
  fake.resetStats();
  const t0 = performance.now();
  for (const graph of graphs) await client.run(graph);
  const ms = performance.now() - t0;
  const idle = idleShare(fake);
  await client.close();
  return { msPerRender: ms / count, idle };
}

async function throughRunner(fake: FakeComfyUI, count: number, seedBase: number, db: RunnerDatabase) {
  const harness = await startRunnerHarness(db, 'bench-runner');
  try {
    const { producer } = harness;
    const runner = await harness.startRunner({ COMFYUI_URL: fake.url, RUNNER_ID: 'bench-gpu' });
    const comic = await createComic(db.database.db, {
      guildId: null,
      channelId: null,
      userId: 'bench',
      prompt: 'bench',
      options: { pages: 1, panelsPerPage: 1, style: null, modelFamily: 'illustrious', rtl: false },
    });
    await db.database.db.insert(pages).values({ comicId: comic.id, number: 1 });
    const at = { comicId: comic.id, pageNumber: 1, panelNumber: 1 };
    const panel = await insertPanel(db.database.db, at);
    const payloads: RenderJob[] = [];
    for (let i = 0; i <= count; i++) {
      const r = recipe(comic.id, 1, seedBase + i);
      payloads.push(
        await insertRender(db.database.db, panel.id, {
          ...at,
          attempt: i,
          recipe: { ...r, panel: { ...r.panel, attempt: i } },
          interactive: false,
        }),
      );
    }
    const queue = producer.queue('render');
    // Warm-up render, then all jobs enqueued while the worker is paused so enqueueing is not timed.
    await settledJob(queue, (await producer.enqueue('render', payloads[0]!)).id);
    await runner.renderWorker.worker.pause();
    const jobs = [];
    for (const p of payloads.slice(1)) jobs.push(await producer.enqueue('render', p));
    fake.resetStats();
    const t0 = performance.now();
    runner.renderWorker.worker.resume();
    for (const job of jobs) await settledJob(queue, job.id);
    const ms = performance.now() - t0;
    const failed = (await Promise.all(jobs.map((j) => queue.getJobState(j.id!)))).filter(
      (s) => s !== 'completed',
    ).length;
    return { msPerRender: ms / count, idle: idleShare(fake), failed };
  } finally {
    await harness.close();
  }
}

const db = await openRunnerDatabase('bench-runner', {
  pgliteFallback: () =>
    console.log('PostgreSQL not reachable: using the embedded PGlite database (slower writes).'),
});
const fake = await startFakeComfyUI({ objectInfoPath: false });
try {
  const base0 = await baseline(fake, N, 1_000);
  const run0 = await throughRunner(fake, N, 10_000, db);
  fake.setTiming({ stepMs: STEP_MS });
  const base1 = await baseline(fake, N, 20_000);
  const run1 = await throughRunner(fake, N, 30_000, db);

  const overhead = run0.msPerRender - base0.msPerRender;
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  console.log(`renders: ${N} per series, ${STEPS} steps, 256×256, fake ComfyUI on loopback`);
  console.log('zero render time:');
  console.log(
    `  baseline (client.run loop)  ${base0.msPerRender.toFixed(2)} ms/render, ComfyUI idle ${pct(base0.idle)}`,
  );
  console.log(
    `  runner (queue+db+store)     ${run0.msPerRender.toFixed(2)} ms/render, ComfyUI idle ${pct(run0.idle)}`,
  );
  console.log(`  overhead per render         ${overhead.toFixed(2)} ms (target ≤ 30 ms)`);
  console.log(`render time ${STEPS} × ${STEP_MS} ms:`);
  console.log(
    `  baseline (client.run loop)  ${base1.msPerRender.toFixed(2)} ms/render, ComfyUI idle ${pct(base1.idle)}`,
  );
  console.log(
    `  runner (queue+db+store)     ${run1.msPerRender.toFixed(2)} ms/render, ComfyUI idle ${pct(run1.idle)} (target < 1 %)`,
  );
  if (run0.failed + run1.failed > 0)
    console.log(`  WARNING: ${run0.failed + run1.failed} render jobs did not complete`);
  console.log(
    JSON.stringify({
      bench: 'runner',
      renders: N,
      steps: STEPS,
      overheadMsPerRender: Number(overhead.toFixed(2)),
      baselineMsPerRender: Number(base0.msPerRender.toFixed(2)),
      runnerMsPerRender: Number(run0.msPerRender.toFixed(2)),
      idleShareZeroRenderTime: {
        baseline: Number(base0.idle.toFixed(4)),
        runner: Number(run0.idle.toFixed(4)),
      },
      stepMs: STEP_MS,
      idleShare: { baseline: Number(base1.idle.toFixed(4)), runner: Number(run1.idle.toFixed(4)) },
      failed: run0.failed + run1.failed,
      database: db.url ? 'postgres' : 'pglite',
    }),
  );
} finally {
  await fake.close();
  await db.close();
}
