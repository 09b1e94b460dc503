import { UnrecoverableError, type Job } from 'bullmq';
import { setComicStatus } from '../../db/comics.ts';
import { InputError, UpstreamError, userMessageOf } from '../../errors.ts';
import type { PipelineDeps } from './deps.ts';
import { jobIds } from './job-ids.ts';

/** True when BullMQ will not try this job again after this error (see src/queue/worker.ts). */
export function isLastAttempt(job: Job, error: unknown): boolean {
  if (error instanceof UnrecoverableError || error instanceof InputError) return true;
  if (error instanceof UpstreamError && !error.retryable) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/** The operator's side of an error, for comics.error (never shown to users). */
function operatorCause(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.slice(0, 2_000);
}

/**
 * The comic cannot be finished: record why (for the operator) and tell the channel (in the user's
 * words). Only the first failure posts: a comic already failed, done or cancelled stays as it is.
 */
export async function failComic(deps: PipelineDeps, comicId: string, error: unknown): Promise<void> {
  const row = await setComicStatus(deps.db, comicId, 'failed', { error: operatorCause(error) });
  if (!row) return;
  const userMessage = userMessageOf(error).slice(0, 1_800);
  await deps.producer.enqueue(
    'post',
    { kind: 'failed', comicId, userMessage },
    { jobId: jobIds.postFailed(comicId) },
  );
}
