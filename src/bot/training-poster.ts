/**
 * The `post` jobs about trainings (`training-status`, `training-failed`), dispatched here by the
 * poster. One status message per training, edited in place and throttled like a comic's: at most one
 * edit per window, the updates in between coalesced into one delayed job so the last state lands.
 * Every job first records the current loss reading into the history, throttled or not, so the chart
 * keeps its detail. When a new checkpoint has been saved since the chart was last drawn, a fresh loss
 * chart (PNG) replaces the message's attachment; other edits change the text and keep the chart.
 * The trainer's newest sample images (named in the progress by the runner) ride along with the chart:
 * when newer ones have arrived than the message shows (trainings.sample_step), the attachments are
 * replaced by the chart and those samples — still at most one edit per window, at most 10 files.
 *
 * Idempotent by the database, like the comic poster: the status message id is stored right after the
 * first post; a message deleted by someone is posted again (with the chart).
 */
import type { AttachmentPayload, GuildTextBasedChannel, MessageEditOptions } from 'discord.js';
import type { Job } from 'bullmq';
import { eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import { TrainingProgress } from '../db/json.ts';
import { trainings, type Training } from '../db/schema.ts';
import type { JobPayload, TrainingPostJob } from '../queue/index.ts';
import { renderLossChart } from '../training/chart.ts';
import { MAX_SAMPLES_SHOWN } from '../training/samples.ts';
import type { BotDeps } from './deps.ts';
import {
  artifactAttachment,
  discordRefusal,
  EditThrottle,
  fetchGuildTextChannel,
  isUnknownMessage,
} from './discord-posting.ts';
import { KeyedLock } from './keyed-lock.ts';
import {
  lossPointOf,
  readTrainingView,
  recordLossPoint,
  trainingInFlight,
  trainingStatusText,
  trainingSubject,
  type TrainingView,
} from './training-status.ts';

export const LOSS_CHART_SIZE = { width: 960, height: 480 } as const;

export class TrainingPoster {
  private readonly lock = new KeyedLock();
  private readonly statusEdits: EditThrottle;
  private readonly logger: Logger;

  constructor(
    private readonly deps: BotDeps,
    statusIntervalMs: number,
  ) {
    this.logger = deps.logger.child({ component: 'training-poster' });
    this.statusEdits = new EditThrottle(statusIntervalMs);
  }

  async handle(payload: TrainingPostJob, job: Job<JobPayload<'post'>>): Promise<void> {
    await this.lock.run(`training:${payload.trainingId}`, async () => {
      const training = await this.training(payload.trainingId);
      if (!training) {
        this.logger.warn(
          { jobId: job.id, trainingId: payload.trainingId },
          'post job for a training that does not exist; skipped',
        );
        return;
      }
      if (payload.kind === 'training-status') await this.recordLoss(training);
      const channel = await this.channelOf(training.channelId);
      try {
        if (payload.kind === 'training-failed')
          return await this.postFailure(training, channel, payload.userMessage);
        return await this.postStatus(training, channel, job);
      } catch (error) {
        throw discordError(error, `posting ${payload.kind} of training ${training.id}`);
      }
    });
  }

  private async training(id: string): Promise<Training | undefined> {
    const [row] = await this.deps.db.select().from(trainings).where(eq(trainings.id, id));
    return row;
  }

  private async recordLoss(training: Training): Promise<void> {
    const progress = training.progress ? TrainingProgress.safeParse(training.progress) : null;
    const point = lossPointOf(progress?.success ? progress.data : null);
    if (point) training.lossHistory = await recordLossPoint(this.deps.db, training.id, point);
  }

  private channelOf(channelId: string): Promise<GuildTextBasedChannel> {
    return fetchGuildTextChannel(this.deps.client, channelId, {
      goneMessage: 'The training channel is gone or is not a text channel.',
      refusal: discordError,
    });
  }

  private async postStatus(
    training: Training,
    channel: GuildTextBasedChannel,
    job: Job<JobPayload<'post'>>,
  ): Promise<void> {
    const deferral = this.statusEdits.deferral(training.id, {
      hasMessage: Boolean(training.statusMessageId),
      coalesced: (job.opts.delay ?? 0) > 0,
    });
    if (deferral) {
      await this.deps.producer.enqueue(
        'post',
        { kind: 'training-status', trainingId: training.id },
        { jobId: `training-status-${training.id}-${deferral.due}`, delay: deferral.delay },
      );
      return;
    }
    await this.writeStatus(training, channel);
  }

  private async postFailure(
    training: Training,
    channel: GuildTextBasedChannel,
    userMessage: string,
  ): Promise<void> {
    await channel.send({
      content: `<@${training.userId}> the training of ${trainingSubject(training)} (\`${training.id}\`) failed: ${userMessage}`,
      allowedMentions: { users: [training.userId] },
    });
    await this.writeStatus(training, channel, `Reason: ${userMessage}`);
  }

  private async writeStatus(
    training: Training,
    channel: GuildTextBasedChannel,
    note?: string,
  ): Promise<void> {
    const view = await readTrainingView(this.deps.db, training, this.deps.producer.queue('train'));
    const content = trainingStatusText(view, note);
    const samples = view.progress?.samples ?? [];
    const sampleStep = samples.length > 0 ? Math.max(...samples.map((s) => s.step)) : -1;
    const chartDue = view.checkpoints.length > training.chartCheckpoints;
    const samplesDue = sampleStep > training.sampleStep;
    this.statusEdits.edited(training.id);

    if (training.statusMessageId) {
      try {
        // Without `attachments`, an edit keeps the chart (and samples) already on the message.
        const edit: MessageEditOptions =
          chartDue || samplesDue
            ? { content, files: await this.attachments(view, channel), attachments: [] }
            : { content };
        await channel.messages.edit(training.statusMessageId, edit);
        if (chartDue || samplesDue)
          await this.setAttached(
            training.id,
            view.checkpoints.length,
            Math.max(sampleStep, training.sampleStep),
          );
        this.forgetWhenSettled(training);
        return;
      } catch (error) {
        if (!isUnknownMessage(error)) throw error;
        this.logger.info(
          { trainingId: training.id, messageId: training.statusMessageId },
          'status message was deleted; posting it again',
        );
      }
    }
    const files = await this.attachments(view, channel);
    const message = await channel.send({ content, files });
    await this.deps.db
      .update(trainings)
      .set({ statusMessageId: message.id, chartCheckpoints: view.checkpoints.length, sampleStep })
      .where(eq(trainings.id, training.id));
    this.forgetWhenSettled(training);
  }

  private forgetWhenSettled(training: Training): void {
    if (!trainingInFlight(training.status)) this.statusEdits.forget(training.id);
  }

  private async setAttached(trainingId: string, chartCheckpoints: number, sampleStep: number): Promise<void> {
    await this.deps.db
      .update(trainings)
      .set({ chartCheckpoints, sampleStep })
      .where(eq(trainings.id, trainingId));
  }

  /** Everything the status message carries: the loss chart once a checkpoint exists, then the newest samples. */
  private async attachments(
    view: TrainingView,
    channel: GuildTextBasedChannel,
  ): Promise<AttachmentPayload[]> {
    const samples = (view.progress?.samples ?? []).slice(0, MAX_SAMPLES_SHOWN);
    const files: AttachmentPayload[] = view.checkpoints.length > 0 ? [await this.chart(view)] : [];
    // One request carries them all: each gets its share of the upload limit.
    const limit = Math.floor(
      this.deps.uploadLimits.forGuild(channel.guild) / (files.length + samples.length),
    );
    for (const sample of samples) {
      try {
        files.push(
          await artifactAttachment(
            this.deps.store,
            sample.key,
            `sample-step${sample.step}-${sample.index + 1}`,
            limit,
            { logger: this.logger },
          ),
        );
      } catch (error) {
        // A sample gone from the store is left out; the status still goes out.
        this.logger.warn({ err: error, key: sample.key }, 'sample image could not be attached');
      }
    }
    return files;
  }

  private async chart(view: TrainingView): Promise<AttachmentPayload> {
    const png = await renderLossChart({
      points: view.training.lossHistory,
      checkpoints: view.checkpoints,
      ...(view.progress?.totalSteps ? { totalSteps: view.progress.totalSteps } : {}),
      title: `${view.training.name} · loss`,
      ...LOSS_CHART_SIZE,
    });
    return {
      attachment: png,
      name: `loss-${view.training.id.slice(0, 8)}-e${view.checkpoints.at(-1)?.epoch ?? 0}.png`,
    };
  }
}

/** Discord refusing for good (403, 404) is not retried; anything else is, by the job's attempts. */
function discordError(error: unknown, what: string): unknown {
  return discordRefusal(
    error,
    {
      forbidden:
        "I lost the permission to post in this channel, so I can't show the training's progress here.",
      refused: 'Discord refused a training status update.',
    },
    what,
  );
}
