/**
 * 🔁 on a panel message re-rolls that panel. The bot's own reaction (the one it adds to every panel)
 * and other bots are ignored. Reactions on messages from before a restart arrive as partials; the
 * message id and emoji are all we need, so nothing is fetched. Duplicate and rapid reactions are
 * no-ops: the database lets exactly one pending reroll per panel through (rerollPanel).
 */
import type { MessageReaction, PartialMessageReaction, PartialUser, User } from 'discord.js';
import { rerollPanel } from '../comic/flow/index.ts';
import type { BotDeps } from './deps.ts';
import { REROLL_EMOJI } from './poster.ts';

export async function handleReactionAdd(
  reaction: MessageReaction | PartialMessageReaction,
  user: User | PartialUser,
  deps: BotDeps,
): Promise<void> {
  if (user.id === deps.client.user.id || user.bot) return;
  if (reaction.emoji.name !== REROLL_EMOJI) return;
  // Comics are made in guild channels only; a DM reaction cannot be on a panel.
  if (!reaction.message.guildId) return;
  const logger = deps.logger.child({
    component: 'reactions',
    messageId: reaction.message.id,
    userId: user.id,
  });
  const result = await rerollPanel(deps, { panelMessageId: reaction.message.id, memberId: user.id });
  if (result.accepted) {
    logger.info(
      { comicId: result.comicId, renderId: result.renderId, attempt: result.attempt },
      'panel re-roll queued',
    );
    // The status message shows the panel being drawn again.
    await deps.producer.enqueue('post', { kind: 'status', comicId: result.comicId });
  } else {
    logger.debug({ reason: result.reason }, 're-roll not queued');
  }
}
