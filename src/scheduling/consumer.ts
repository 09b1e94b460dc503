/**
 * A BullMQ consumer that takes jobs through a RenderDispatcher instead of BullMQ's own fetch order:
 * the manual-processing loop (worker.getNextJob → process → job.moveToCompleted / moveToFailed), with
 * the lock renewal and stalled-job checker that BullMQ's Worker would otherwise run for us.
 *
 * Failures follow the same rules as src/queue/worker.ts (toJobError): unrecoverable errors fail at
 * once; anything else goes through job.moveToFailed, which applies the job's attempts and backoff. A
 * handler that hands its job back (moveToWait, then throws WaitingError) is left alone.
 */
import { DelayedError, UnrecoverableError, WaitingError, type Job, type Worker } from 'bullmq';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { log } from '../log.ts';
import { parsePayload, type RenderJob } from '../queue/payloads.ts';
import { toJobError } from '../queue/worker.ts';
import type { RenderDispatcher } from './dispatcher.ts';

export interface ScheduledConsumerOptions<R> {
  /** The processor-less Worker the dispatcher claims through. */
  worker: Worker;
  dispatcher: RenderDispatcher;
  handler: (payload: RenderJob, job: Job<RenderJob, R>) => Promise<R>;
  /** Jobs in flight at once (2 for ComfyUI: one rendering, one queued there). */
  concurrency: number;
  /** BullMQ lock duration: the lock is renewed at half of it. Default 30 s (BullMQ's). */
  lockDurationMs?: number;
  /** How often to look again when nothing could be claimed. Default 100 ms. */
  pollIntervalMs?: number;
  logger?: Logger;
}

export interface ScheduledConsumer {
  /** Ids of the jobs in flight. */
  active(): string[];
  /** Stop claiming; resolves when the jobs in flight have finished. */
  pause(): Promise<void>;
  resume(): void;
  readonly paused: boolean;
  /** Stop claiming for good; resolves when the jobs in flight have finished. Does not close the worker. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function startScheduledConsumer<R>(options: ScheduledConsumerOptions<R>): ScheduledConsumer {
  const logger = (options.logger ?? log()).child({ component: 'scheduled-consumer' });
  const lockDuration = options.lockDurationMs ?? 30_000;
  const pollInterval = options.pollIntervalMs ?? 100;
  const inFlight = new Map<string, Promise<void>>();
  let paused = false;
  let stopping = false;
  /** A claim under way: pause() waits for it, so no job starts after pause() resolved. */
  let claiming: Promise<Job | undefined> | undefined;
  /** Wakes the loop early (a slot freed, resumed, stopping). */
  let wake: (() => void) | undefined;
  const poke = () => wake?.();

  const finish = async (job: Job<RenderJob, R>, token: string): Promise<void> => {
    const renewal = setInterval(
      () => {
        job
          .extendLock(token, lockDuration)
          .catch((err: unknown) => logger.warn({ err, jobId: job.id }, 'could not renew the job lock'));
      },
      Math.max(50, Math.floor(lockDuration / 2)),
    );
    try {
      const parsed = parsePayload('render', job.data);
      if (!parsed.ok) throw new UnrecoverableError(parsed.reason);
      let result: R;
      try {
        result = await options.handler(parsed.payload, job);
      } catch (error) {
        throw toJobError(error);
      }
      await job.moveToCompleted(result, token, false);
    } catch (error) {
      if (error instanceof WaitingError || error instanceof DelayedError) return; // handed back by the handler
      const err = error instanceof Error ? error : new Error(String(error));
      const willRetry =
        !(err instanceof UnrecoverableError) && job.attemptsMade + 1 < (job.opts.attempts ?? 1);
      logger[willRetry ? 'warn' : 'error'](
        { jobId: job.id, attemptsMade: job.attemptsMade, willRetry, err: err.cause ?? err },
        willRetry ? 'job attempt failed; it will be retried' : 'job failed',
      );
      await job
        .moveToFailed(err, token, false)
        .catch((moveErr: unknown) =>
          logger.warn({ err: moveErr, jobId: job.id }, 'could not record the failure (lock lost?)'),
        );
    } finally {
      clearInterval(renewal);
    }
  };

  const loop = async () => {
    while (!stopping) {
      if (paused || inFlight.size >= options.concurrency) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, pollInterval * 10);
        });
        continue;
      }
      const token = randomUUID();
      let job: Job | undefined;
      try {
        claiming = options.dispatcher.claim(token);
        job = await claiming;
      } catch (err) {
        logger.warn({ err }, 'could not claim a render job');
      } finally {
        claiming = undefined;
      }
      if (!job?.id) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, pollInterval);
        });
        continue;
      }
      const id = job.id;
      const running = finish(job as Job<RenderJob, R>, token).finally(() => {
        inFlight.delete(id);
        poke();
      });
      inFlight.set(id, running);
    }
  };

  void options.worker
    .startStalledCheckTimer()
    .catch((err: unknown) => logger.warn({ err }, 'stalled-job checker did not start'));
  const looping = loop().catch((err: unknown) => logger.error({ err }, 'scheduled consumer loop stopped'));

  const drain = async () => {
    await claiming?.catch(() => undefined);
    while (inFlight.size > 0) await Promise.allSettled([...inFlight.values()]);
  };

  return {
    active: () => [...inFlight.keys()],
    get paused() {
      return paused;
    },
    async pause() {
      paused = true;
      await drain();
    },
    resume() {
      paused = false;
      poke();
    },
    async stop() {
      stopping = true;
      poke();
      await looping;
      await drain();
      await sleep(0);
    },
  };
}
