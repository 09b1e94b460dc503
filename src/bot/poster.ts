/**
 * The `post` worker: turns PostJobs into Discord messages with the bot's own token (channel messages,
 * never the interaction token), so a comic that outlives the 15-minute interaction still finishes.
 *
 * Idempotent by the database: each message id is written right after its post, and a job that finds
 * an id edits that message instead of posting again. Jobs of one comic run one at a time (KeyedLock).
 * The status message is edited at most once per `statusIntervalMs`; updates in between are coalesced
 * into one delayed job, so the last state always lands, even across a restart.
 */
import type { AttachmentPayload, GuildTextBasedChannel, MessageEditOptions } from 'discord.js';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { getComic } from '../db/comics.ts';
import type { Comic } from '../db/schema.ts';
import {
  createWorker,
  isEvaluationPostJob,
  isTrainingPostJob,
  type JobPayload,
  type PostJob,
} from '../queue/index.ts';
import { artifactKeys } from '../store/keys.ts';
import { castButtonRows } from './cast-buttons.ts';
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
  addStoryboardMessageId,
  findPage,
  findPanel,
  findRender,
  setPageMessageId,
  setPanelMessageId,
  setStatusMessageId,
} from './messages-db.ts';
import { readProgress, statusText } from './status-message.ts';
import { TrainingPoster } from './training-poster.ts';
import { EvaluationPoster } from './vote-poster.ts';
import { REQUEST_LIMIT_BYTES } from './upload-limits.ts';

export const REROLL_EMOJI = '🔁';
/** At most one status edit per comic in this window (Discord's per-channel limits are ~5 per 5 s). */
export const DEFAULT_STATUS_INTERVAL_MS = 4_000;
/** Discord allows 10 attachments per message. */
const MAX_FILES_PER_MESSAGE = 10;

export interface PosterOptions {
  statusIntervalMs?: number;
  concurrency?: number;
}

export interface Poster {
  close(): Promise<void>;
}

type PostKind<K extends PostJob['kind']> = Extract<PostJob, { kind: K }>;

export function startPoster(deps: BotDeps, options: PosterOptions = {}): Poster {
  const poster = new PostHandler(deps, options.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS);
  const worker = createWorker('post', (payload, job) => poster.handle(payload, job), {
    connection: deps.queueConnection,
    logger: deps.logger,
    concurrency: options.concurrency ?? 4,
  });
  return { close: () => worker.close() };
}

class PostHandler {
  private readonly lock = new KeyedLock();
  private readonly statusEdits: EditThrottle;
  private readonly logger: Logger;
  /** Training status messages and loss charts (src/bot/training-poster.ts). */
  private readonly trainings: TrainingPoster;
  /** Evaluation grids and the style vote (src/bot/vote-poster.ts). */
  private readonly evaluations: EvaluationPoster;

  constructor(
    private readonly deps: BotDeps,
    statusIntervalMs: number,
  ) {
    this.logger = deps.logger.child({ component: 'poster' });
    this.statusEdits = new EditThrottle(statusIntervalMs);
    this.trainings = new TrainingPoster(deps, statusIntervalMs);
    this.evaluations = new EvaluationPoster(deps);
  }

  async handle(payload: PostJob, job: Job<JobPayload<'post'>>): Promise<void> {
    if (isEvaluationPostJob(payload)) return this.evaluations.handle(payload);
    if (isTrainingPostJob(payload)) return this.trainings.handle(payload, job);
    await this.lock.run(payload.comicId, async () => {
      const comic = await getComic(this.deps.db, payload.comicId);
      if (!comic?.channelId) {
        this.logger.warn(
          { jobId: job.id, comicId: payload.comicId },
          'post job for a comic without a channel; skipped',
        );
        return;
      }
      const channel = await this.channelOf(comic.channelId);
      try {
        switch (payload.kind) {
          case 'storyboard':
            return await this.postStoryboard(comic, channel);
          case 'panel':
            return await this.postPanel(comic, channel, payload);
          case 'page':
            return await this.postPage(comic, channel, payload);
          case 'status':
            return await this.postStatus(comic, channel, job);
          case 'failed':
            return await this.postFailure(comic, channel, payload);
        }
      } catch (error) {
        throw discordError(error, `posting ${payload.kind} of comic ${comic.id}`);
      }
    });
  }

  private channelOf(channelId: string): Promise<GuildTextBasedChannel> {
    return fetchGuildTextChannel(this.deps.client, channelId, {
      goneMessage: 'The comic channel is gone or is not a text channel.',
      refusal: discordError,
    });
  }

  private uploadLimit(channel: GuildTextBasedChannel): number {
    return this.deps.uploadLimits.forGuild(channel.guild);
  }

  /** The artifact as an attachment that fits the channel's upload limit (re-encoded when too big). */
  private attachment(key: string, name: string, limit: number): Promise<AttachmentPayload> {
    return artifactAttachment(this.deps.store, key, name, limit, { logger: this.logger });
  }

  // ---------- storyboard ----------

  private async postStoryboard(comic: Comic, channel: GuildTextBasedChannel): Promise<void> {
    if (comic.status === 'cancelled') return;
    const pageCount = comic.script?.pages.length ?? 0;
    const already = comic.storyboardMessageIds.length;
    const limit = this.uploadLimit(channel);
    const files: AttachmentPayload[] = [];
    for (let page = 1; page <= pageCount; page++) {
      const key = artifactKeys.storyboardPage(comic.id, page);
      if (!(await this.deps.store.exists(key))) continue;
      files.push(await this.attachment(key, `storyboard-page-${page}`, limit));
    }
    // Group the pages into messages within Discord's 10 files and 25 MiB per request.
    const groups: AttachmentPayload[][] = [];
    let bytes = 0;
    for (const file of files) {
      const size = (file.attachment as Buffer).length;
      const last = groups.at(-1);
      if (!last || last.length >= MAX_FILES_PER_MESSAGE || bytes + size > REQUEST_LIMIT_BYTES - 1024 * 1024) {
        groups.push([file]);
        bytes = size;
      } else {
        last.push(file);
        bytes += size;
      }
    }
    const title = comic.script?.title ?? 'Your comic';
    // Messages posted before a crash are not posted again: continue after the last one recorded.
    for (let i = already; i < groups.length; i++) {
      const content =
        i === 0
          ? `📖 **${title}** — the storyboard, while the panels are being drawn.`
          : `📖 **${title}** — storyboard, continued.`;
      // The first message carries the "Save to cast" buttons for the characters the script invented.
      const components = i === 0 ? await castButtonRows(this.deps.db, comic) : [];
      const message = await channel.send({ content, files: groups[i]!, components });
      await addStoryboardMessageId(this.deps.db, comic.id, message.id);
    }
  }

  // ---------- panels and pages ----------

  private async postPanel(
    comic: Comic,
    channel: GuildTextBasedChannel,
    payload: PostKind<'panel'>,
  ): Promise<void> {
    if (comic.status === 'cancelled') return;
    const panel = await findPanel(this.deps.db, comic.id, payload.pageNumber, payload.panelNumber);
    if (!panel)
      throw new Error(`panel ${payload.pageNumber}.${payload.panelNumber} of comic ${comic.id} not found`);
    // The current render is the truth: a late job for an older render shows the newest image.
    const render = await findRender(this.deps.db, panel.currentRenderId ?? payload.renderId);
    if (!render?.artifactKey) throw new Error(`render ${payload.renderId} has no image yet`);
    const file = await this.attachment(
      render.artifactKey,
      `page-${payload.pageNumber}-panel-${payload.panelNumber}`,
      this.uploadLimit(channel),
    );
    const content = `Page ${payload.pageNumber} · panel ${payload.panelNumber}${render.attempt > 0 ? ` (take ${render.attempt + 1})` : ''} — react ${REROLL_EMOJI} to draw it again.`;
    const messageId = await this.postOrEdit(
      channel,
      panel.discordMessageId,
      { content, files: [file] },
      (id) => setPanelMessageId(this.deps.db, panel.id, id),
    );
    // A PUT, idempotent on Discord's side: after an edit it restores a reaction lost to a crash
    // between posting and reacting, or removed by a moderator.
    await channel.messages.react(messageId, REROLL_EMOJI);
  }

  private async postPage(
    comic: Comic,
    channel: GuildTextBasedChannel,
    payload: PostKind<'page'>,
  ): Promise<void> {
    if (comic.status === 'cancelled') return;
    const page = await findPage(this.deps.db, comic.id, payload.pageNumber);
    if (!page?.artifactKey)
      throw new Error(`page ${payload.pageNumber} of comic ${comic.id} is not assembled yet`);
    const file = await this.attachment(
      page.artifactKey,
      `page-${payload.pageNumber}`,
      this.uploadLimit(channel),
    );
    const total = comic.script?.pages.length ?? comic.options.pages;
    const content = `📄 **${comic.script?.title ?? 'Comic'}** — page ${payload.pageNumber} of ${total}`;
    await this.postOrEdit(channel, page.discordMessageId, { content, files: [file] }, (id) =>
      setPageMessageId(this.deps.db, page.id, id),
    );
  }

  /**
   * Edits the message when there is one, else posts and records the id at once. A message deleted by
   * someone (10008 Unknown Message) is posted again. Returns the message id.
   */
  private async postOrEdit(
    channel: GuildTextBasedChannel,
    existingId: string | null,
    message: { content: string; files: AttachmentPayload[] },
    record: (id: string) => Promise<void>,
  ): Promise<string> {
    if (existingId) {
      try {
        // `attachments: []` drops the old image; the new file is the only one left.
        const edit: MessageEditOptions = { content: message.content, files: message.files, attachments: [] };
        await channel.messages.edit(existingId, edit);
        return existingId;
      } catch (error) {
        if (!isUnknownMessage(error)) throw error;
        this.logger.info({ messageId: existingId }, 'message was deleted; posting it again');
      }
    }
    const posted = await channel.send({ content: message.content, files: message.files });
    await record(posted.id);
    return posted.id;
  }

  // ---------- status ----------

  private async postStatus(
    comic: Comic,
    channel: GuildTextBasedChannel,
    job: Job<JobPayload<'post'>>,
  ): Promise<void> {
    const deferral = this.statusEdits.deferral(comic.id, {
      hasMessage: Boolean(comic.statusMessageId),
      coalesced: (job.opts.delay ?? 0) > 0,
    });
    if (deferral) {
      // Too soon: one delayed job per window carries every update that arrives in it.
      await this.deps.producer.enqueue(
        'post',
        { kind: 'status', comicId: comic.id },
        { jobId: `status-${comic.id}-${deferral.due}`, delay: deferral.delay },
      );
      return;
    }
    await this.writeStatus(comic, channel);
  }

  private async writeStatus(comic: Comic, channel: GuildTextBasedChannel, note?: string): Promise<void> {
    const progress = await readProgress(this.deps.db, comic, this.deps.producer.queue('render'));
    let content = statusText(comic, progress);
    if (note) content += `\n${note}`;
    const files: AttachmentPayload[] = [];
    const inFlight = comic.status !== 'done' && comic.status !== 'failed' && comic.status !== 'cancelled';
    if (inFlight && progress.runningRenderId) {
      const key = artifactKeys.preview(progress.runningRenderId);
      if (await this.deps.store.exists(key))
        files.push(await this.attachment(key, 'preview', this.uploadLimit(channel)));
    }
    this.statusEdits.edited(comic.id);
    await this.postOrEdit(channel, comic.statusMessageId, { content, files }, (id) =>
      setStatusMessageId(this.deps.db, comic.id, id),
    );
    if (!inFlight) this.statusEdits.forget(comic.id);
  }

  private async postFailure(
    comic: Comic,
    channel: GuildTextBasedChannel,
    payload: PostKind<'failed'>,
  ): Promise<void> {
    await channel.send({
      content: `<@${comic.userId}> your comic \`${comic.id}\` could not be finished: ${payload.userMessage}`,
      allowedMentions: { users: [comic.userId] },
    });
    await this.writeStatus(comic, channel, `Reason: ${payload.userMessage}`);
  }
}

/**
 * Discord refusing for good (403 missing permissions, 404 unknown channel) is not retried; anything
 * else (5xx, network) is, by the job's attempts. 429s never get here: discord.js REST waits them out.
 */
function discordError(error: unknown, what: string): unknown {
  return discordRefusal(
    error,
    {
      forbidden: "I lost the permission to post in this channel, so I can't deliver the comic here.",
      refused: 'Discord refused to deliver part of the comic.',
    },
    what,
  );
}
