import type { Job, JobType } from 'bullmq';
import type { JobProducer } from '../../queue/producer.ts';
import type { QueueName } from '../../queue/names.ts';

/** Job states that mean "this work is still coming" (a stalled active job is picked up again by BullMQ). */
export const PENDING_STATES: JobType[] = ['active', 'wait', 'delayed', 'prioritized', 'waiting-children'];

/** The jobs of a queue that are still to run or running. */
export async function pendingJobs(producer: JobProducer, name: QueueName): Promise<Job[]> {
  const jobs = await producer.queue(name).getJobs(PENDING_STATES);
  return (jobs as Array<Job | undefined>).filter((job): job is Job => job !== undefined);
}

/** What the queues still hold, by what it is for: comics awaiting a script, page assemblies. */
export interface PendingWork {
  scripts: Set<string>;
  /** `${comicId}/${pageNumber}` */
  assemblies: Set<string>;
}

export const pageKey = (comicId: string, pageNumber: number) => `${comicId}/${pageNumber}`;

export async function pendingWork(producer: JobProducer): Promise<PendingWork> {
  const [scripts, assemblies] = await Promise.all([
    pendingJobs(producer, 'script'),
    pendingJobs(producer, 'assemble-page'),
  ]);
  const field = (job: Job, name: string): unknown =>
    (job.data as Record<string, unknown> | undefined)?.[name];
  return {
    scripts: new Set(scripts.map((j) => String(field(j, 'comicId')))),
    assemblies: new Set(
      assemblies.map((j) => pageKey(String(field(j, 'comicId')), Number(field(j, 'pageNumber')))),
    ),
  };
}

/**
 * Removes a finished (completed or failed) job under a deterministic id, so the same id can be added
 * again: BullMQ ignores an add whose id exists, whatever state that job is in. Pending jobs are kept.
 */
export async function clearFinishedJob(producer: JobProducer, name: QueueName, jobId: string): Promise<void> {
  const queue = producer.queue(name);
  const state = await queue.getJobState(jobId);
  if (state === 'completed' || state === 'failed') await queue.remove(jobId);
}
