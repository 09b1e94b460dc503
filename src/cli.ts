import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig } from './config/env.ts';
import { ComicMasterError, InputError } from './errors.ts';
import { MODEL_FAMILIES } from './comic/recipe.ts';

/** Thrown by commands that are part of the interface but not built yet: they say so and exit non-zero. */
class NotBuiltYet extends Error {}

function notBuilt(name: string): never {
  throw new NotBuiltYet(`\`comicmaster ${name}\` is not built yet in this version.`);
}

function integer(name: string) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be a whole number.`);
    return Number(value);
  };
}

/** Reads a file argument, or stdin when it is `-`. */
async function readInput(path: string): Promise<string> {
  if (path !== '-') return readFile(path, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
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
    .action(async () => {
      const config = loadConfig();
      const { openDatabase } = await import('./db/client.ts');
      const { runMigrations } = await import('./db/migrate.ts');
      const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.dataDir });
      try {
        const { applied } = await runMigrations(database);
        const where = database.kind === 'pglite' ? `embedded PGlite in ${config.dataDir}` : 'PostgreSQL';
        console.log(applied === 0 ? `Database is up to date (${where}).` : `Applied ${applied} migration(s) to ${where}.`);
      } finally {
        await database.close();
      }
    });

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
    .action(async () => {
      const config = loadConfig();
      if (!config.DISCORD_TOKEN) throw new InputError('DISCORD_TOKEN is not set: the bot token is needed to register commands.');
      const { registerCommands } = await import('./bot/register-commands.ts');
      const result = await registerCommands(config);
      console.log(result.summary);
    });

  program
    .command('comic')
    .description('run the whole comic flow locally, without Discord: script, recipes, panels, lettered pages, manifest')
    .argument('<story>', 'the story prompt (quote it)')
    .option('--pages <n>', 'number of pages, 1–8 (default: the writer decides)', integer('--pages'))
    .option('--panels-per-page <n>', 'panels on each page, 1–6', integer('--panels-per-page'))
    .addOption(new Option('--model <family>', 'model family the recipes target').choices(MODEL_FAMILIES).default('illustrious'))
    .option('--style <trigger>', 'a style LoRA by its trigger word (file <trigger>.safetensors in ComfyUI)')
    .option('--rtl', 'right-to-left reading order (manga)', false)
    .option('--out <dir>', 'output folder (default ./comic-out/<title>)')
    .action(async (story: string, opts: { pages?: number; panelsPerPage?: number; model: string; style?: string; rtl: boolean; out?: string }) => {
      const { parseLocalComicOptions, runLocalComic } = await import('./comic/run-comic.ts');
      // Validate before loading anything heavy, so bad input fails fast with a clear message.
      const options = parseLocalComicOptions({ story, ...opts });
      const config = loadConfig();
      const { createPanelRenderer } = await import('./gpu/renderers.ts');
      const renderer = await createPanelRenderer(config);
      try {
        console.log(`Renderer: ${renderer.describe()}`);
        const result = await runLocalComic(options, { config, renderer, onEvent: (m) => console.log(m) });
        console.log('\nPages:');
        for (const file of result.pageFiles) console.log(`  ${file}`);
        console.log(`Manifest: ${result.manifestFile}`);
      } finally {
        await renderer.close();
      }
    });

  program
    .command('workflow')
    .description('print the ComfyUI API graph a render recipe becomes')
    .argument('<recipe>', 'a recipe JSON file (as written by `comicmaster comic` into recipes/), or - for stdin')
    .option('--prefix <prefix>', 'SaveImage filename prefix', 'comicmaster/panel')
    .action(async (path: string, opts: { prefix: string }) => {
      const { RenderRecipe } = await import('./comic/recipe.ts');
      const { buildWorkflow } = await import('./gpu/workflow.ts');
      let json: unknown;
      try {
        json = JSON.parse(await readInput(path));
      } catch (error) {
        throw new InputError(`${path} is not readable JSON: ${(error as Error).message}`);
      }
      const recipe = RenderRecipe.safeParse(json);
      if (!recipe.success) {
        throw new InputError(`${path} is not a render recipe:\n${recipe.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
      }
      console.log(JSON.stringify(buildWorkflow(recipe.data, { filenamePrefix: opts.prefix }), null, 2));
    });

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
