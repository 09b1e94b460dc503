/**
 * The render worker: a BullMQ worker on the `render` queue that owns one GPU.
 *
 * For each job: mark the render row running → render through the PanelRenderer (with progress and
 * the latest preview reported through the job) → embed the recipe in the PNG → store it → mark the
 * row done → enqueue the `post` jobs that make the bot show it. The job's result is `{ artifactKey }`
 * (what the assemble-page parent reads from its children).
 *
 * Keeping the GPU busy: concurrency is 2 for ComfyUI. Both jobs are submitted to ComfyUI, which runs
 * prompts one at a time in submission order (a FIFO on its side), so while one renders the next is
 * already queued there and the GPU never waits for our own I/O (storing, posting, fetching the next
 * job). The order two concurrent jobs reach ComfyUI is the order their preparation finishes (a LoRA
 * install can let the second one go first); that is harmless, both are owed.
 *
 * Exactly once: a render already done (a duplicate or retried job) is completed without rendering
 * again; the artifact key is fixed per render, and post jobs carry fixed job ids, so a job that is
 * re-run after a crash or a shutdown overwrites the same file and adds no second post.
 *
 * Failures:
 * - ComfyUI unreachable (a retryable UpstreamError) → thrown as is: the job's attempts and backoff
 *   retry it; the renderer meanwhile reports itself offline. The last attempt fails the render row.
 * - Out of memory, a node error, a bad recipe or a graph this runner cannot run → the row fails with
 *   a message a user can act on, and the job fails as unrecoverable (retrying cannot fix it).
 * - Shutdown mid-render → the ComfyUI prompt is cancelled and the job is handed back to the queue
 *   (moved to wait, not counted as an attempt): another runner, or this one after restart, does it.
 */
import { Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import sharp from 'sharp';
import type { Db } from '../db/client.ts';
import { failRender, finishRender, markRenderRunning } from '../db/renders.ts';
import { renders, type RenderRow } from '../db/schema.ts';
import { ComicMasterError, UpstreamError, userMessageOf } from '../errors.ts';
import { log } from '../log.ts';
import type { QueueConnection } from '../queue/connection.ts';
import type { RenderJob } from '../queue/payloads.ts';
import type { JobProducer } from '../queue/producer.ts';
import { createWorker } from '../queue/worker.ts';
import type { RunnerModels } from '../scheduling/candidates.ts';
import { startScheduledConsumer, type ScheduledConsumer } from '../scheduling/consumer.ts';
import { RenderDispatcher, type SchedulingMode } from '../scheduling/dispatcher.ts';
import type { PolicyOptions } from '../scheduling/policy.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';
import { artifactKeys } from '../store/keys.ts';
import { embedRecipe } from './png-metadata.ts';
import type { PanelRenderer, RenderProgress } from './renderer.ts';

export interface RenderResult {
  artifactKey: string;
}

/** What the job's progress holds, for the bot's status message. */
export interface RenderJobProgress {
  step: number;
  of: number;
  previewKey?: string;
}

export interface RenderWorkerOptions {
  connection: QueueConnection;
  db: Db;
  store: ArtifactStore;
  renderer: PanelRenderer;
  producer: JobProducer;
  runnerId: string;
  logger?: Logger;
  /** Jobs in flight; default 2 for ComfyUI (one rendering, one queued there), 1 for storyboards. */
  concurrency?: number;
  /** At most one progress update per this many ms (the last step always goes out). Default 250. */
  progressIntervalMs?: number;
  /** At most one preview write per this many ms. Default 1000. */
  previewIntervalMs?: number;
  /** BullMQ lock and stalled-check timings (tests shorten them). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Called when the set of renders in progress changes (for the presence heartbeat). */
  onActiveChange?: (renderIds: string[]) => void;
  /**
   * Pick jobs with the GPU scheduler (src/scheduling) instead of BullMQ's priority-then-age order:
   * interactive first, grouped by model, fair by person, routed by the models this runner has.
   * Without it the worker is a plain BullMQ worker (what single-process tests use).
   */
  scheduling?: RenderSchedulingOptions;
}

export interface RenderSchedulingOptions {
  /** For the claim lock shared by runners and for reading their presence. */
  redis: Redis;
  mode?: SchedulingMode;
  policy?: PolicyOptions;
  /** What this runner can render now; null (or absent) means anything. */
  models?: () => RunnerModels | null;
  /** Whether the renderer can render now; while false the runner claims no render (another may). */
  online?: () => boolean;
  /** How often to look again when nothing could be claimed. Default 100 ms. */
  pollIntervalMs?: number;
}

export interface RenderWorker {
  readonly worker: Worker<RenderJob, RenderResult>;
  /** Render ids in progress. */
  active(): string[];
  /**
   * Stop taking render jobs and wait for those in flight (a training is about to hold the GPU).
   * Jobs keep waiting in the queue (or go to another runner); resume() takes them again.
   */
  pause(): Promise<void>;
  resume(): void;
  /**
   * Stop taking jobs; let the renders in progress finish for up to `graceMs`, then cancel them and
   * hand their jobs back to the queue. Resolves when the worker is closed.
   */
  close(graceMs?: number): Promise<void>;
}

/** Errors that retrying the same job cannot fix. */
function isFinal(error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  if (error instanceof UpstreamError) return !error.retryable;
  return error instanceof ComicMasterError;
}

export function startRenderWorker(options: RenderWorkerOptions): RenderWorker {
  const logger = (options.logger ?? log()).child({ component: 'render-worker', runner: options.runnerId });
  const progressInterval = options.progressIntervalMs ?? 250;
  const previewInterval = options.previewIntervalMs ?? 1_000;
  /** renderId → the controller that cancels its render at shutdown. */
  const inFlight = new Map<string, AbortController>();
  let shuttingDown = false;

  const changed = () => options.onActiveChange?.([...inFlight.keys()]);

  const enqueuePosts = async (payload: RenderJob) => {
    // Fixed job ids: a re-run of this job adds nothing the bot would post twice.
    await options.producer.enqueue(
      'post',
      {
        kind: 'panel',
        comicId: payload.comicId,
        pageNumber: payload.pageNumber,
        panelNumber: payload.panelNumber,
        renderId: payload.renderId,
      },
      { jobId: `panel-${payload.renderId}` },
    );
    await options.producer.enqueue(
      'post',
      { kind: 'status', comicId: payload.comicId },
      { jobId: `status-${payload.renderId}` },
    );
  };

  const readRow = async (id: string): Promise<RenderRow | undefined> => {
    const [row] = await options.db.select().from(renders).where(eq(renders.id, id));
    return row;
  };

  const handler = async (
    payload: RenderJob,
    job: Job<RenderJob, RenderResult>,
    bullSignal?: AbortSignal,
  ): Promise<RenderResult> => {
    const { renderId } = payload;
    const jobLog = logger.child({ jobId: job.id, renderId });

    // 1. Claim the row. Not queued any more: done (duplicate job), failed, or ours from an earlier try.
    const claimed = await markRenderRunning(options.db, renderId, options.runnerId);
    if (!claimed) {
      const row = await readRow(renderId);
      if (!row) throw new UnrecoverableError(`render ${renderId} does not exist (its comic was deleted?)`);
      if (row.status === 'done' && row.artifactKey) {
        jobLog.info('render already done; completing the job without rendering again');
        await enqueuePosts(payload);
        return { artifactKey: row.artifactKey };
      }
      if (row.status === 'failed') throw new UnrecoverableError(row.error ?? 'the render had already failed');
      // 'running': a retry, or a job handed back at shutdown / recovered after a crash.
    }

    const controller = new AbortController();
    const onBullAbort = () => controller.abort(bullSignal?.reason);
    bullSignal?.addEventListener('abort', onBullAbort, { once: true });
    inFlight.set(renderId, controller);
    changed();

    // Progress: throttled; previews: at most one write in flight and one per interval.
    let lastProgressAt = 0;
    let lastPreviewAt = 0;
    let previewWrite: Promise<void> | undefined;
    let previewKey: string | undefined;
    // The newest step seen: a preview stored late must not report an older step over a newer one.
    let latest = { step: 0, of: 0 };
    const onProgress = (p: RenderProgress) => {
      const now = Date.now();
      if (p.step >= latest.step) latest = { step: p.step, of: p.of };
      if (p.preview && !previewWrite && now - lastPreviewAt >= previewInterval) {
        lastPreviewAt = now;
        const key = artifactKeys.preview(renderId);
        const data = p.preview;
        previewWrite = (async () => {
          const jpeg =
            data.mime === 'image/jpeg' ? data.data : await sharp(data.data).jpeg({ quality: 85 }).toBuffer();
          await options.store.put(key, jpeg, { contentType: 'image/jpeg' });
          previewKey = key;
          await job.updateProgress({ ...latest, previewKey: key } satisfies RenderJobProgress);
        })()
          .catch((err: unknown) => jobLog.debug({ err }, 'preview not stored'))
          .finally(() => {
            previewWrite = undefined;
          });
        return;
      }
      if (p.preview) return;
      if (p.step < p.of && now - lastProgressAt < progressInterval) return;
      lastProgressAt = now;
      const progress: RenderJobProgress = { step: p.step, of: p.of, ...(previewKey ? { previewKey } : {}) };
      job.updateProgress(progress).catch((err: unknown) => jobLog.debug({ err }, 'progress not reported'));
    };

    try {
      const images = await options.renderer.render(payload.recipe, { onProgress, signal: controller.signal });
      await previewWrite;
      const first = images[0];
      if (!first)
        throw new ComicMasterError('render_no_image', 'The GPU box returned no image for this panel.', {
          operatorMessage: `render ${renderId}: renderer returned no images`,
        });

      // 2. Store (the recipe embedded, so any image can be re-made; idempotent per key).
      let artifactKey = '';
      for (const [index, image] of images.entries()) {
        const key = artifactKeys.render(
          payload.comicId,
          payload.pageNumber,
          payload.panelNumber,
          payload.attempt,
          index,
        );
        await options.store.put(key, embedRecipe(image.png, payload.recipe), { contentType: 'image/png' });
        if (index === 0) artifactKey = key;
      }

      // 3. Record and announce.
      await finishRender(options.db, renderId, artifactKey);
      await enqueuePosts(payload);
      jobLog.info({ artifactKey, width: first.width, height: first.height }, 'render done');
      return { artifactKey };
    } catch (error) {
      await previewWrite;
      if (controller.signal.aborted && shuttingDown) {
        // Hand the job back untouched: it goes to wait without using an attempt.
        jobLog.info('shutting down mid-render; handing the job back to the queue');
        await job.moveToWait(job.token);
        throw new WaitingError();
      }
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (isFinal(error) || lastAttempt) {
        const message = userMessageOf(error);
        jobLog.warn({ err: error }, 'render failed');
        await failRender(options.db, renderId, message);
        await options.producer
          .enqueue('post', { kind: 'status', comicId: payload.comicId }, { jobId: `status-${renderId}` })
          .catch((err: unknown) => jobLog.warn({ err }, 'could not announce the failed render'));
        if (isFinal(error)) {
          const unrecoverable = new UnrecoverableError(message);
          unrecoverable.cause = error;
          throw unrecoverable;
        }
      }
      throw error;
    } finally {
      bullSignal?.removeEventListener('abort', onBullAbort);
      inFlight.delete(renderId);
      changed();
    }
  };

  const concurrency = options.concurrency ?? (options.renderer.kind === 'comfyui' ? 2 : 1);
  if (options.scheduling) {
    return startScheduled(options, options.scheduling, handler, concurrency, inFlight, logger, () => {
      shuttingDown = true;
    });
  }
  const worker = createWorker<'render', RenderResult>('render', handler, {
    connection: options.connection,
    logger,
    concurrency,
    ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs ? { stalledInterval: options.stalledIntervalMs } : {}),
  });

  return {
    worker,
    active: () => [...inFlight.keys()],
    pause: () => worker.pause(),
    resume: () => worker.resume(),
    async close(graceMs = 30_000) {
      shuttingDown = true;
      await closeWithinGrace(worker.close(), graceMs, inFlight, logger);
    },
  };
}

/**
 * The render worker under the GPU scheduler: a Worker without a processor (BullMQ's manual
 * processing), jobs claimed by a RenderDispatcher and run by a ScheduledConsumer. Same handler, same
 * shutdown contract as the plain worker.
 */
function startScheduled(
  options: RenderWorkerOptions,
  scheduling: RenderSchedulingOptions,
  handler: (payload: RenderJob, job: Job<RenderJob, RenderResult>) => Promise<RenderResult>,
  concurrency: number,
  inFlight: Map<string, AbortController>,
  logger: Logger,
  markShuttingDown: () => void,
): RenderWorker {
  const bullOptions = { connection: options.connection.options('worker'), prefix: options.connection.prefix };
  const worker = new Worker<RenderJob, RenderResult>('render', null, {
    ...bullOptions,
    autorun: false,
    ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs ? { stalledInterval: options.stalledIntervalMs } : {}),
  });
  worker.on('error', (err) => logger.warn({ err }, 'worker error'));
  const queue = new Queue('render', bullOptions);
  queue.on('error', (err) => logger.warn({ err }, 'queue connection error'));
  const dispatcher = new RenderDispatcher({
    queue,
    worker,
    redis: scheduling.redis,
    prefix: options.connection.prefix,
    runnerId: options.runnerId,
    ...(scheduling.mode ? { mode: scheduling.mode } : {}),
    ...(scheduling.policy ? { policy: scheduling.policy } : {}),
    ...(scheduling.models ? { models: scheduling.models } : {}),
    ...(scheduling.online ? { online: scheduling.online } : {}),
    logger,
  });
  const consumer: ScheduledConsumer = startScheduledConsumer<RenderResult>({
    worker,
    dispatcher,
    handler,
    concurrency,
    ...(options.lockDurationMs ? { lockDurationMs: options.lockDurationMs } : {}),
    ...(scheduling.pollIntervalMs ? { pollIntervalMs: scheduling.pollIntervalMs } : {}),
    logger,
  });
  return {
    worker,
    active: () => [...inFlight.keys()],
    pause: () => consumer.pause(),
    resume: () => consumer.resume(),
    async close(graceMs = 30_000) {
      markShuttingDown();
      await closeWithinGrace(consumer.stop(), graceMs, inFlight, logger);
      await worker.close();
      await queue.close();
    },
  };
}

/**
 * Waits for `closing` (no new jobs, running ones finishing); when the grace period runs out first,
 * aborts the renders still running so their jobs go back to the queue, then waits for the close.
 */
async function closeWithinGrace(
  closing: Promise<void>,
  graceMs: number,
  inFlight: Map<string, AbortController>,
  logger: Logger,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const outcome = await Promise.race([closing.then(() => 'closed' as const), graceOver]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.warn(
      { renders: [...inFlight.keys()] },
      'renders did not finish in time; handing them back to the queue',
    );
    for (const controller of inFlight.values()) controller.abort(new Error('runner shutting down'));
  }
  await closing;
}
