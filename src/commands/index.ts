/**
 * Every slash command, as data. Registration sends exactly this list (bulk overwrite), so a command
 * removed here disappears from Discord on the next `comicmaster register-commands`.
 */
import type { RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import { characterCommand } from './character.ts';
import { comicCommand } from './comic.ts';
import { queueCommand } from './queue.ts';
import { modelsCommand } from './models.ts';
import { runnerCommand } from './runner.ts';
import { trainCommand } from './train.ts';
import { styleCommand } from './style.ts';
import { voteCommand } from './vote.ts';
import { settingsCommand } from './settings.ts';

export {
  comicCommand,
  ComicNewOptions,
  ComicShowOptions,
  ComicCancelOptions,
  StyleAutocompleteQuery,
} from './comic.ts';
export { queueCommand, QueueOptions } from './queue.ts';
export {
  characterCommand,
  CharacterCreateOptions,
  CharacterEditOptions,
  CharacterNameOptions,
} from './character.ts';
export { runnerCommand, RunnerStatusOptions } from './runner.ts';
export { modelsCommand, ModelsOptions } from './models.ts';
export {
  trainCommand,
  TrainStyleOptions,
  TrainStatusOptions,
  TrainCancelOptions,
  TrainRoleOptions,
} from './train.ts';
export { styleCommand, StyleNameOptions } from './style.ts';
export { voteCommand, VoteCloseOptions } from './vote.ts';
export { settingsCommand, SettingsSetOptions, SettingsTestPromptsOptions } from './settings.ts';
export { optionValues, parseOptions, type OptionValues } from './options.ts';

export const commands = [
  comicCommand,
  queueCommand,
  runnerCommand,
  characterCommand,
  trainCommand,
  modelsCommand,
  styleCommand,
  voteCommand,
  settingsCommand,
] as const;

/** The JSON bodies Discord receives on registration. */
export function commandBodies(): RESTPostAPIChatInputApplicationCommandsJSONBody[] {
  return commands.map((command) => command.toJSON());
}
