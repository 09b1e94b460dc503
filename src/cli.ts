import { Command, CommanderError } from 'commander';
import { ConfigError } from './config/env.ts';
import { ComicMasterError } from './errors.ts';

/** Thrown by commands that are part of the interface but not built yet: they say so and exit non-zero. */
class NotBuiltYet extends Error {}

function notBuilt(name: string): never {
  throw new NotBuiltYet(`\`comicmaster ${name}\` is not built yet in this version.`);
}

export function buildProgram(): Command {
  const program = new Command()
    .name('comicmaster')
    .description('Make comics together in Discord on one local GPU box.')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('migrate')
    .description('apply database migrations (PostgreSQL, or embedded PGlite when DATABASE_URL is unset)')
    .action(async () => notBuilt('migrate'));

  program
    .command('bot')
    .description('run the Discord bot, with the CPU workers (script writing, page assembly)')
    .action(async () => notBuilt('bot'));

  program
    .command('runner')
    .description('run the GPU runner for one GPU (storyboards when COMFYUI_URL is unset)')
    .action(async () => notBuilt('runner'));

  program
    .command('register-commands')
    .description('register the slash commands (in DISCORD_GUILD_ID when set, else globally)')
    .action(async () => notBuilt('register-commands'));

  program
    .command('comic')
    .description('run the whole comic flow locally, without Discord')
    .argument('<story>', 'the story prompt')
    .action(async () => notBuilt('comic'));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    if (error instanceof NotBuiltYet || error instanceof ConfigError) {
      console.error(error.message);
      process.exitCode = 2;
      return;
    }
    if (error instanceof ComicMasterError) {
      console.error(`error: ${error.userMessage}`);
      process.exitCode = 1;
      return;
    }
    console.error(error);
    process.exitCode = 1;
  }
}
