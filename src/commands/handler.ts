/**
 * The shape of a command's implementation: what the router calls for a chat-input command of that
 * name, and for its autocomplete. Handlers receive the bot's dependencies explicitly (no globals).
 */
import type { AutocompleteInteraction, ChatInputCommandInteraction } from 'discord.js';
import type { BotDeps } from '../bot/deps.ts';

export interface CommandHandler {
  /** The top-level command name, as in the definition. */
  name: string;
  execute(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void>;
  autocomplete?(interaction: AutocompleteInteraction, deps: BotDeps): Promise<void>;
}

/** Discord's cap on autocomplete choices. */
export const MAX_AUTOCOMPLETE_CHOICES = 25;
