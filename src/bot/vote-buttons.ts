/**
 * Vote buttons: a click is a vote. The custom id names the training and the checkpoint, so buttons
 * posted before a restart keep working. The member gets an ephemeral answer (recorded, changed, or
 * already so), and the vote message is edited with the live tally.
 */
import { and, eq } from 'drizzle-orm';
import { MessageFlags, type ButtonInteraction } from 'discord.js';
import { z } from 'zod';
import { votes } from '../db/schema.ts';
import { castVote } from '../db/votes.ts';
import { ComicMasterError, userMessageOf } from '../errors.ts';
import { voteView } from '../evaluation/vote.ts';
import type { BotDeps } from './deps.ts';
import { refreshVoteMessage, VOTE_BUTTON_PREFIX } from './vote-poster.ts';

const VoteButtonId = z
  .string()
  .transform((id) => id.split(':'))
  .pipe(z.tuple([z.literal(VOTE_BUTTON_PREFIX), z.uuid(), z.uuid()]));

export function isVoteButton(customId: string): boolean {
  return customId.startsWith(`${VOTE_BUTTON_PREFIX}:`);
}

export async function handleVoteButton(interaction: ButtonInteraction, deps: BotDeps): Promise<void> {
  const logger = deps.logger.child({ component: 'vote-buttons', interactionId: interaction.id });
  try {
    const parsed = VoteButtonId.safeParse(interaction.customId);
    if (!parsed.success) throw new ComicMasterError('bad_input', 'That button is not one of mine any more.');
    const [, trainingId, checkpointId] = parsed.data;
    const memberId = interaction.user.id;
    const [before] = await deps.db
      .select({ checkpointId: votes.checkpointId })
      .from(votes)
      .where(and(eq(votes.trainingId, trainingId), eq(votes.memberId, memberId)));
    await castVote(deps.db, { trainingId, memberId, checkpointId });
    const view = await voteView(deps.db, trainingId);
    const label = view.options.find((o) => o.checkpoint.id === checkpointId)?.label ?? 'that checkpoint';
    const previous = before
      ? view.options.find((o) => o.checkpoint.id === before.checkpointId)?.label
      : undefined;
    const content = !before
      ? `🗳️ Your vote for **${label}** is in. Press another button to change it until the vote closes.`
      : before.checkpointId === checkpointId
        ? `You already voted for **${label}**; nothing changed.`
        : `🔄 Your vote moved from **${previous ?? 'your earlier choice'}** to **${label}**.`;
    await interaction.reply({ content, flags: MessageFlags.Ephemeral });
    if (!before || before.checkpointId !== checkpointId) await refreshVoteMessage(deps, trainingId);
  } catch (error) {
    const expected = error instanceof ComicMasterError;
    logger[expected ? 'info' : 'error']({ err: error, customId: interaction.customId }, 'vote button failed');
    if (!interaction.replied && !interaction.deferred) {
      await interaction
        .reply({ content: `⚠️ ${userMessageOf(error)}`, flags: MessageFlags.Ephemeral })
        .catch(() => undefined);
    }
  }
}
