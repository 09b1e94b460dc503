/**
 * The `train` queue worker on the GPU runner: one training at a time, holding the GPU for it.
 *
 * For a trainings row it: copies the dataset from the artifact store into a work dir under DATA_DIR,
 * plans the run (src/training/plan.ts, with the row's config overrides), takes the GPU (ComfyUI's
 * models freed, renders paused — see `gpu` below), spawns the trainer, turns its output into progress
 * (the job's progress and the row's `progress` column, throttled), copies each checkpoint into the
 * store with its row, and at the end either sets the row to `evaluating` and enqueues `evaluate`, or
 * stores the explained failure. The trainer's sample images (made at each checkpoint save) are copied
 * into the store as they appear, and the newest ones are named in the progress for the bot to show.
 *
 * Cancel: the bot sets the row's status to `cancelled`; the worker sees it (polled) and stops the
 * trainer (SIGINT to its group, SIGKILL after a grace period).
 * Resume: kohya saves its state with the checkpoints (--save_state) and a re-run passes the newest
 * state folder to --resume; ai-toolkit resumes by itself from its output folder. A runner that dies
 * leaves a detached trainer behind: the re-run stops it first (pid file). A runner stopping on purpose
 * stops the trainer and hands the job back to the queue.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { DelayedError, UnrecoverableError, type Job, type Worker } from 'bullmq';
import { eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AppConfig } from '../config/env.ts';
import type { Db } from '../db/client.ts';
import type { TrainingProgress } from '../db/json.ts';
import { trainings } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { log } from '../log.ts';
import type { QueueConnection } from '../queue/connection.ts';
import type { TrainJob } from '../queue/payloads.ts';
import type { JobProducer } from '../queue/producer.ts';
import { createWorker } from '../queue/worker.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';
import { CheckpointCollector } from '../training/checkpoints.ts';
import { launchTrainer, stopLeftoverTrainer, writePidFile } from '../training/launch.ts';
import {
  diagnoseExit,
  TrainerOutputParser,
  type TrainerEvent,
  type TrainingFailureKind,
} from '../training/parse.ts';
import { planTraining, type TrainingPlan } from '../training/plan.ts';
import { isTrainingBase } from '../training/presets.ts';
import { SampleCollector } from '../training/samples.ts';
import { getGuildSettings } from '../db/guild-settings.ts';
import { ComfyClient, type ComfyClientOptions } from './comfy-client.ts';
import { upscaleDatasetOnRunner, type UpscaleComfy } from './dataset-upscale.ts';
import { parseObjectInfo } from './object-info.ts';

/** Overrides a trainings row's `config` may carry (the rest of it is kept for the bot's own use). */
export const TrainingConfigOverrides = z
  .object({
    repeats: z.number().int().min(1).max(100),
    epochs: z.number().int().min(1).max(200),
    steps: z.number().int().min(1).max(100_000),
    saveEverySteps: z.number().int().min(1).max(100_000),
    seed: z.number().int().min(0),
  })
  .partial();

export interface TrainResult {
  status: 'trained' | 'cancelled' | 'already-done';
  checkpoints: number;
}

/** What the job's progress holds: the row's TrainingProgress plus the trainer's phase. */
export type TrainJobProgress = TrainingProgress & { trainingId: string };

/** Exclusive use of the GPU while a training runs: free ComfyUI and pause renders, then give it back. */
export interface GpuLease {
  acquire(info: { trainingId: string; etaSeconds: number }): Promise<void>;
  release(): Promise<void>;
  /** Progress moved: the expected end changed. */
  update?(info: { trainingId: string; etaSeconds: number | null }): void;
}

export interface TrainWorkerOptions {
  connection: QueueConnection;
  db: Db;
  store: ArtifactStore;
  producer: JobProducer;
  runnerId: string;
  config: Pick<
    AppConfig,
    'dataDir' | 'TRAINER_PYTHON' | 'SD_SCRIPTS_DIR' | 'AI_TOOLKIT_DIR' | 'COMFYUI_LORA_DIR'
  > &
    Partial<Pick<AppConfig, 'COMFYUI_URL'>>;
  /** ComfyClient tuning for upscaling low-resolution dataset images on this runner's ComfyUI (COMFYUI_URL). */
  comfy?: Omit<ComfyClientOptions, 'baseUrl' | 'logger'>;
  gpu?: GpuLease;
  logger?: Logger;
  /** Where base model files named on the row live (default: ComfyUI's models/checkpoints next to COMFYUI_LORA_DIR). */
  baseModelDir?: string;
  /** No trainer output for this long: stopped as stalled. Default 30 min (latent caching is quiet). */
  stallTimeoutMs?: number;
  /** Consecutive NaN losses before stopping. Default 10. */
  nanStepLimit?: number;
  /** SIGINT → SIGKILL grace. Default 60 s. */
  stopGraceMs?: number;
  /** At most one progress write (job and row) per this many ms. Default 5 s. */
  progressIntervalMs?: number;
  /** How often the row is checked for a cancel. Default 5 s. */
  cancelPollMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface TrainWorker {
  readonly worker: Worker<TrainJob, TrainResult>;
  /** The training in progress on this runner, if any. */
  active(): { trainingId: string; progress: TrainingProgress | null } | null;
  /** Stop taking jobs; a training in progress is stopped and its job handed back to the queue. */
  close(): Promise<void>;
}

class TrainingFailedError extends UnrecoverableError {
  constructor(
    message: string,
    readonly kind: TrainingFailureKind,
  ) {
    super(message);
    this.name = 'TrainingFailedError';
  }
}

/** Newest kohya state folder (`{name}-NNNNNN-state` or `{name}-stepNNNNNNNN-state`) with its step. */
async function newestKohyaState(outputDir: string): Promise<{ dir: string; step: number } | null> {
  const names = await readdir(outputDir).catch(() => [] as string[]);
  let best: { dir: string; step: number } | null = null;
  for (const name of names.filter((n) => n.endsWith('-state'))) {
    const dir = join(outputDir, name);
    const state = await readFile(join(dir, 'train_state.json'), 'utf8').then(
      (t) => JSON.parse(t) as { current_step?: unknown },
      () => null,
    );
    const step = typeof state?.current_step === 'number' ? state.current_step : -1;
    if (step >= 0 && (!best || step > best.step)) best = { dir, step };
  }
  return best;
}

/** Copy the dataset (every key under the row's dataset prefix) into `dir`, skipping files already there. */
async function materializeDataset(store: ArtifactStore, datasetKey: string, dir: string): Promise<number> {
  const prefix = `${datasetKey.replace(/\/+$/, '')}/`;
  const keys = await store.list(prefix);
  for (const key of keys) {
    const target = join(dir, key.slice(prefix.length));
    if (existsSync(target)) continue;
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, await store.getBuffer(key));
  }
  return keys.length;
}

/** Runs `fn` with a connection to this runner's ComfyUI (null when it has none or it cannot be reached). */
async function withRunnerComfy<T>(
  baseUrl: string | undefined,
  tuning: Omit<ComfyClientOptions, 'baseUrl' | 'logger'> | undefined,
  logger: Logger,
  fn: (comfy: UpscaleComfy | null) => Promise<T>,
): Promise<T> {
  if (!baseUrl) return fn(null);
  const client = new ComfyClient({ ...tuning, baseUrl, logger });
  try {
    let comfy: UpscaleComfy | null = null;
    try {
      await client.connect();
      comfy = { client, objectInfo: parseObjectInfo(await client.getObjectInfo()) };
    } catch (err) {
      logger.warn({ err }, 'ComfyUI unreachable: dataset images keep their plain resize');
    }
    return await fn(comfy);
  } finally {
    await client.close();
  }
}

export function startTrainWorker(options: TrainWorkerOptions): TrainWorker {
  const logger = (options.logger ?? log()).child({ component: 'train-worker', runner: options.runnerId });
  const { db, store, config } = options;
  const progressInterval = options.progressIntervalMs ?? 5_000;
  let current: {
    trainingId: string;
    progress: TrainingProgress | null;
    stop?: (why: 'shutdown') => void;
  } | null = null;
  let shuttingDown = false;

  const resolveModel = (baseModel: string): string => {
    if (
      isAbsolute(baseModel) ||
      (/^[\w.-]+\/[\w.-]+$/.test(baseModel) && !baseModel.endsWith('.safetensors'))
    )
      return baseModel;
    const dir =
      options.baseModelDir ??
      (config.COMFYUI_LORA_DIR ? join(dirname(config.COMFYUI_LORA_DIR), 'checkpoints') : undefined);
    return dir ? join(dir, baseModel) : baseModel;
  };

  const setRow = (id: string, values: Partial<typeof trainings.$inferInsert>) =>
    db
      .update(trainings)
      .set({ ...values, updatedAt: new Date() })
      .where(eq(trainings.id, id));

  const fail = async (
    id: string,
    kind: TrainingFailureKind,
    userMessage: string,
    operator?: string,
  ): Promise<never> => {
    logger.warn({ trainingId: id, kind, tail: operator }, 'training failed');
    await setRow(id, { status: 'failed', error: userMessage, finishedAt: new Date() });
    throw new TrainingFailedError(userMessage, kind);
  };

  const handler = async (
    payload: TrainJob,
    job: Job<TrainJob, TrainResult>,
    bullSignal?: AbortSignal,
  ): Promise<TrainResult> => {
    const id = payload.trainingId;
    const [row] = await db.select().from(trainings).where(eq(trainings.id, id));
    if (!row)
      throw new InputError('This training no longer exists.', {
        operatorMessage: `trainings row ${id} not found`,
      });
    if (row.status === 'cancelled') return { status: 'cancelled', checkpoints: 0 };
    if (row.status === 'evaluating' || row.status === 'voting' || row.status === 'done')
      return { status: 'already-done', checkpoints: 0 };
    if (!isTrainingBase(row.modelFamily)) {
      return fail(
        id,
        'crashed',
        `Style LoRAs cannot be trained for ${row.modelFamily} yet (illustrious, noobai and flux can).`,
      );
    }
    if (!row.datasetKey) return fail(id, 'no_data', 'The training has no dataset: prepare one first.');

    const workDir = join(config.dataDir, 'trainings', id);
    const datasetDir = join(workDir, 'dataset');
    const pidFile = join(workDir, 'trainer.pid');
    await mkdir(datasetDir, { recursive: true });
    await stopLeftoverTrainer(pidFile, workDir, options.stopGraceMs ?? 60_000, logger);
    const copied = await materializeDataset(store, row.datasetKey, datasetDir);
    if (copied === 0)
      return fail(
        id,
        'no_data',
        'The dataset of this training is empty in the artifact store: prepare it again.',
      );

    // Images prepareDataset had to enlarge: re-made with an upscale model where this runner has one.
    const upscaled = await withRunnerComfy(config.COMFYUI_URL, options.comfy, logger, (comfy) =>
      upscaleDatasetOnRunner(datasetDir, comfy, {
        runnerId: options.runnerId,
        logger,
        ...(bullSignal ? { signal: bullSignal } : {}),
      }),
    );

    const overrides = TrainingConfigOverrides.safeParse(row.config);
    // The sample images show the guild's own test scenes when it has set some.
    const { testPrompts } = await getGuildSettings(db, row.guildId);
    let plan: TrainingPlan;
    try {
      plan = await planTraining({
        datasetDir,
        base: row.modelFamily,
        trigger: row.trigger,
        name: row.trigger,
        workDir,
        model: resolveModel(row.baseModel),
        python: config.TRAINER_PYTHON,
        ...(config.SD_SCRIPTS_DIR ? { sdScriptsDir: config.SD_SCRIPTS_DIR } : {}),
        ...(config.AI_TOOLKIT_DIR ? { aiToolkitDir: config.AI_TOOLKIT_DIR } : {}),
        ...(overrides.success ? overrides.data : {}),
        ...(testPrompts.length > 0 ? { samplePrompts: testPrompts } : {}),
      });
    } catch (err) {
      if (err instanceof InputError) return fail(id, 'no_data', err.userMessage);
      throw err;
    }
    const trainerDir = plan.trainer === 'kohya' ? config.SD_SCRIPTS_DIR : config.AI_TOOLKIT_DIR;
    if (!trainerDir) {
      return fail(
        id,
        'crashed',
        `This runner has no ${plan.trainer} installed (set ${plan.trainer === 'kohya' ? 'SD_SCRIPTS_DIR' : 'AI_TOOLKIT_DIR'}).`,
      );
    }
    if (plan.missingCaptions > 0) {
      const parser = new TrainerOutputParser({ progressDescription: 'steps' });
      parser.missingCaptionCount = plan.missingCaptions;
      parser.seen.add('missing_captions');
      const failure = diagnoseExit(parser, {
        exitCode: 1,
        signal: null,
        finalFileExists: false,
        captionExtension: plan.captionExtension,
      });
      return fail(id, 'missing_captions', failure?.userMessage ?? 'Captions are missing.');
    }
    await writeFile(plan.configFile.path, plan.configFile.content);
    if (plan.samples.promptFile)
      await writeFile(plan.samples.promptFile.path, plan.samples.promptFile.content);

    // Resume: kohya from its newest saved state; ai-toolkit by itself (same name, same folder).
    const args = [...plan.command.args];
    let stepOffset = 0;
    if (plan.trainer === 'kohya') {
      const state = await newestKohyaState(plan.outputDir);
      if (state) {
        args.push('--resume', state.dir);
        stepOffset = state.step;
        logger.info(
          { trainingId: id, state: state.dir, step: state.step },
          'resuming the training from its saved state',
        );
      }
    }

    const checkpointDir = plan.trainer === 'kohya' ? plan.outputDir : join(plan.outputDir, plan.name);
    const collector = new CheckpointCollector({
      db,
      store,
      trainingId: id,
      dir: checkpointDir,
      plan: {
        trainer: plan.trainer,
        name: plan.name,
        totalSteps: plan.totalSteps,
        epochs: plan.epochs,
        ...(plan.saveEverySteps ? { saveEverySteps: plan.saveEverySteps } : {}),
      },
      logger,
    });
    await collector.scan(); // anything an earlier run saved but did not store
    const sampler = new SampleCollector({
      store,
      trainingId: id,
      dir: plan.samples.dir,
      plan: {
        trainer: plan.trainer,
        name: plan.name,
        stepsPerEpoch: plan.stepsPerEpoch,
        ...(plan.saveEverySteps ? { saveEverySteps: plan.saveEverySteps } : {}),
      },
      logger,
    });
    await sampler.scan();
    const newestSamples = (): Pick<TrainingProgress, 'samples'> => {
      const latest = sampler.latest(plan.samples.prompts.length);
      return latest.length > 0
        ? { samples: latest.map(({ key, step, epoch, index }) => ({ key, step, epoch, index })) }
        : {};
    };

    let progress: TrainingProgress = {
      step: stepOffset,
      totalSteps: plan.totalSteps,
      epoch:
        plan.trainer === 'kohya' && plan.stepsPerEpoch > 0 ? Math.floor(stepOffset / plan.stepsPerEpoch) : 0,
      totalEpochs: plan.epochs,
      loss: null,
      etaSeconds: plan.estimate.seconds,
      ...(upscaled.note ? { notes: [upscaled.note] } : {}),
      ...newestSamples(),
    };
    current = { trainingId: id, progress };
    await setRow(id, {
      status: 'training',
      progress,
      error: null,
      ...(row.startedAt ? {} : { startedAt: new Date() }),
    });
    await job.updateProgress({ trainingId: id, ...progress } satisfies TrainJobProgress);

    await options.gpu?.acquire({ trainingId: id, etaSeconds: plan.estimate.seconds });
    const timers: NodeJS.Timeout[] = [];
    try {
      const parser = new TrainerOutputParser({
        progressDescription: plan.trainer === 'kohya' ? 'steps' : plan.name,
        nanStepLimit: options.nanStepLimit ?? 10,
      });
      const logFile = join(workDir, 'trainer.log');
      const trainer = launchTrainer({ python: plan.command.python, args, cwd: plan.command.cwd, logger });
      await writePidFile(pidFile, trainer.pid);

      let stoppedFor: 'cancel' | 'stalled' | 'shutdown' | TrainingFailureKind | undefined;
      const stop = (why: NonNullable<typeof stoppedFor>) => {
        if (stoppedFor) return;
        stoppedFor = why;
        logger.info({ trainingId: id, why }, 'stopping the trainer');
        void trainer.stop(options.stopGraceMs ?? 60_000);
      };
      current.stop = stop;

      let lastWrite = 0;
      let dirty = false;
      const flush = async (force = false) => {
        if (!dirty || (!force && Date.now() - lastWrite < progressInterval)) return;
        dirty = false;
        lastWrite = Date.now();
        const snapshot = progress;
        options.gpu?.update?.({ trainingId: id, etaSeconds: snapshot.etaSeconds });
        await Promise.all([
          job.updateProgress({ trainingId: id, ...snapshot } satisfies TrainJobProgress),
          setRow(id, { progress: snapshot }),
        ]).catch((err: unknown) => logger.warn({ err }, 'progress update failed'));
      };

      // New sample images go into the progress (written with the next throttled flush).
      const scanSamples = () =>
        sampler
          .scan()
          .then((stored) => {
            if (stored.length === 0) return;
            progress = { ...progress, ...newestSamples() };
            if (current) current.progress = progress;
            dirty = true;
            return flush();
          })
          .catch((err: unknown) => logger.warn({ err }, 'sample scan failed'));

      let lastOutput = Date.now();
      const onEvent = (event: TrainerEvent) => {
        switch (event.type) {
          case 'progress': {
            const step = plan.trainer === 'kohya' ? event.step + stepOffset : event.step;
            const loss = event.loss === null || Number.isNaN(event.loss) ? progress.loss : event.loss;
            progress = {
              ...progress,
              step: Math.min(step, plan.totalSteps),
              epoch: plan.trainer === 'kohya' ? progress.epoch : 0,
              loss: event.loss !== null && Number.isNaN(event.loss) ? null : loss,
              etaSeconds: event.etaSeconds ?? progress.etaSeconds,
            };
            dirty = true;
            void flush();
            break;
          }
          case 'epoch':
            // kohya prints the epoch it starts; the progress shows the epochs completed.
            progress = { ...progress, epoch: Math.max(0, event.epoch - 1), totalEpochs: event.totalEpochs };
            dirty = true;
            break;
          case 'checkpoint':
            // kohya announces before writing: scan a little later, and again on later events.
            timers.push(
              setTimeout(
                () =>
                  void collector
                    .scan()
                    .catch((err: unknown) => logger.warn({ err }, 'checkpoint scan failed')),
                200,
              ),
            );
            break;
          case 'fatal':
            stop(event.failure);
            break;
        }
        if (current) current.progress = progress;
      };
      for (const stream of ['stdout', 'stderr'] as const) {
        trainer.child[stream]?.setEncoding('utf8');
        trainer.child[stream]?.on('data', (chunk: string) => {
          lastOutput = Date.now();
          void appendFile(logFile, chunk).catch(() => {});
          for (const event of parser.push(stream, chunk)) onEvent(event);
        });
        trainer.child[stream]?.on('end', () => parser.end(stream).forEach(onEvent));
      }

      const stallMs = options.stallTimeoutMs ?? 30 * 60_000;
      timers.push(
        setInterval(
          () => {
            if (Date.now() - lastOutput > stallMs) stop('stalled');
          },
          Math.min(stallMs, 10_000),
        ),
      );
      timers.push(
        setInterval(() => {
          void db
            .select({ status: trainings.status })
            .from(trainings)
            .where(eq(trainings.id, id))
            .then(([r]) => {
              if (!r || r.status === 'cancelled') stop('cancel');
            })
            .catch(() => {});
          void collector.scan().catch(() => {});
          void scanSamples();
          void flush();
        }, options.cancelPollMs ?? 5_000),
      );
      const onAbort = () => stop('shutdown');
      if (bullSignal?.aborted || shuttingDown) onAbort();
      bullSignal?.addEventListener('abort', onAbort, { once: true });

      const exit = await trainer.exited;
      bullSignal?.removeEventListener('abort', onAbort);
      for (const t of timers) clearTimeout(t);
      await rm(pidFile, { force: true });
      const stored = await collector.scan();
      const storedCount = collector.stored().length;
      // The final epoch's samples come right before the trainer exits.
      await sampler.scan();
      progress = { ...progress, ...newestSamples() };
      logger.info({ trainingId: id, ...exit, stoppedFor, newlyStored: stored.length }, 'trainer exited');

      if (stoppedFor === 'shutdown') {
        // Back to the queue: the next runner (or this one restarted) resumes from the saved state.
        await setRow(id, { status: 'queued', progress });
        await job.moveToDelayed(Date.now(), job.token);
        throw new DelayedError();
      }
      if (stoppedFor === 'cancel') {
        await setRow(id, { status: 'cancelled', progress, finishedAt: new Date() });
        return { status: 'cancelled', checkpoints: storedCount };
      }
      const failure = diagnoseExit(parser, {
        ...exit,
        ...(stoppedFor ? { stoppedFor } : {}),
        finalFileExists: existsSync(join(checkpointDir, `${plan.name}.safetensors`)),
        stalledMinutes: Math.round(stallMs / 60_000),
        captionExtension: plan.captionExtension,
      });
      if (failure) return await fail(id, failure.kind, failure.userMessage, parser.tailText());

      progress = { ...progress, step: plan.totalSteps, epoch: plan.epochs, etaSeconds: 0 };
      await setRow(id, { status: 'evaluating', progress, finishedAt: new Date() });
      await job.updateProgress({ trainingId: id, ...progress } satisfies TrainJobProgress);
      await options.producer.enqueue('evaluate', { trainingId: id }, { jobId: `evaluate-${id}` });
      logger.info({ trainingId: id, checkpoints: storedCount }, 'training finished; evaluation queued');
      return { status: 'trained', checkpoints: storedCount };
    } finally {
      for (const t of timers) clearTimeout(t);
      current = null;
      await options.gpu?.release();
    }
  };

  const worker = createWorker<'train', TrainResult>('train', handler, {
    connection: options.connection,
    logger,
    concurrency: 1,
    ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs ? { stalledInterval: options.stalledIntervalMs } : {}),
  });

  return {
    worker,
    active: () => (current ? { trainingId: current.trainingId, progress: current.progress } : null),
    async close() {
      shuttingDown = true;
      // Stop the trainer first (the handler then hands its job back), then let the worker close.
      current?.stop?.('shutdown');
      await worker.close();
    },
  };
}
