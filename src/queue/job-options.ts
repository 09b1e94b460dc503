import type { JobsOptions } from 'bullmq';
import type { QueueName } from './names.ts';

/**
 * Retry and retention per queue. Attempts are for transient failures (ComfyUI restarting, a Discord
 * 429, an LLM timeout); bad input never uses them (it fails as unrecoverable, see worker.ts).
 * Finished jobs are kept for a while for `/queue` and debugging, then dropped so Redis stays small:
 * PostgreSQL holds the durable record.
 */
const KEEP_COMPLETED = { age: 24 * 3600, count: 1_000 };
const KEEP_FAILED = { age: 7 * 24 * 3600, count: 5_000 };

export const DEFAULT_JOB_OPTIONS: Record<QueueName, JobsOptions> = {
  script: { attempts: 3, backoff: { type: 'exponential', delay: 5_000 } },
  // ComfyUI unreachable: wait and retry with backoff (the runner reports itself offline meanwhile).
  render: { attempts: 5, backoff: { type: 'exponential', delay: 10_000 } },
  'assemble-page': { attempts: 3, backoff: { type: 'exponential', delay: 2_000 } },
  // Discord rate limits and brief outages; posting is idempotent on the bot side.
  post: { attempts: 8, backoff: { type: 'exponential', delay: 2_000 } },
  // A training takes hours; a blind retry would waste them. The trainer resumes from checkpoints.
  train: { attempts: 1 },
  evaluate: { attempts: 2, backoff: { type: 'exponential', delay: 30_000 } },
};

/** The defaults for a queue with the caller's options on top. */
export function jobOptionsFor(queue: QueueName, overrides: JobsOptions = {}): JobsOptions {
  return {
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    ...DEFAULT_JOB_OPTIONS[queue],
    ...overrides,
  };
}
