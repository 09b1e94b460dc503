/**
 * The `post` jobs of a training's evaluation and vote (eval-grid, eval-summary, vote, vote-close),
 * dispatched here by the poster, and the vote message itself (also refreshed by the buttons and by
 * `/vote close`).
 *
 * Idempotent by the database: every posted message's id is recorded on the training
 * (trainings.evaluation_message_ids by part, trainings.vote_message_id) right after it is posted, and a
 * job that finds an id does not post again (the vote message is edited instead). One training's posts
 * run one at a time (a KeyedLock shared by everything in this module), so the tally edit written last
 * is always the newest count.
 */
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  type AttachmentPayload,
  type GuildTextBasedChannel,
} from 'discord.js';
import { eq, sql } from 'drizzle-orm';
import { trainings, type Training } from '../db/schema.ts';
import { closeVote, getTraining, voteView, type CloseResult, type VoteView } from '../evaluation/vote.ts';
import type { EvaluationPostJob } from '../queue/index.ts';
import type { BotDeps } from './deps.ts';
import {
  artifactAttachment,
  discordRefusal,
  fetchGuildTextChannel,
  isUnknownMessage,
} from './discord-posting.ts';
import { KeyedLock } from './keyed-lock.ts';

/** Custom ids carry the training and the checkpoint, so a button works after any restart. */
export const VOTE_BUTTON_PREFIX = 'vote';
export function voteButtonId(trainingId: string, checkpointId: string): string {
  return `${VOTE_BUTTON_PREFIX}:${trainingId}:${checkpointId}`;
}

/** Discord: 5 buttons per row, 5 rows per message. */
const BUTTONS_PER_ROW = 5;
const MAX_BUTTONS = 25;

const lock = new KeyedLock();
const lockKey = (trainingId: string) => `vote:${trainingId}`;

export class EvaluationPoster {
  constructor(private readonly deps: BotDeps) {}

  async handle(payload: EvaluationPostJob): Promise<void> {
    const training = await getTraining(this.deps.db, payload.trainingId);
    if (!training) {
      this.deps.logger.warn(
        { trainingId: payload.trainingId, kind: payload.kind },
        'post job for a training that does not exist; skipped',
      );
      return;
    }
    switch (payload.kind) {
      case 'eval-grid':
        return lock.run(lockKey(training.id), () => this.postGrid(training, payload.prompt, payload.parts));
      case 'eval-summary':
        return lock.run(lockKey(training.id), () => this.postSummary(training));
      case 'vote':
        return refreshVoteMessage(this.deps, training.id);
      case 'vote-close':
        return this.closeByTimer(training);
    }
  }

  private async postGrid(training: Training, prompt: number, parts: number): Promise<void> {
    const keys = (await voteView(this.deps.db, training.id)).evaluation?.gridKeys[prompt] ?? [];
    const channel = await channelOf(this.deps, training.channelId);
    const limit = this.deps.uploadLimits.forGuild(channel.guild);
    for (let i = 0; i < Math.min(parts, keys.length); i++) {
      const part = `grid-${prompt}-${i}`;
      if (training.evaluationMessageIds[part]) continue;
      const file = await attachment(
        this.deps,
        keys[i]!,
        `${fileSafe(training.name)}-prompt-${prompt + 1}${parts > 1 ? `-part-${i + 1}` : ''}`,
        limit,
      );
      const content = `🧪 ${subjectTitle(training)} — evaluation grid, test prompt ${prompt + 1}${parts > 1 ? ` (part ${i + 1}/${parts})` : ''}: rows are checkpoints, columns the baseline without the LoRA and the strengths 0.4–1.0.`;
      const message = await send(channel, { content, files: [file] });
      await recordMessage(this.deps, training.id, part, message.id);
    }
  }

  private async postSummary(training: Training): Promise<void> {
    if (training.evaluationMessageIds.summary) return;
    const view = await voteView(this.deps.db, training.id);
    const evaluation = view.evaluation;
    if (!evaluation) return;
    const channel = await channelOf(this.deps, training.channelId);
    const limit = this.deps.uploadLimits.forGuild(channel.guild);
    const files: AttachmentPayload[] = [];
    if (evaluation.overviewKey)
      files.push(
        await attachment(this.deps, evaluation.overviewKey, `${fileSafe(training.name)}-overview`, limit),
      );
    if (evaluation.chartKey)
      files.push(
        await attachment(this.deps, evaluation.chartKey, `${fileSafe(training.name)}-measures`, limit),
      );
    const labelOf = new Map(view.options.map((o) => [o.checkpoint.id, o.label]));
    const lines = view.options.map((o) => {
      const m = evaluation.measures.find((x) => x.checkpointId === o.checkpoint.id);
      if (!m) return `• **${o.label}**`;
      const strength = evaluation.recommendedStrength[o.checkpoint.id];
      const verdict =
        m.verdict === 'good'
          ? `✅ ${training.kind === 'character' ? 'character' : 'style'} present, content still flexible`
          : (m.note ?? m.verdict);
      return `• **${labelOf.get(o.checkpoint.id)}** — ${verdict}${strength !== undefined ? ` (suggested strength ${strength.toFixed(1)})` : ''}`;
    });
    const content = [
      `📊 ${subjectTitle(training)} — evaluation done. Overview and measures (computed from the images: ${training.kind === 'character' ? 'LoRA strength' : 'style strength'} = how far from the baseline, flexibility = how different the prompts stay). They advise; the vote decides.`,
      ...lines,
    ]
      .join('\n')
      .slice(0, 1900);
    const message = await send(channel, { content, files });
    await recordMessage(this.deps, training.id, 'summary', message.id);
  }

  private async closeByTimer(training: Training): Promise<void> {
    if (training.status !== 'voting') return;
    // A deadline moved later (or cleared) since this job was scheduled: not ours to close.
    if (!training.votingClosesAt || training.votingClosesAt.getTime() > Date.now() + 1_000) return;
    const result = await closeVote(this.deps.db, this.deps.store, {
      trainingId: training.id,
      closedBy: 'timer',
    });
    await finishVote(this.deps, result, 'the vote time is over');
  }
}

// ---------- the vote message ----------

function bar(votes: number, total: number): string {
  if (total === 0) return '';
  return ' ' + '█'.repeat(Math.max(votes > 0 ? 1 : 0, Math.round((votes / total) * 12)));
}

export function voteMessageContent(view: VoteView): string {
  const { training } = view;
  const blind = Boolean(view.evaluation?.blindOrder);
  const open = training.status === 'voting';
  const header = open
    ? `🗳️ **Which checkpoint becomes ${training.kind === 'character' ? `the character LoRA for “${training.name}”` : `the style “${training.name}”`}?** Look at the grids above, then press a button. One vote per member; press another to change it.${blind ? ' The labels are shuffled so nobody votes for an epoch.' : ''}`
    : `🗳️ **Vote on ${training.kind === 'character' ? `the character LoRA for “${training.name}”` : `“${training.name}”`} — closed.**`;
  const closes =
    open && training.votingClosesAt
      ? `Closes <t:${Math.floor(training.votingClosesAt.getTime() / 1000)}:R>, or earlier by \`/vote close\` (trainer role or Manage Server).`
      : '';
  const lines = view.options.map((o) => {
    const reveal = !open && blind ? ` (epoch ${o.checkpoint.epoch})` : '';
    return `**${o.label}**${reveal} — ${o.votes} vote${o.votes === 1 ? '' : 's'}${bar(o.votes, view.totalVotes)}`;
  });
  return [header, closes, ...lines, `Total: ${view.totalVotes} vote${view.totalVotes === 1 ? '' : 's'}`]
    .filter(Boolean)
    .join('\n');
}

export function voteButtons(view: VoteView): ActionRowBuilder<ButtonBuilder>[] {
  const open = view.training.status === 'voting';
  const rows: ActionRowBuilder<ButtonBuilder>[] = [];
  view.options.slice(0, MAX_BUTTONS).forEach((o, i) => {
    if (i % BUTTONS_PER_ROW === 0) rows.push(new ActionRowBuilder<ButtonBuilder>());
    rows
      .at(-1)!
      .addComponents(
        new ButtonBuilder()
          .setCustomId(voteButtonId(view.training.id, o.checkpoint.id))
          .setLabel(`${o.label} · ${o.votes}`)
          .setStyle(ButtonStyle.Primary)
          .setDisabled(!open),
      );
  });
  return rows;
}

/** Posts the vote message, or edits it with the current tally. Serialised per training. */
export function refreshVoteMessage(deps: BotDeps, trainingId: string): Promise<void> {
  return lock.run(lockKey(trainingId), async () => {
    const view = await voteView(deps.db, trainingId);
    const { training } = view;
    if (training.status !== 'voting' && training.status !== 'done') return;
    if (!training.voteMessageId && training.status !== 'voting') return;
    const channel = await channelOf(deps, training.channelId);
    const message = { content: voteMessageContent(view), components: voteButtons(view) };
    if (training.voteMessageId) {
      try {
        await channel.messages.edit(training.voteMessageId, message);
        return;
      } catch (error) {
        if (!isUnknownMessage(error)) throw discordError(error);
        deps.logger.info(
          { trainingId, messageId: training.voteMessageId },
          'vote message was deleted; posting it again',
        );
      }
    }
    const posted = await send(channel, message);
    await deps.db.update(trainings).set({ voteMessageId: posted.id }).where(eq(trainings.id, trainingId));
  });
}

const REASONS: Record<CloseResult['reason'], string> = {
  'most-votes': 'most votes',
  'tie-earlier-epoch': 'a tie, which goes to the earlier epoch (less overtrained)',
  'tie-picked': 'a tie, decided by the trainer',
  'no-votes-earliest': 'no votes, so the earliest checkpoint',
};

/** After a close: the vote message shows the result (buttons disabled), and the channel hears the winner once. */
export async function finishVote(deps: BotDeps, result: CloseResult, how: string): Promise<string> {
  await refreshVoteMessage(deps, result.training.id);
  const view = await voteView(deps.db, result.training.id);
  const label =
    view.options.find((o) => o.checkpoint.id === result.winner.id)?.label ?? `epoch ${result.winner.epoch}`;
  const won = `${how}, ${label} (epoch ${result.winner.epoch}) won by ${REASONS[result.reason]}`;
  const text = result.character
    ? `🏆 **${result.character.name}** has a LoRA now: ${won}. Every comic that names ${result.character.name} renders them with it (trigger \`${result.character.loraTrigger}\`, strength ${(result.character.loraStrength ?? 0.6).toFixed(1)}).`
    : result.style
      ? `🏆 **${result.style.name}** is ready: ${won}. It renders at strength ${result.style.defaultStrength.toFixed(1)} — try \`/comic new style:${result.style.name}\`.`
      : `🏆 ${won}.`;
  await lock.run(lockKey(result.training.id), async () => {
    const fresh = await getTraining(deps.db, result.training.id);
    if (!fresh || fresh.evaluationMessageIds.closed) return;
    const channel = await channelOf(deps, fresh.channelId);
    const message = await send(channel, { content: text });
    await recordMessage(deps, fresh.id, 'closed', message.id);
  });
  return text;
}

// ---------- helpers ----------

/** "**Noir**" for a style, "Character LoRA for **Mira**" for a character training. */
function subjectTitle(training: Pick<Training, 'kind' | 'name'>): string {
  return training.kind === 'character' ? `Character LoRA for **${training.name}**` : `**${training.name}**`;
}

async function recordMessage(
  deps: BotDeps,
  trainingId: string,
  part: string,
  messageId: string,
): Promise<void> {
  await deps.db
    .update(trainings)
    .set({
      evaluationMessageIds: sql`${trainings.evaluationMessageIds} || ${JSON.stringify({ [part]: messageId })}::jsonb`,
    })
    .where(eq(trainings.id, trainingId));
}

function channelOf(deps: BotDeps, channelId: string): Promise<GuildTextBasedChannel> {
  return fetchGuildTextChannel(deps.client, channelId, {
    goneMessage: 'The training channel is gone or is not a text channel.',
    refusal: (error) => discordError(error),
  });
}

async function send(channel: GuildTextBasedChannel, message: Parameters<GuildTextBasedChannel['send']>[0]) {
  try {
    return await channel.send(message);
  } catch (error) {
    throw discordError(error);
  }
}

function attachment(deps: BotDeps, key: string, name: string, limit: number): Promise<AttachmentPayload> {
  return artifactAttachment(deps.store, key, name, limit, { prefer: 'jpeg' });
}

/** Discord refusing for good (403, 404) is not retried; anything else is, by the job's attempts. */
function discordError(error: unknown): unknown {
  const message = "I can't post the evaluation in the training's channel.";
  return discordRefusal(error, { forbidden: message, refused: message });
}

/** Attachment names: letters, digits, dash and underscore only (Discord rewrites anything else). */
function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 60) || 'style';
}
