/**
 * What the bot's handlers, poster and reaction handler share. Passed in as one object (no globals), so
 * every piece can be exercised with the real client against the fake Discord.
 */
import type { Client } from 'discord.js';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { PipelineDeps } from '../comic/flow/index.ts';
import type { AppConfig } from '../config/env.ts';
import type { Db } from '../db/client.ts';
import type { JobProducer, QueueConnection } from '../queue/index.ts';
import type { ArtifactStore } from '../store/index.ts';
import type { UploadLimits } from './upload-limits.ts';

/** The dependencies of the comic flow (src/comic/flow), with the logger always present. */
export interface FlowDeps extends PipelineDeps {
  db: Db;
  store: ArtifactStore;
  producer: JobProducer;
  queueConnection: QueueConnection;
  config: AppConfig;
  logger: Logger;
}

export interface BotDeps extends FlowDeps {
  client: Client<true>;
  uploadLimits: UploadLimits;
  /** A plain Redis client on the queue connection, for runner presence keys. */
  redis: Redis;
}
