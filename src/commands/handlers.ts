/** Every command's implementation, by name; the router dispatches to these. */
import { characterHandler } from './character-handler.ts';
import { comicHandler } from './comic-handler.ts';
import type { CommandHandler } from './handler.ts';
import { modelsHandler } from './models-handler.ts';
import { queueHandler } from './queue-handler.ts';
import { runnerHandler } from './runner-handler.ts';
import { settingsHandler } from './settings-handler.ts';
import { styleHandler } from './style-handler.ts';
import { trainHandler } from './train-handler.ts';
import { voteHandler } from './vote-handler.ts';

export const commandHandlers: readonly CommandHandler[] = [
  comicHandler,
  queueHandler,
  runnerHandler,
  characterHandler,
  trainHandler,
  modelsHandler,
  styleHandler,
  voteHandler,
  settingsHandler,
];
