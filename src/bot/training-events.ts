/**
 * Following trainings from the `train` queue's events, so the runner needs to know nothing about
 * Discord: each progress report of a train job (the runner's job.updateProgress, {trainingId, step,
 * epoch, loss, …}) is recorded into the training's loss history and becomes a `training-status` post
 * (which the poster throttles); a job that completes refreshes the status; a job that fails with the
 * row marked failed becomes one `training-failed` post carrying the row's explained error.
 *
 * Events are a live feed: one missed while the bot was down is not replayed, but the next one shows
 * the current state, since the poster always reads the row.
 */
import { eq } from 'drizzle-orm';
import type { QueueEvents } from 'bullmq';
import { z } from 'zod';
import { TrainingProgress } from '../db/json.ts';
import { trainings } from '../db/schema.ts';
import { createQueueEvents } from '../queue/index.ts';
import type { BotDeps } from './deps.ts';
import { lossPointOf, recordLossPoint } from './training-status.ts';

const TrainJobProgress = TrainingProgress.extend({ trainingId: z.string().min(1).max(64) });

/** The id of the one failure post per training (a repeated failed event does not ping twice). */
export function trainingFailedPostId(trainingId: string): string {
  return `training-failed-${trainingId}`;
}

export interface TrainingEvents {
  close(): Promise<void>;
}

export async function startTrainingEvents(deps: BotDeps): Promise<TrainingEvents> {
  const logger = deps.logger.child({ component: 'training-events' });
  const events: QueueEvents = createQueueEvents('train', deps.queueConnection, { logger });
  const trainQueue = deps.producer.queue('train');

  const trainingIdOfJob = async (jobId: string): Promise<string | undefined> => {
    const job = await trainQueue.getJob(jobId);
    const id = (job?.data as { trainingId?: unknown } | undefined)?.trainingId;
    return typeof id === 'string' ? id : undefined;
  };
  const safely = (what: string, work: () => Promise<void>) =>
    void work().catch((err: unknown) => logger.warn({ err }, `following a train job's ${what} failed`));

  events.on('progress', ({ data }) =>
    safely('progress', async () => {
      const parsed = TrainJobProgress.safeParse(data);
      if (!parsed.success) return;
      const { trainingId, ...progress } = parsed.data;
      const point = lossPointOf(progress);
      if (point) await recordLossPoint(deps.db, trainingId, point);
      await deps.producer.enqueue('post', { kind: 'training-status', trainingId });
    }),
  );
  events.on('completed', ({ jobId }) =>
    safely('completion', async () => {
      const trainingId = await trainingIdOfJob(jobId);
      if (trainingId) await deps.producer.enqueue('post', { kind: 'training-status', trainingId });
    }),
  );
  events.on('failed', ({ jobId }) =>
    safely('failure', async () => {
      const trainingId = await trainingIdOfJob(jobId);
      if (!trainingId) return;
      const [row] = await deps.db
        .select({ status: trainings.status, error: trainings.error })
        .from(trainings)
        .where(eq(trainings.id, trainingId));
      if (row?.status === 'failed' && row.error) {
        await deps.producer.enqueue(
          'post',
          { kind: 'training-failed', trainingId, userMessage: row.error.slice(0, 1_800) },
          { jobId: trainingFailedPostId(trainingId) },
        );
      } else {
        await deps.producer.enqueue('post', { kind: 'training-status', trainingId });
      }
    }),
  );
  await events.waitUntilReady();
  return { close: () => events.close() };
}
