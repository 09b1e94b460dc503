/**
 * A training's one status message: what it is, where it stands (a progress bar, epoch, step, loss,
 * ETA), and the loss history the chart is drawn from. The text is read from the trainings row, which
 * the runner's train worker keeps current (trainings.progress); the bot records each reading it sees
 * into trainings.loss_history, so the chart needs nothing from the runner beyond the progress column.
 */
import { asc, eq, sql } from 'drizzle-orm';
import type { Queue } from 'bullmq';
import type { Db } from '../db/client.ts';
import { TrainingProgress } from '../db/json.ts';
import { checkpoints, trainings, type Training } from '../db/schema.ts';
import type { JobPayload } from '../queue/index.ts';
import type { LossPoint } from '../training/chart.ts';
import { formatEta, progressBar } from './status-message.ts';

/** The loss history is thinned to about this many points (a chart cannot show more anyway). */
export const MAX_LOSS_POINTS = 1_000;

export interface TrainingCheckpointMark {
  epoch: number;
  step: number;
}

export interface TrainingView {
  training: Training;
  progress: TrainingProgress | null;
  checkpoints: TrainingCheckpointMark[];
  /** 1-based place in the train queue while it waits; null when not waiting (or unknown). */
  queuePosition: number | null;
}

export async function readTrainingView(
  db: Db,
  training: Training,
  trainQueue: Queue<JobPayload<'train'>> | undefined,
): Promise<TrainingView> {
  const parsed = training.progress ? TrainingProgress.safeParse(training.progress) : null;
  const rows = await db
    .select({ epoch: checkpoints.epoch, step: checkpoints.step })
    .from(checkpoints)
    .where(eq(checkpoints.trainingId, training.id))
    .orderBy(asc(checkpoints.epoch));
  const waiting = training.status === 'queued' || training.status === 'preparing';
  return {
    training,
    progress: parsed?.success ? parsed.data : null,
    checkpoints: rows,
    queuePosition: waiting && trainQueue ? await trainQueuePosition(trainQueue, training.id) : null,
  };
}

async function trainQueuePosition(
  queue: Queue<JobPayload<'train'>>,
  trainingId: string,
): Promise<number | null> {
  const jobs = await queue.getJobs(['prioritized', 'waiting'], 0, 199, true);
  const index = jobs.findIndex((job) => job?.data?.trainingId === trainingId);
  return index < 0 ? null : index + 1;
}

/**
 * Appends the row's current progress reading to its loss history when it is newer than the last
 * point (steps only grow; a resumed training that repeats steps is not drawn twice). One statement,
 * so two writers never interleave. Returns the history as stored.
 */
export async function recordLossPoint(db: Db, trainingId: string, point: LossPoint): Promise<LossPoint[]> {
  const [row] = await db
    .update(trainings)
    .set({
      lossHistory: sql`${trainings.lossHistory} || ${JSON.stringify([point])}::jsonb`,
    })
    .where(
      sql`${trainings.id} = ${trainingId} and (jsonb_array_length(${trainings.lossHistory}) = 0 or (${trainings.lossHistory} -> -1 ->> 'step')::int < ${point.step})`,
    )
    .returning({ lossHistory: trainings.lossHistory });
  if (!row) {
    const [current] = await db
      .select({ lossHistory: trainings.lossHistory })
      .from(trainings)
      .where(eq(trainings.id, trainingId));
    return current?.lossHistory ?? [];
  }
  if (row.lossHistory.length > MAX_LOSS_POINTS) {
    // Keep every other point (and always the newest) so the column stays small over a long run.
    const thinned = row.lossHistory.filter((_, i, all) => i % 2 === 0 || i === all.length - 1);
    await db.update(trainings).set({ lossHistory: thinned }).where(eq(trainings.id, trainingId));
    return thinned;
  }
  return row.lossHistory;
}

/** The reading of a progress report as a chart point, when it has a usable loss. */
export function lossPointOf(progress: TrainingProgress | null): LossPoint | null {
  if (!progress || progress.loss === null || !Number.isFinite(progress.loss) || progress.step <= 0)
    return null;
  return { step: progress.step, epoch: progress.epoch, loss: progress.loss };
}

const BASE_LABELS: Partial<Record<Training['modelFamily'], string>> = {
  illustrious: 'Illustrious XL',
  noobai: 'NoobAI-XL',
  flux: 'FLUX.1-dev',
};

export function formatLossValue(loss: number): string {
  return loss >= 1 ? loss.toFixed(3) : loss.toPrecision(3);
}

/** What a training makes, for people: "🎨 Style **Noir**" or "🧑‍🎨 Character LoRA for **Mira**". */
export function trainingTitle(training: Pick<Training, 'kind' | 'name'>): string {
  return training.kind === 'character'
    ? `🧑‍🎨 Character LoRA for **${training.name}**`
    : `🎨 Style **${training.name}**`;
}

/** The same in running text: "the style **Noir**" or "the character LoRA for **Mira**". */
export function trainingSubject(training: Pick<Training, 'kind' | 'name'>): string {
  return training.kind === 'character'
    ? `the character LoRA for **${training.name}**`
    : `the style **${training.name}**`;
}

/** The status message's text for a training in any state. */
export function trainingStatusText(view: TrainingView, note?: string): string {
  const { training, progress } = view;
  const head = `${trainingTitle(training)} · training \`${training.id}\` · ${BASE_LABELS[training.modelFamily] ?? training.modelFamily} · trigger \`${training.trigger}\``;
  const lines = [head];
  switch (training.status) {
    case 'preparing':
    case 'queued': {
      const where =
        view.queuePosition === null ? '' : ` (position ${view.queuePosition} in the training queue)`;
      lines.push(
        `⏳ Waiting for the GPU${where}. Training holds the GPU for a while; renders wait meanwhile.`,
      );
      break;
    }
    case 'training': {
      if (!progress || progress.totalSteps === 0) {
        lines.push('🏋️ Training is starting (caching latents, loading the base model)…');
        break;
      }
      lines.push(`🏋️ Training… ${progressBar(progress.step, progress.totalSteps)}`);
      const facts = [
        `epoch ${progress.epoch}/${progress.totalEpochs}`,
        `step ${progress.step}/${progress.totalSteps}`,
      ];
      if (progress.loss !== null) facts.push(`loss ${formatLossValue(progress.loss)}`);
      if (progress.etaSeconds !== null) facts.push(`ETA ~${formatEta(Math.round(progress.etaSeconds))}`);
      lines.push(facts.join(' · '));
      // What the runner wants people to know (e.g. how small images were upscaled).
      for (const note of progress.notes ?? []) lines.push(`ℹ️ ${note}`);
      break;
    }
    case 'evaluating':
      lines.push('🧪 Training finished; drawing the evaluation grids of every checkpoint…');
      break;
    case 'voting':
      lines.push('🗳️ Training finished; vote for the best checkpoint on the grids.');
      break;
    case 'done':
      lines.push('✅ Done.');
      break;
    case 'failed':
      lines.push('❌ This training failed.');
      break;
    case 'cancelled':
      lines.push('🛑 Cancelled.');
      break;
  }
  if (view.checkpoints.length > 0) {
    const epochs = view.checkpoints.map((c) => c.epoch).join(', ');
    lines.push(`💾 Checkpoints saved: ${view.checkpoints.length} (epoch ${epochs})`);
  }
  const samples = progress?.samples ?? [];
  if (samples.length > 0) {
    const step = Math.max(...samples.map((s) => s.step));
    lines.push(
      `🖼️ Sample images from step ${step} attached (the trainer draws the same scenes at each checkpoint).`,
    );
  }
  if (note) lines.push(note);
  return lines.join('\n');
}

/** Whether the training can still change (its status message will be edited again). */
export function trainingInFlight(status: Training['status']): boolean {
  return status === 'preparing' || status === 'queued' || status === 'training';
}
