/**
 * One router, one error path. Every chat-input command and autocomplete goes to its handler in
 * src/commands; any failure is logged with the interaction id and answered (ephemerally when nothing
 * was sent yet), and nothing thrown here can take the process down.
 */
import {
  MessageFlags,
  type AutocompleteInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
} from 'discord.js';
import type { Logger } from 'pino';
import type { CommandHandler } from '../commands/handler.ts';
import { ComicMasterError, userMessageOf } from '../errors.ts';
import { handleCastButton, isCastButton } from './cast-buttons.ts';
import type { BotDeps } from './deps.ts';
import { handleVoteButton, isVoteButton } from './vote-buttons.ts';

export type InteractionRouter = (interaction: Interaction) => Promise<void>;

export function createInteractionRouter(
  handlers: readonly CommandHandler[],
  deps: BotDeps,
): InteractionRouter {
  const byName = new Map(handlers.map((h) => [h.name, h]));
  const logger = deps.logger.child({ component: 'router' });

  return async (interaction) => {
    if (interaction.isAutocomplete()) {
      await autocomplete(interaction, byName.get(interaction.commandName), deps, logger);
      return;
    }
    if (interaction.isButton()) {
      // Buttons answer for themselves (ephemerally) and never throw.
      if (isVoteButton(interaction.customId)) await handleVoteButton(interaction, deps);
      else if (isCastButton(interaction.customId)) await handleCastButton(interaction, deps);
      return;
    }
    if (!interaction.isChatInputCommand()) return;
    const handler = byName.get(interaction.commandName);
    const context = {
      interactionId: interaction.id,
      command: commandPath(interaction),
      guildId: interaction.guildId,
      userId: interaction.user.id,
    };
    try {
      if (!handler) throw new ComicMasterError('unknown_command', "I don't know that command any more.");
      deps.uploadLimits.remember(interaction.guildId, interaction.attachmentSizeLimit);
      await handler.execute(interaction, deps);
    } catch (error) {
      // Expected refusals (bad input) are info; anything else is an error the operator should see.
      const expected = error instanceof ComicMasterError && error.code === 'bad_input';
      logger[expected ? 'info' : 'error']({ ...context, err: error }, 'command failed');
      await answerWithError(interaction, userMessageOf(error), logger, context.interactionId);
    }
  };
}

async function autocomplete(
  interaction: AutocompleteInteraction,
  handler: CommandHandler | undefined,
  deps: BotDeps,
  logger: Logger,
): Promise<void> {
  try {
    if (handler?.autocomplete) await handler.autocomplete(interaction, deps);
    else await interaction.respond([]);
  } catch (error) {
    logger.error(
      { interactionId: interaction.id, command: interaction.commandName, err: error },
      'autocomplete failed',
    );
    // An empty list is the only answer autocomplete has for "something went wrong".
    if (!interaction.responded) await interaction.respond([]).catch(() => undefined);
  }
}

/**
 * Ephemeral when nothing was sent yet. After a deferral the reply already exists (and is public when
 * the command deferred publicly), so it is edited to say what went wrong.
 */
async function answerWithError(
  interaction: ChatInputCommandInteraction,
  message: string,
  logger: Logger,
  interactionId: string,
): Promise<void> {
  try {
    if (interaction.deferred || interaction.replied) {
      await interaction.editReply({ content: `⚠️ ${message}`, files: [], attachments: [] });
    } else {
      await interaction.reply({ content: `⚠️ ${message}`, flags: MessageFlags.Ephemeral });
    }
  } catch (error) {
    // The token may have expired or the interaction vanished; the log line is all that is left.
    logger.warn({ interactionId, err: error }, 'could not tell the user about the failure');
  }
}

function commandPath(interaction: ChatInputCommandInteraction): string {
  const group = interaction.options.getSubcommandGroup(false);
  const sub = interaction.options.getSubcommand(false);
  return ['/' + interaction.commandName, group, sub].filter(Boolean).join(' ');
}
