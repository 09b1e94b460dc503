/**
 * `comicmaster bot`: the only process that talks to Discord. It turns interactions and reactions into
 * rows and jobs (through the comic flow), and `post` jobs into messages. The CPU workers (script
 * writing, page assembly) run here by default. It holds no state a restart would lose: on start-up,
 * unfinished comics are resumed from the database, and posting is idempotent by the message ids
 * stored there.
 */
import {
  Events,
  type Client,
  type MessageReaction,
  type PartialMessageReaction,
  type PartialUser,
  type User,
} from 'discord.js';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  resumeUnfinishedComics,
  startCpuWorkers,
  type CpuWorkers,
  type PipelineDeps,
} from '../comic/flow/index.ts';
import { commandHandlers } from '../commands/handlers.ts';
import type { AppConfig } from '../config/env.ts';
import { openDatabase } from '../db/client.ts';
import { runMigrations } from '../db/migrate.ts';
import { UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import {
  createRedisClient,
  JobProducer,
  queueConnectionFromConfig,
  type QueueConnection,
} from '../queue/index.ts';
import { createArtifactStore, type ArtifactStore } from '../store/index.ts';
import { connectDiscordClient, createDiscordClient } from './client.ts';
import type { BotDeps } from './deps.ts';
import { startPoster, type Poster } from './poster.ts';
import { handleReactionAdd } from './reactions.ts';
import { startTrainingEvents } from './training-events.ts';
import { createInteractionRouter } from './router.ts';
import { UploadLimits } from './upload-limits.ts';

export interface RunBotOptions {
  logger?: Logger;
  /** Queue prefix (tests use their own); default the product's. */
  queuePrefix?: string;
  /** A ready connection instead of one from REDIS_URL + queuePrefix. */
  connection?: QueueConnection;
  store?: ArtifactStore;
  /** Run the script and assemble-page workers in this process (default true). */
  cpuWorkers?: boolean;
  /** Install SIGTERM/SIGINT handlers that call stop() (default true; tests pass false). */
  handleSignals?: boolean;
  /** At most one status edit per comic in this window (default 4 s). */
  statusIntervalMs?: number;
  postConcurrency?: number;
  /** Page geometry and size limit for the in-process CPU workers (tests and the bench use small pages). */
  pipeline?: Pick<PipelineDeps, 'geometry' | 'uploadLimitBytes'>;
}

export interface BotHandle {
  readonly client: Client<true>;
  readonly deps: BotDeps;
  /** Graceful stop: no new interactions, running jobs finish, connections close. Safe to call twice. */
  stop(): Promise<void>;
  /** Resolves once the bot has stopped (by stop() or a signal). */
  readonly stopped: Promise<void>;
}

export async function runBot(config: AppConfig, opts: RunBotOptions = {}): Promise<BotHandle> {
  const logger = (opts.logger ?? log()).child({ component: 'bot' });
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse())
      await fn().catch((err: unknown) => logger.warn({ err }, 'shutdown step failed'));
    cleanups.length = 0;
  };

  try {
    const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.dataDir });
    cleanups.push(() => database.close());
    await runMigrations(database);

    const store = opts.store ?? createArtifactStore(config);
    const queueConnection = opts.connection ?? queueConnectionFromConfig(config, opts.queuePrefix);
    const producer = new JobProducer(queueConnection, { logger });
    cleanups.push(() => producer.close());
    const redis = await connectedRedis(queueConnection);
    cleanups.push(() => redis.quit());

    const unreadyClient = createDiscordClient(config, logger);
    cleanups.push(() => unreadyClient.destroy());
    const client = await connectDiscordClient(unreadyClient, config);
    logger.info({ user: client.user.tag, guilds: client.guilds.cache.size }, 'logged in to Discord');

    const deps: BotDeps = {
      db: database.db,
      store,
      producer,
      queueConnection,
      config,
      logger,
      client,
      uploadLimits: new UploadLimits(),
      redis,
      ...opts.pipeline,
    };

    const router = createInteractionRouter(commandHandlers, deps);
    // Nothing thrown by a handler may reach the event emitter: it would crash the process.
    const onInteraction = (interaction: Parameters<typeof router>[0]) =>
      void router(interaction).catch((err: unknown) =>
        logger.error({ interactionId: interaction.id, err }, 'interaction handling crashed'),
      );
    const onReaction = (reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser) =>
      void handleReactionAdd(reaction, user, deps).catch((err: unknown) =>
        logger.error({ messageId: reaction.message.id, userId: user.id, err }, 'reaction handling failed'),
      );
    client.on(Events.InteractionCreate, onInteraction);
    client.on(Events.MessageReactionAdd, onReaction);
    cleanups.push(async () => {
      client.off(Events.InteractionCreate, onInteraction);
      client.off(Events.MessageReactionAdd, onReaction);
    });

    const poster: Poster = startPoster(deps, {
      ...(opts.statusIntervalMs === undefined ? {} : { statusIntervalMs: opts.statusIntervalMs }),
      ...(opts.postConcurrency === undefined ? {} : { concurrency: opts.postConcurrency }),
    });
    cleanups.push(() => poster.close());
    // Train jobs' progress, completion and failure become training status posts (src/bot/training-events.ts).
    const trainingEvents = await startTrainingEvents(deps);
    cleanups.push(() => trainingEvents.close());
    if (opts.cpuWorkers ?? true) {
      const workers: CpuWorkers = await startCpuWorkers(deps);
      cleanups.push(() => workers.close());
    }

    const resumed = await resumeUnfinishedComics(deps);
    if (resumed.comics > 0) logger.info(resumed, 'unfinished comics resumed');

    let resolveStopped: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
    let stopping: Promise<void> | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'stopping the bot');
      void stop();
    };
    const stop = () => {
      stopping ??= (async () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        await cleanup();
        logger.info('bot stopped');
        resolveStopped();
      })();
      return stopping;
    };
    if (opts.handleSignals ?? true) {
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    }
    logger.info('bot ready');
    return { client, deps, stop, stopped };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

const REDIS_READY_TIMEOUT_MS = 10_000;

/** A Redis client for presence reads, connected before use (it fails fast rather than queueing). */
async function connectedRedis(connection: QueueConnection): Promise<Redis> {
  const redis = createRedisClient(connection, 'producer');
  redis.on('error', () => undefined); // reported by the calls that fail; ioredis reconnects
  if (redis.status !== 'ready') {
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`Redis not ready after ${REDIS_READY_TIMEOUT_MS} ms`)),
          REDIS_READY_TIMEOUT_MS,
        );
        redis.once('ready', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } catch (cause) {
      redis.disconnect();
      throw new UpstreamError('redis', 'The job queue is unavailable.', {
        cause,
        operatorMessage: 'Redis is not reachable at REDIS_URL',
      });
    }
  }
  return redis;
}
