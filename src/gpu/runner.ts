/**
 * `comicmaster runner`: the GPU runner for one GPU. Database (migrated), artifact store, queue
 * connection, the renderer (ComfyUI when COMFYUI_URL is set, storyboards otherwise), the render
 * worker and the presence heartbeat, with a graceful shutdown on SIGTERM/SIGINT.
 *
 * Shutdown: the worker stops taking jobs and the render in progress may finish for up to
 * `shutdownGraceMs`; after that it is cancelled on ComfyUI and its job handed back to the queue (and
 * if the process dies before even that, BullMQ's stalled-job check re-queues it once the lock
 * expires). Then the heartbeat key is removed and every connection closed. Nothing is lost.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AppConfig } from '../config/env.ts';
import { openDatabase, type Database } from '../db/client.ts';
import { runMigrations } from '../db/migrate.ts';
import { log } from '../log.ts';
import { createRedisClient, queueConnectionFromConfig, type QueueConnection } from '../queue/connection.ts';
import { JobProducer } from '../queue/producer.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';
import { createArtifactStore } from '../store/local-store.ts';
import { ComfyRenderer, type ComfyRendererDeps } from './comfy-renderer.ts';
import { startPresence, type PresenceHandle, type PresenceSnapshot } from './presence.ts';
import {
  startRenderWorker,
  type RenderSchedulingOptions,
  type RenderWorker,
  type RenderWorkerOptions,
} from './render-worker.ts';
import type { RunnerModels } from '../scheduling/candidates.ts';
import { readModelFiles, type ModelFiles } from '../scheduling/model-inventory.ts';
import type { PanelRenderer } from './renderer.ts';
import { StoryboardRenderer } from './storyboard-renderer.ts';
import { startEvaluateWorker, type EvaluateDeps } from '../evaluation/evaluate-worker.ts';
import {
  startTrainWorker,
  type GpuLease,
  type TrainWorker,
  type TrainWorkerOptions,
} from './train-worker.ts';

/** How often the runner re-reads its ComfyUI's model folders (new files are copied in by hand). */
const MODEL_FILES_REFRESH_MS = 5 * 60_000;

export interface RunRunnerOptions {
  logger?: Logger;
  /** Queue prefix (tests use their own); default the product's. */
  queuePrefix?: string;
  /** A ready connection instead of one from REDIS_URL + queuePrefix. */
  connection?: QueueConnection;
  store?: ArtifactStore;
  /** Install SIGTERM/SIGINT handlers that call stop(). Default true; tests pass false. */
  handleSignals?: boolean;
  /** How long the render in progress may run on after a stop before it is handed back. Default 30 s. */
  shutdownGraceMs?: number;
  heartbeatIntervalMs?: number;
  /** Worker tuning passed through (concurrency, lock and stalled timings, progress throttles). */
  worker?: Pick<
    RenderWorkerOptions,
    'concurrency' | 'lockDurationMs' | 'stalledIntervalMs' | 'progressIntervalMs' | 'previewIntervalMs'
  >;
  /** ComfyClient tuning (tests shorten the polls). */
  comfy?: ComfyRendererDeps['client'];
  /** GPU scheduler settings (src/scheduling): policy, 'fifo' for the benchmark's baseline, poll interval. */
  scheduling?: Pick<RenderSchedulingOptions, 'mode' | 'policy' | 'pollIntervalMs'>;
  /** Evaluation grid tuning (tests render small cells with few steps). */
  evaluation?: Pick<
    EvaluateDeps,
    'renderSize' | 'steps' | 'gridCellSize' | 'overviewCellSize' | 'uploadLimitBytes'
  >;
  /** Train worker tuning (watchdog, grace, throttles, lock timings). */
  train?: Pick<
    TrainWorkerOptions,
    | 'baseModelDir'
    | 'stallTimeoutMs'
    | 'nanStepLimit'
    | 'stopGraceMs'
    | 'progressIntervalMs'
    | 'cancelPollMs'
    | 'lockDurationMs'
    | 'stalledIntervalMs'
  >;
}

export interface RunnerHandle {
  readonly runnerId: string;
  readonly renderer: PanelRenderer;
  readonly renderWorker: RenderWorker;
  /** The `train` worker: one training at a time, exclusive on this GPU. */
  readonly trainWorker: TrainWorker;
  /**
   * Announce that a training holds this GPU until about `until` (null when it is over): presence
   * shows it, so the bot can give an ETA and other runners take what this one would have rendered.
   * The training itself pauses renderWorker first (renderWorker.pause() waits for renders in flight).
   */
  setTrainingUntil(until: Date | null): Promise<void>;
  /** Graceful stop; safe to call twice. */
  stop(): Promise<void>;
  /** Resolves once the runner has stopped (by stop() or a signal). */
  readonly stopped: Promise<void>;
}

export async function runRunner(config: AppConfig, opts: RunRunnerOptions = {}): Promise<RunnerHandle> {
  const logger = (opts.logger ?? log()).child({ component: 'runner' });
  const runnerId = config.RUNNER_ID ?? hostname();
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse())
      await fn().catch((err: unknown) => logger.warn({ err }, 'shutdown step failed'));
  };

  try {
    const database: Database = await openDatabase({
      databaseUrl: config.DATABASE_URL,
      dataDir: config.dataDir,
    });
    cleanups.push(() => database.close());
    await runMigrations(database);

    const store = opts.store ?? createArtifactStore(config);
    const connection = opts.connection ?? queueConnectionFromConfig(config, opts.queuePrefix);
    const producer = new JobProducer(connection, { logger });
    cleanups.push(() => producer.close());

    const renderer: PanelRenderer = config.COMFYUI_URL
      ? await ComfyRenderer.connect(config, {
          store,
          logger,
          runnerId,
          ...(opts.comfy ? { client: opts.comfy } : {}),
        })
      : new StoryboardRenderer();
    cleanups.push(() => renderer.close());
    logger.info({ runnerId, renderer: renderer.describe() }, 'runner starting');

    const redis: Redis = createRedisClient(connection, 'worker');
    cleanups.push(() => redis.quit());

    // Set once the heartbeat starts; the worker's callback may fire before (nothing to beat yet).
    const presenceRef: { current?: PresenceHandle } = {};
    let active: string[] = [];
    let trainingUntil: Date | null = null;
    // What the scheduler may route here: the models of the latest snapshot (null: anything, storyboards).
    let models: RunnerModels | null = null;
    // Text encoders, VAEs, ControlNets, IPAdapter models (GET /models/{folder}): read at start, when
    // ComfyUI comes back, and every few minutes; until first read, routing does not check them.
    let files: ModelFiles | undefined;
    let filesReadAt = 0;
    let wasOnline = false;
    const refreshModelFiles = async (comfy: ComfyRenderer, online: boolean) => {
      const due = files === undefined || !wasOnline || Date.now() - filesReadAt > MODEL_FILES_REFRESH_MS;
      wasOnline = online;
      if (!online || !due) return;
      try {
        files = await readModelFiles(comfy.client);
        filesReadAt = Date.now();
      } catch (err) {
        logger.warn({ err }, 'could not list the model folders of ComfyUI; keeping the previous lists');
      }
    };
    const snapshot = async (): Promise<PresenceSnapshot> => {
      const base = {
        renderer: renderer.kind,
        description: renderer.describe(),
        currentJobs: active,
        trainingUntil: trainingUntil?.toISOString() ?? null,
      };
      if (renderer instanceof ComfyRenderer) {
        const comfy = await renderer.snapshot();
        await refreshModelFiles(renderer, comfy.online);
        models = { checkpoints: comfy.checkpoints, loras: comfy.loras, ...files };
        return { ...base, ...comfy, ...files };
      }
      return {
        ...base,
        gpu: null,
        vramTotal: null,
        vramFree: null,
        checkpoints: [],
        loras: [],
        online: true,
        offlineReason: null,
      };
    };
    // Know the models before the first claim, so nothing is routed here by mistake.
    await snapshot();

    const renderWorker = startRenderWorker({
      connection,
      db: database.db,
      store,
      renderer,
      producer,
      runnerId,
      logger,
      ...opts.worker,
      // A runner whose ComfyUI is down claims nothing (another runner may); it resumes once a
      // heartbeat finds ComfyUI answering again.
      scheduling: {
        redis,
        models: () => models,
        online: () => !(renderer instanceof ComfyRenderer) || renderer.online,
        ...opts.scheduling,
      },
      onActiveChange: (ids) => {
        active = ids;
        void presenceRef.current?.beat();
      },
    });
    const presenceHandle = await startPresence({
      redis,
      prefix: connection.prefix,
      runnerId,
      snapshot,
      logger,
      ...(opts.heartbeatIntervalMs ? { intervalMs: opts.heartbeatIntervalMs } : {}),
    });
    presenceRef.current = presenceHandle;

    // Evaluation grids of finished trainings (src/evaluation): one training at a time, in LoRA order,
    // through the same renderer; ComfyUI's own queue interleaves them with comic panels.
    const evaluateWorker = startEvaluateWorker({
      connection,
      db: database.db,
      store,
      renderer,
      producer,
      logger,
      ...opts.evaluation,
    });

    // Training is exclusive on this GPU: renders wait (pause() lets the renders in flight finish),
    // ComfyUI unloads its models, and presence says until when.
    const gpu: GpuLease = {
      async acquire({ trainingId, etaSeconds }) {
        logger.info({ trainingId }, 'a training takes the GPU: pausing renders');
        await renderWorker.pause();
        await evaluateWorker.pause();
        if (renderer instanceof ComfyRenderer) {
          await renderer.client
            .free({ unloadModels: true, freeMemory: true })
            .catch((err: unknown) => logger.warn({ err }, 'ComfyUI /free failed'));
        }
        trainingUntil = new Date(Date.now() + etaSeconds * 1000);
        void presenceHandle.beat();
      },
      async release() {
        trainingUntil = null;
        renderWorker.resume();
        evaluateWorker.resume();
        logger.info('the training gave the GPU back: renders resume');
        void presenceHandle.beat();
      },
      update({ etaSeconds }) {
        if (etaSeconds !== null) trainingUntil = new Date(Date.now() + etaSeconds * 1000);
      },
    };
    const trainWorker = startTrainWorker({
      connection,
      db: database.db,
      store,
      producer,
      runnerId,
      config,
      gpu,
      logger,
      ...opts.train,
    });
    // Order matters: the worker goes first (it may still render and post), then the heartbeat, then
    // the connections it used (cleanups run in reverse order of registration).
    cleanups.push(() => presenceHandle.stop());

    let stopping: Promise<void> | undefined;
    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'stopping the runner');
      void stop();
    };
    const stop = () => {
      stopping ??= (async () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        // A training in progress is stopped and handed back first (it resumes from its saved state).
        await trainWorker.close();
        await evaluateWorker.close();
        await renderWorker.close(opts.shutdownGraceMs ?? 30_000);
        await cleanup();
        logger.info({ runnerId }, 'runner stopped');
        resolveStopped();
      })();
      return stopping;
    };
    if (opts.handleSignals ?? true) {
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    }
    logger.info({ runnerId, queuePrefix: connection.prefix }, 'runner ready');
    const setTrainingUntil = async (until: Date | null) => {
      trainingUntil = until;
      await presenceHandle.beat();
    };
    return { runnerId, renderer, renderWorker, trainWorker, setTrainingUntil, stop, stopped };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
