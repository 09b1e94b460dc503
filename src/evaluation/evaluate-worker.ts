/**
 * The `evaluate` worker, on the GPU runner: renders a finished training's evaluation plan through the
 * runner's PanelRenderer (ComfyUI, which installs each checkpoint's LoRA from the artifact store under
 * its collision-free name; or storyboards), composes one grid per test prompt as soon as that prompt's
 * cells are all rendered, then the measures, the chart and the overview, and opens the vote.
 *
 * Why its own worker and not `render` jobs: evaluation cells are not comic panels (no renders row, no
 * page), they must run in LoRA order, and the grid is composed from files in the store, so one job per
 * training that walks the plan is simpler and keeps the order. It shares the GPU with the render
 * worker through ComfyUI's own queue (one prompt at a time), so comic panels interleave between cells.
 *
 * Idempotent and resumable: a cell whose image exists in the store is not rendered again, and every
 * post job has a fixed id, so a retried or re-enqueued job continues where the last one stopped.
 */
import { UnrecoverableError, type Job, type Worker } from 'bullmq';
import { eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import { DISCORD_UPLOAD_LIMIT } from '../comic/encode.ts';
import type { Db } from '../db/client.ts';
import { getGuildSettings } from '../db/guild-settings.ts';
import { trainings } from '../db/schema.ts';
import { log } from '../log.ts';
import type { QueueConnection } from '../queue/connection.ts';
import type { EvaluateJob } from '../queue/payloads.ts';
import type { JobProducer } from '../queue/producer.ts';
import { createWorker } from '../queue/worker.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';
import { embedRecipe } from '../gpu/png-metadata.ts';
import type { PanelRenderer } from '../gpu/renderer.ts';
import { measuresChart } from './chart.ts';
import { composeGridParts, type GridSpec } from './grid.ts';
import { measure, thumbnail, type Thumb } from './measures.ts';
import { evalKeys, planEvaluation, type EvalCell, type EvalPlan, type PlanCheckpoint } from './plan.ts';
import type { EvaluationRecord } from './record.ts';
import { blindLabel, getTraining, readEvaluation, shuffledOrder, trainingCheckpoints } from './vote.ts';

export interface EvaluateDeps {
  db: Db;
  store: ArtifactStore;
  renderer: PanelRenderer;
  producer: JobProducer;
  logger?: Logger;
  /** Render size of a cell (tests use 256); default 1024. */
  renderSize?: number;
  /** Sampling steps override (tests); default the family's. */
  steps?: number;
  /** Side of a cell in the posted grids; default 512. */
  gridCellSize?: number;
  /** Side of a cell in the overview; default 128. */
  overviewCellSize?: number;
  /** Each posted image stays under this; default Discord's 10 MiB minus headroom for the request. */
  uploadLimitBytes?: number;
}

export interface EvaluateOutcome {
  rendered: number;
  reused: number;
  record: EvaluationRecord;
}

const STRENGTH_LABELS = (strengths: readonly number[]) => [
  'no LoRA',
  ...strengths.map((s) => `strength ${s.toFixed(1)}`),
];

/** Rows of the grids: checkpoints by epoch, or in blind order labelled A, B, C…. */
function gridRows(
  plan: EvalPlan,
  blindOrder: string[] | null,
): { checkpoint: PlanCheckpoint; label: string }[] {
  if (!blindOrder)
    return plan.checkpoints.map((checkpoint) => ({ checkpoint, label: `epoch ${checkpoint.epoch}` }));
  const byId = new Map(plan.checkpoints.map((c) => [c.id, c]));
  return blindOrder.flatMap((id, i) => {
    const checkpoint = byId.get(id);
    return checkpoint ? [{ checkpoint, label: blindLabel(i) }] : [];
  });
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export async function evaluateTraining(
  deps: EvaluateDeps,
  trainingId: string,
  options: { signal?: AbortSignal } = {},
): Promise<EvaluateOutcome | null> {
  const logger = (deps.logger ?? log()).child({ component: 'evaluate', trainingId });
  const training = await getTraining(deps.db, trainingId);
  if (!training) throw new UnrecoverableError(`training ${trainingId} does not exist`);
  if (training.status === 'failed' || training.status === 'cancelled') {
    logger.info({ status: training.status }, 'training is not evaluable; nothing to do');
    return null;
  }
  const rows = await trainingCheckpoints(deps.db, trainingId);
  const settings = await getGuildSettings(deps.db, training.guildId);
  const plan = planEvaluation({
    trainingId,
    trigger: training.trigger,
    family: training.modelFamily,
    checkpoints: rows.map((c) => ({ id: c.id, epoch: c.epoch, artifactKey: c.artifactKey })),
    prompts: settings.testPrompts,
    ...(deps.renderSize ? { size: deps.renderSize } : {}),
    ...(deps.steps ? { steps: deps.steps } : {}),
  });

  // The blind order is fixed before the first grid is posted: the grids carry the same labels as the vote.
  const earlier = readEvaluation(training);
  const blindOrder = earlier
    ? earlier.blindOrder
    : settings.blindVotes
      ? shuffledOrder(plan.checkpoints.map((c) => c.id))
      : null;
  const record: EvaluationRecord = earlier ?? {
    blindOrder,
    measures: [],
    baselineFlexibility: 0,
    recommendedStrength: {},
    gridKeys: plan.prompts.map(() => []),
    overviewKey: null,
    chartKey: null,
  };
  if (training.status !== 'voting' && training.status !== 'done') {
    await deps.db
      .update(trainings)
      .set({ status: 'evaluating', evaluation: record })
      .where(eq(trainings.id, trainingId));
  }

  const limit = deps.uploadLimitBytes ?? DISCORD_UPLOAD_LIMIT - 256 * 1024;
  const rowsOfGrid = gridRows(plan, blindOrder);
  const columns = STRENGTH_LABELS(plan.strengths);
  const cellOf = (prompt: number, checkpointId: string | null, column: number) =>
    plan.cells.find(
      (c) =>
        c.prompt === prompt && c.column === column && (column === 0 || c.checkpoint?.id === checkpointId),
    )!;

  const composeGrid = async (prompt: number) => {
    const spec: GridSpec = {
      title: `${training.name} · prompt ${prompt + 1}: ${truncate(plan.prompts[prompt]!, 90)}`,
      rowLabels: rowsOfGrid.map((r) => r.label),
      columnLabels: columns,
      cells: await Promise.all(
        rowsOfGrid.map((r) =>
          Promise.all(
            columns.map((_, col) => deps.store.getBuffer(cellOf(prompt, r.checkpoint.id, col).key)),
          ),
        ),
      ),
      cellSize: deps.gridCellSize ?? 512,
    };
    const parts = await composeGridParts(spec, limit);
    const keys: string[] = [];
    for (const [i, part] of parts.entries()) {
      const key = evalKeys
        .grid(trainingId, prompt, i)
        .replace(/\.png$/, part.format === 'jpeg' ? '.jpg' : `.${part.format}`);
      await deps.store.put(key, part.data, { contentType: `image/${part.format}` });
      keys.push(key);
    }
    record.gridKeys[prompt] = keys;
    await deps.db.update(trainings).set({ evaluation: record }).where(eq(trainings.id, trainingId));
    await deps.producer.enqueue(
      'post',
      { kind: 'eval-grid', trainingId, prompt, parts: keys.length },
      { jobId: `eval-grid-${trainingId}-${prompt}` },
    );
    logger.info({ prompt, parts: keys.length }, 'grid composed');
  };

  // 1. Render, in plan order; post each prompt's grid as soon as its cells are all there.
  const remaining = plan.prompts.map((_, p) => plan.cells.filter((c) => c.prompt === p).length);
  let rendered = 0;
  let reused = 0;
  for (const cell of plan.cells) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('evaluation aborted');
    if (await deps.store.exists(cell.key)) {
      reused++;
    } else {
      const images = await deps.renderer.render(
        cell.recipe,
        options.signal ? { signal: options.signal } : {},
      );
      const first = images[0];
      if (!first) throw new Error(`renderer returned no image for ${cell.key}`);
      await deps.store.put(cell.key, embedRecipe(first.png, cell.recipe), { contentType: 'image/png' });
      rendered++;
    }
    remaining[cell.prompt]!--;
    if (remaining[cell.prompt] === 0 && (record.gridKeys[cell.prompt]?.length ?? 0) === 0)
      await composeGrid(cell.prompt);
  }
  // A resumed job whose grids were composed before still owes nothing; re-enqueueing is a no-op by job id.

  // 2. Measures from the images themselves.
  const thumbs = new Map<string, Thumb>();
  for (const cell of plan.cells) thumbs.set(cell.key, await thumbnail(await deps.store.getBuffer(cell.key)));
  const thumbOf = (c: EvalCell) => thumbs.get(c.key)!;
  const result = measure({
    strengths: plan.strengths,
    baseline: plan.prompts.map((_, p) => thumbOf(cellOf(p, null, 0))),
    checkpoints: plan.checkpoints.map((c) => ({
      id: c.id,
      epoch: c.epoch,
      thumbs: plan.strengths.map((_, s) => plan.prompts.map((__, p) => thumbOf(cellOf(p, c.id, s + 1)))),
    })),
  });
  record.measures = result.checkpoints;
  record.baselineFlexibility = result.baselineFlexibility;
  record.recommendedStrength = result.recommendedStrength;

  // 3. The chart (in blind mode its points are labelled and ordered by blind label) and the overview.
  const labelOf = new Map(rowsOfGrid.map((r) => [r.checkpoint.id, r.label]));
  const chartMeasures = blindOrder
    ? rowsOfGrid.map((r) => result.checkpoints.find((m) => m.checkpointId === r.checkpoint.id)!)
    : result.checkpoints;
  const chart = await measuresChart(
    chartMeasures,
    plan.strengths,
    result.baselineFlexibility,
    (m) => labelOf.get(m.checkpointId) ?? `e${m.epoch}`,
  );
  await deps.store.put(evalKeys.chart(trainingId), chart, { contentType: 'image/png' });
  record.chartKey = evalKeys.chart(trainingId);

  const overviewSpec: GridSpec = {
    title: `${training.name} · overview (${plan.prompts.length} prompts × no LoRA + ${plan.strengths.length} strengths)`,
    rowLabels: rowsOfGrid.map((r) => r.label),
    columnLabels: plan.prompts.flatMap((_, p) =>
      ['base', ...plan.strengths.map((s) => s.toFixed(1))].map((c) => `P${p + 1} ${c}`),
    ),
    cells: await Promise.all(
      rowsOfGrid.map((r) =>
        Promise.all(
          plan.prompts.flatMap((_, p) =>
            columns.map((__, col) => deps.store.getBuffer(cellOf(p, r.checkpoint.id, col).key)),
          ),
        ),
      ),
    ),
    cellSize: deps.overviewCellSize ?? 128,
  };
  const [overview] = await composeGridParts(overviewSpec, limit);
  if (overview) {
    const key = evalKeys
      .overview(trainingId)
      .replace(/\.png$/, overview.format === 'jpeg' ? '.jpg' : `.${overview.format}`);
    await deps.store.put(key, overview.data, { contentType: `image/${overview.format}` });
    record.overviewKey = key;
  }

  // 4. Open the vote (once: a re-run after the vote opened keeps its deadline).
  const fresh = await getTraining(deps.db, trainingId);
  if (fresh && fresh.status !== 'voting' && fresh.status !== 'done') {
    const closesAt = new Date(Date.now() + settings.voteMinutes * 60_000);
    await deps.db
      .update(trainings)
      .set({ status: 'voting', evaluation: record, votingClosesAt: closesAt })
      .where(eq(trainings.id, trainingId));
    await deps.producer.enqueue(
      'post',
      { kind: 'vote-close', trainingId },
      { jobId: `vote-close-${trainingId}`, delay: settings.voteMinutes * 60_000 },
    );
  } else {
    await deps.db.update(trainings).set({ evaluation: record }).where(eq(trainings.id, trainingId));
  }
  await deps.producer.enqueue(
    'post',
    { kind: 'eval-summary', trainingId },
    { jobId: `eval-summary-${trainingId}` },
  );
  await deps.producer.enqueue('post', { kind: 'vote', trainingId }, { jobId: `vote-open-${trainingId}` });
  logger.info(
    { rendered, reused, verdicts: result.checkpoints.map((m) => `${m.epoch}:${m.verdict}`) },
    'evaluation done; vote open',
  );
  return { rendered, reused, record };
}

export interface EvaluateWorkerOptions extends EvaluateDeps {
  connection: QueueConnection;
  lockDurationMs?: number;
}

export function startEvaluateWorker(options: EvaluateWorkerOptions): Worker<EvaluateJob> {
  const logger = (options.logger ?? log()).child({ component: 'evaluate-worker' });
  return createWorker<'evaluate', EvaluateOutcome | null>(
    'evaluate',
    async (payload: EvaluateJob, _job: Job<EvaluateJob>, signal?: AbortSignal) =>
      evaluateTraining({ ...options, logger }, payload.trainingId, signal ? { signal } : {}),
    {
      connection: options.connection,
      logger,
      // One evaluation at a time per runner: it is a long walk in LoRA order.
      concurrency: 1,
      // A cell can take a minute on a busy GPU; the lock is renewed meanwhile.
      lockDuration: options.lockDurationMs ?? 120_000,
    },
  );
}
