import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig } from './config/env.ts';
import { ComicMasterError, InputError } from './errors.ts';
import { MODEL_FAMILIES } from './comic/recipe.ts';

/** Thrown by commands that are part of the interface but not built yet: they say so and exit non-zero. */
class NotBuiltYet extends Error {}

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
        console.log(
          applied === 0
            ? `Database is up to date (${where}).`
            : `Applied ${applied} migration(s) to ${where}.`,
        );
      } finally {
        await database.close();
      }
    });

  program
    .command('bot')
    .description('run the Discord bot, with the CPU workers (script writing, page assembly)')
    .action(async () => {
      const config = loadConfig();
      if (!config.DISCORD_TOKEN)
        throw new InputError('DISCORD_TOKEN is not set: the bot needs its token to log in.');
      const { runBot } = await import('./bot/bot.ts');
      const bot = await runBot(config);
      console.error(
        `Bot is online as ${bot.client.user?.tag ?? 'the bot user'}. Ctrl-C (SIGTERM) stops it gracefully.`,
      );
      await bot.stopped;
    });

  program
    .command('runner')
    .description('run the GPU runner for one GPU (storyboards when COMFYUI_URL is unset)')
    .action(async () => {
      const config = loadConfig();
      const { runRunner } = await import('./gpu/runner.ts');
      const runner = await runRunner(config);
      console.error(
        `Runner ${runner.runnerId} is up: ${runner.renderer.describe()}. Ctrl-C (SIGTERM) stops it gracefully.`,
      );
      await runner.stopped;
    });

  program
    .command('register-commands')
    .description('register the slash commands (in DISCORD_GUILD_ID when set, else globally)')
    .action(async () => {
      const config = loadConfig();
      if (!config.DISCORD_TOKEN)
        throw new InputError('DISCORD_TOKEN is not set: the bot token is needed to register commands.');
      const { registerCommands } = await import('./bot/register-commands.ts');
      const result = await registerCommands(config);
      const where =
        result.scope === 'guild'
          ? `guild ${result.guildId}`
          : 'all guilds (global commands can take up to an hour to appear)';
      console.log(`Registered /${result.names.join(', /')} for ${where}.`);
    });

  program
    .command('comic')
    .description(
      'run the whole comic flow locally, without Discord: script, recipes, panels, lettered pages, manifest',
    )
    .argument('<story>', 'the story prompt (quote it)')
    .option('--pages <n>', 'number of pages, 1–8 (default: the writer decides)', integer('--pages'))
    .option('--panels-per-page <n>', 'panels on each page, 1–6', integer('--panels-per-page'))
    .addOption(
      new Option('--model <family>', 'model family the recipes target')
        .choices(MODEL_FAMILIES)
        .default('illustrious'),
    )
    .option('--style <trigger>', 'a style LoRA by its trigger word (file <trigger>.safetensors in ComfyUI)')
    .option('--rtl', 'right-to-left reading order (manga)', false)
    .addOption(
      new Option(
        '--lettering <mode>',
        'overlay: balloons lettered on the page; model: drawn by the model in the panel (FLUX.2 only)',
      )
        .choices(['overlay', 'model'])
        .default('overlay'),
    )
    .option('--out <dir>', 'output folder (default ./comic-out/<title>)')
    .action(
      async (
        story: string,
        opts: {
          pages?: number;
          panelsPerPage?: number;
          model: string;
          style?: string;
          rtl: boolean;
          lettering: string;
          out?: string;
        },
      ) => {
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
      },
    );

  program
    .command('train')
    .description('LoRA training')
    .command('plan')
    .description(
      'print the trainer config (kohya dataset TOML or ai-toolkit YAML) and the exact command, without running anything',
    )
    .argument('<dataset-dir>', 'a prepared dataset (`comicmaster dataset prepare --out`)')
    .addOption(
      new Option('--base <base>', 'base model family')
        .choices(['illustrious', 'noobai', 'flux'])
        .makeOptionMandatory(),
    )
    .requiredOption('--trigger <word>', 'the trigger word the style is learned under')
    .option('--model <path>', 'base model file or Hugging Face id (default: the preset one)')
    .option('--work-dir <dir>', 'where the config and the output would go (default: <dataset-dir>-train)')
    .option('--repeats <n>', 'fixed kohya repeats instead of the chosen ones', integer('--repeats'))
    .option('--epochs <n>', 'fixed kohya epochs instead of the chosen ones', integer('--epochs'))
    .option('--steps <n>', 'fixed ai-toolkit steps instead of the chosen ones', integer('--steps'))
    .option('--json', 'print the plan as JSON', false)
    .action(
      async (
        datasetDir: string,
        opts: {
          base: 'illustrious' | 'noobai' | 'flux';
          trigger: string;
          model?: string;
          workDir?: string;
          repeats?: number;
          epochs?: number;
          steps?: number;
          json: boolean;
        },
      ) => {
        const { planTraining, formatPlan } = await import('./training/plan.ts');
        const config = loadConfig();
        const plan = await planTraining({
          datasetDir,
          base: opts.base,
          trigger: opts.trigger,
          workDir: opts.workDir ?? `${datasetDir.replace(/\/+$/, '')}-train`,
          python: config.TRAINER_PYTHON,
          ...(opts.model ? { model: opts.model } : {}),
          ...(config.SD_SCRIPTS_DIR ? { sdScriptsDir: config.SD_SCRIPTS_DIR } : {}),
          ...(config.AI_TOOLKIT_DIR ? { aiToolkitDir: config.AI_TOOLKIT_DIR } : {}),
          ...(opts.repeats ? { repeats: opts.repeats } : {}),
          ...(opts.epochs ? { epochs: opts.epochs } : {}),
          ...(opts.steps ? { steps: opts.steps } : {}),
        });
        console.log(opts.json ? JSON.stringify(plan, null, 2) : formatPlan(plan));
      },
    );

  program
    .command('workflow')
    .description('print the ComfyUI API graph a render recipe becomes')
    .argument(
      '<recipe>',
      'a recipe JSON file (as written by `comicmaster comic` into recipes/), or - for stdin',
    )
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
        throw new InputError(
          `${path} is not a render recipe:\n${recipe.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`,
        );
      }
      console.log(JSON.stringify(buildWorkflow(recipe.data, { filenamePrefix: opts.prefix }), null, 2));
    });

  program
    .command('export')
    .description('export a local comic as a print PDF (300 dpi) or a CBZ with ComicInfo.xml')
    .argument(
      '<comic>',
      'a comic folder written by `comicmaster comic`, its manifest.json, or the id of a comic made in Discord (read from the database and the artifact store)',
    )
    .addOption(
      new Option('--format <format>', 'the file format').choices(['pdf', 'cbz']).makeOptionMandatory(),
    )
    .requiredOption('--out <file>', 'the file to write')
    .option('--writer <name>', 'who is credited as writer/author (default: ComicMaster)')
    .option('--genre <genre>', 'genre for the metadata')
    .option('--language <iso>', 'language code for the metadata, such as en')
    .option(
      '--max-bytes <n>',
      'PDF only: the largest file wanted; pages are re-encoded as JPEG to fit',
      integer('--max-bytes'),
    )
    .action(
      async (
        target: string,
        opts: {
          format: 'pdf' | 'cbz';
          out: string;
          writer?: string;
          genre?: string;
          language?: string;
          maxBytes?: number;
        },
      ) => {
        if (opts.maxBytes !== undefined && opts.maxBytes <= 0)
          throw new InputError('--max-bytes must be a positive number of bytes.');
        const { mkdir, writeFile } = await import('node:fs/promises');
        const { dirname, resolve } = await import('node:path');
        const extra = {
          writer: opts.writer ?? null,
          genre: opts.genre ?? null,
          languageISO: opts.language ?? null,
        };
        const out = resolve(opts.out);
        const fromDb = await import('./comic/export/from-db.ts');
        if (fromDb.isComicId(target)) {
          // A comic made in Discord: its rows are in the database, its pages in the artifact store.
          const file = await fromDb.exportComicFromDatabaseToFile(loadConfig(), target, {
            ...extra,
            format: opts.format,
            out,
            maxBytes: opts.maxBytes,
          });
          const encoding =
            file.imageFormat === 'jpeg' ? `JPEG pages at quality ${file.jpegQuality}` : 'PNG pages';
          console.log(`Wrote ${out}: ${file.pageCount} page(s), ${file.bytes.length} bytes, ${encoding}.`);
          if (!file.fits) {
            console.error(
              `The ${opts.format.toUpperCase()} does not fit in ${opts.maxBytes} bytes; the smallest version is at ${out}.`,
            );
            process.exitCode = 3;
          }
          return;
        }
        const { loadComic } = await import('./comic/export/load.ts');
        const comic = await loadComic(target);
        for (const page of comic.pages.filter((p) => !p.matchesManifest)) {
          console.warn(
            `warning: page ${page.number} is not the file the manifest recorded (changed since the comic was made).`,
          );
        }
        await mkdir(dirname(out), { recursive: true });
        if (opts.format === 'cbz') {
          const { exportCbz } = await import('./comic/export/cbz.ts');
          const cbz = exportCbz(comic, extra);
          await writeFile(out, cbz.bytes);
          console.log(`Wrote ${out}: ${comic.pages.length} page(s), ${cbz.bytes.length} bytes.`);
          return;
        }
        const { exportPdf } = await import('./comic/export/pdf.ts');
        const pdf = await exportPdf(comic, { ...extra, maxBytes: opts.maxBytes });
        await writeFile(out, pdf.bytes);
        const encoding = pdf.imageFormat === 'png' ? 'PNG pages' : `JPEG pages at quality ${pdf.jpegQuality}`;
        console.log(`Wrote ${out}: ${comic.pages.length} page(s), ${pdf.bytes.length} bytes, ${encoding}.`);
        if (!pdf.fits) {
          console.error(
            `The PDF does not fit in ${opts.maxBytes} bytes even as JPEG; the smallest version is at ${out}.`,
          );
          process.exitCode = 3;
        }
      },
    );

  program
    .command('rebuild')
    .description(
      're-make a comic exactly from its manifest and compare every panel and page with the original',
    )
    .argument('<manifest>', 'the manifest.json of a comic (or its folder)')
    .option('--out <dir>', 'output folder (default: rebuild/ inside the comic folder)')
    .option('--models-dir <dir>', "ComfyUI's models folder, to check model file hashes against the manifest")
    .action(async (path: string, opts: { out?: string; modelsDir?: string }) => {
      const config = loadConfig();
      const { createPanelRenderer } = await import('./gpu/renderers.ts');
      const { formatRebuildReport, localModelHasher, rebuildComic } = await import('./comic/rebuild.ts');
      const modelHashes =
        opts.modelsDir || config.COMFYUI_LORA_DIR
          ? localModelHasher({ modelsDir: opts.modelsDir, loraDir: config.COMFYUI_LORA_DIR })
          : undefined;
      const renderer = await createPanelRenderer(config);
      try {
        const report = await rebuildComic(path, {
          renderer,
          outDir: opts.out,
          modelHashes,
          onEvent: (m) => console.log(m),
        });
        console.log(formatRebuildReport(report));
        // A deterministic renderer that gave other bytes means something changed: fail loudly.
        if (report.failed) process.exitCode = 1;
      } finally {
        await renderer.close();
      }
    });

  program
    .command('dataset')
    .description('training datasets for style LoRAs')
    .command('prepare')
    .description(
      'check, de-duplicate, convert and caption images for LoRA training (kohya layout), with a report of what was refused and why',
    )
    .argument('<inputs...>', 'a zip, a folder, or image files')
    .requiredOption(
      '--trigger <word>',
      'the trigger word the style is learned under (first in every caption)',
    )
    .requiredOption('--out <dir>', 'an empty or new folder; nothing is written outside it')
    .addOption(
      new Option('--captions <mode>', 'how captions are written')
        .choices(['none', 'wd14', 'llm'])
        .default('none'),
    )
    .addOption(
      new Option('--caption-extension <ext>', 'caption file extension (pass the same to the trainer)')
        .choices(['.txt', '.caption'])
        .default('.txt'),
    )
    .option(
      '--repeats <n>',
      'kohya repeats, in the folder name <repeats>_<trigger>',
      integer('--repeats'),
      10,
    )
    .addOption(
      new Option('--min-side-policy <policy>', 'images under 1024 px on the short side')
        .choices(['upscale', 'refuse'])
        .default('upscale'),
    )
    .option('--json', 'print the report as JSON', false)
    .action(
      async (
        inputs: string[],
        opts: {
          trigger: string;
          out: string;
          captions: 'none' | 'wd14' | 'llm';
          captionExtension: '.txt' | '.caption';
          repeats: number;
          minSidePolicy: 'upscale' | 'refuse';
          json: boolean;
        },
      ) => {
        const { captionSettingsFromConfig, prepareDataset } = await import('./dataset/prepare.ts');
        const { formatReport } = await import('./dataset/report.ts');
        const captioning = opts.captions === 'none' ? {} : captionSettingsFromConfig(loadConfig());
        const report = await prepareDataset(
          inputs,
          {
            trigger: opts.trigger,
            out: opts.out,
            captions: opts.captions,
            captionExtension: opts.captionExtension,
            repeats: opts.repeats,
            minSidePolicy: opts.minSidePolicy,
          },
          { ...captioning, onProgress: opts.json ? undefined : (m) => console.error(m) },
        );
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
        if (report.status === 'refused') process.exitCode = 1;
      },
    );

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
