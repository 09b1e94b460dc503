import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBot, type BotHandle, type RunBotOptions } from '../../src/bot/bot.ts';
import { registerCommands } from '../../src/bot/register-commands.ts';
import { parseConfig, type AppConfig } from '../../src/config/env.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import type { Logger } from 'pino';
import { createLogger } from '../../src/log.ts';
import type { QueueConnection } from '../../src/queue/index.ts';
import { createArtifactStore, type ArtifactStore } from '../../src/store/index.ts';
import {
  startFakeDiscord,
  type FakeAttachment,
  type FakeDiscord,
  type FakeDiscordOptions,
  type SlashCommandInput,
} from '../fakes/discord.ts';
import { createTestDatabase } from './database.ts';
import { TEST_GEOMETRY } from './pipeline.ts';
import { cleanupQueues, TEST_REDIS_URL, testQueueConnection } from './redis.ts';

export interface BotHarnessOptions {
  /** Names the temporary folder and the Redis prefix, so leftovers say which file made them. */
  label: string;
  /** The fake Discord's guilds, upload limit and so on. */
  discord?: FakeDiscordOptions;
  /** Extra environment for the config (RUNNER_ID, trainer paths…); may use the data folder. */
  env?: (dataDir: string) => Record<string, string> | Promise<Record<string, string>>;
  /** What this file's bot does differently (status interval, no CPU workers…). */
  bot?: Omit<RunBotOptions, 'logger' | 'connection' | 'store' | 'handleSignals'>;
}

/**
 * The real bot (runBot) against the fake Discord, for one test file or bench: a fresh PostgreSQL
 * database, a temporary data folder and artifact store, a Redis prefix of its own, the slash commands
 * registered. runBot applies the migrations, so rows can be written once it is up. close() stops the
 * bot and removes all of it.
 */
export interface BotHarness {
  readonly fake: FakeDiscord;
  readonly database: Database;
  readonly store: ArtifactStore;
  readonly connection: QueueConnection;
  readonly config: AppConfig;
  readonly dataDir: string;
  readonly logger: Logger;
  /** The bot most recently started (tests that restart it call startBot again). */
  readonly bot: BotHandle;
  startBot(): Promise<BotHandle>;
  close(): Promise<void>;
}

export async function startBotHarness(options: BotHarnessOptions): Promise<BotHarness> {
  const logger = createLogger({ level: 'silent' });
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    // Last acquired, first released: the bot goes before the queues, Discord and the database it uses.
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  };
  try {
    const testDb = await createTestDatabase();
    cleanups.push(() => testDb.drop());
    const dataDir = await mkdtemp(join(tmpdir(), `cm-${options.label}-`));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const database = await openDatabase({ databaseUrl: testDb.url, dataDir });
    cleanups.push(() => database.close());
    const fake = await startFakeDiscord(options.discord);
    cleanups.push(() => fake.close());
    const connection = testQueueConnection(options.label);
    cleanups.push(() => cleanupQueues(connection));
    const store = createArtifactStore({ dataDir });
    const config = parseConfig({
      DISCORD_TOKEN: fake.token,
      DISCORD_API_URL: fake.restUrl,
      DISCORD_GUILD_ID: fake.guild.id,
      DATABASE_URL: testDb.url,
      DATA_DIR: dataDir,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'silent',
      ...(await options.env?.(dataDir)),
    });
    await registerCommands(config, logger);

    let bot: BotHandle | undefined;
    const startBot = async () => {
      bot = await runBot(config, {
        pipeline: { geometry: TEST_GEOMETRY },
        ...options.bot,
        logger,
        connection,
        store,
        handleSignals: false,
      });
      return bot;
    };
    // stop() is safe to call twice, so a bot a test already stopped is fine here.
    cleanups.push(async () => bot?.stop());
    await startBot();

    return {
      fake,
      database,
      store,
      connection,
      config,
      dataDir,
      logger,
      get bot() {
        if (!bot) throw new Error('the bot is not started');
        return bot;
      },
      startBot,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

export interface CommandReply {
  content: string;
  ephemeral: boolean;
  /** Files on the deferred reply (an immediate reply carries none here). */
  attachments: FakeAttachment[];
}

/**
 * Runs a slash command and resolves with what the member sees: an immediate reply, or the deferred
 * reply's edit once `settled` accepts its text (default: any text at all).
 */
export async function commandReply(
  fake: FakeDiscord,
  input: SlashCommandInput,
  options: { settled?: (content: string) => boolean; timeoutMs?: number } = {},
): Promise<CommandReply> {
  const settled = options.settled ?? ((content: string) => content !== '');
  const { id } = fake.sendSlashCommand(input);
  return fake.waitFor(() => {
    const interaction = fake.interaction(id);
    const callback = interaction?.callback;
    if (!callback) return undefined;
    if (callback.type === 4) {
      const data = callback.data as { content?: string; flags?: number };
      return { content: data.content ?? '', ephemeral: ((data.flags ?? 0) & 64) === 64, attachments: [] };
    }
    // Deferred: wait for the edit that carries the answer.
    const original = interaction.original;
    if (!original || !settled(original.content)) return undefined;
    return {
      content: original.content,
      ephemeral: (original.flags & 64) === 64,
      attachments: original.attachments,
    };
  }, options.timeoutMs ?? 30_000);
}
