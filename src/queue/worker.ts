import { QueueEvents, UnrecoverableError, Worker, type Job, type WorkerOptions } from 'bullmq';
import type { Logger } from 'pino';
import { InputError, UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import type { QueueConnection } from './connection.ts';
import type { QueueName } from './names.ts';
import { parsePayload, type JobPayload } from './payloads.ts';

/**
 * The consuming side of the queues. Every worker validates its payload before the handler sees it and
 * sorts failures into two kinds:
 * - unrecoverable (BullMQ's UnrecoverableError: failed at once, never retried): an invalid payload,
 *   an InputError, or an UpstreamError marked not retryable. Retrying cannot fix these.
 * - everything else: thrown as is, so the job's attempts and backoff decide.
 */

export type JobHandler<N extends QueueName, R = unknown> = (
  payload: JobPayload<N>,
  job: Job<JobPayload<N>, R>,
  /** Aborted when the worker is closing or the job is cancelled; long work should stop early. */
  signal?: AbortSignal,
) => Promise<R>;

export interface CreateWorkerOptions extends Omit<WorkerOptions, 'connection' | 'prefix'> {
  connection: QueueConnection;
  logger?: Logger;
}

/**
 * Turn an error thrown by a handler into what BullMQ should do with it. Exported for handlers that
 * catch and rethrow, and for the tests.
 */
export function toJobError(error: unknown): unknown {
  if (error instanceof UnrecoverableError) return error;
  if (error instanceof InputError || (error instanceof UpstreamError && !error.retryable)) {
    // failedReason becomes the user-facing message (safe to show); the operator detail is logged.
    const unrecoverable = new UnrecoverableError(error.userMessage);
    unrecoverable.cause = error;
    return unrecoverable;
  }
  return error;
}

export function createWorker<N extends QueueName, R = unknown>(
  name: N,
  handler: JobHandler<N, R>,
  options: CreateWorkerOptions,
): Worker<JobPayload<N>, R> {
  const { connection, logger: parentLogger, ...workerOptions } = options;
  const logger = (parentLogger ?? log()).child({ component: 'queue-worker', queue: name });

  const processor = async (job: Job<JobPayload<N>, R>, _token?: string, signal?: AbortSignal): Promise<R> => {
    const parsed = parsePayload(name, job.data);
    // Logged by the 'failed' listener below, with the reason.
    if (!parsed.ok) throw new UnrecoverableError(parsed.reason);
    try {
      return await handler(parsed.payload, job, signal);
    } catch (error) {
      throw toJobError(error);
    }
  };

  const worker = new Worker<JobPayload<N>, R>(name, processor, {
    ...workerOptions,
    connection: connection.options('worker'),
    prefix: connection.prefix,
  });

  worker.on('failed', (job, err) => {
    const willRetry =
      job !== undefined &&
      !(err instanceof UnrecoverableError) &&
      job.attemptsMade < (job.opts.attempts ?? 1);
    logger[willRetry ? 'warn' : 'error'](
      { jobId: job?.id, attemptsMade: job?.attemptsMade, willRetry, err: err.cause ?? err },
      willRetry ? 'job attempt failed; it will be retried' : 'job failed',
    );
  });
  // Without a listener an 'error' event (Redis down) would crash the process; BullMQ reconnects.
  worker.on('error', (err) => logger.warn({ err }, 'worker error'));
  return worker;
}

export interface QueueEventsSettings {
  logger?: Logger;
  /**
   * Stream id to read events from: '0' replays what the stream still holds (a restarted bot catching
   * up); by default only events after the listener starts are seen.
   */
  lastEventId?: string;
}

/**
 * BullMQ's QueueEvents for one queue (completed, failed, progress…), on the same Redis and prefix:
 * how the bot follows render progress. The caller closes it.
 */
export function createQueueEvents(
  name: QueueName,
  connection: QueueConnection,
  settings: QueueEventsSettings = {},
): QueueEvents {
  const events = new QueueEvents(name, {
    connection: connection.options('worker'),
    prefix: connection.prefix,
    ...(settings.lastEventId === undefined ? {} : { lastEventId: settings.lastEventId }),
  });
  events.on('error', (err) => (settings.logger ?? log()).warn({ err, queue: name }, 'queue events error'));
  return events;
}
