import type { RedisOptions } from 'bullmq';
import { Redis, type RedisOptions as IORedisOptions } from 'ioredis';
import { z } from 'zod';
import type { AppConfig } from '../config/env.ts';

/**
 * Redis connections for BullMQ. We hand BullMQ connection *options* rather than shared client
 * instances, so every Queue, Worker and FlowProducer owns its connections and closes them in its own
 * close() — nothing is left open when a process (or a test) shuts down.
 *
 * Two roles, because BullMQ needs different retry behaviour on each side:
 * - `worker`: blocking commands (BZPOPMIN) must wait out a Redis restart, so maxRetriesPerRequest is
 *   null (BullMQ refuses anything else for workers).
 * - `producer`: a Discord command that enqueues work must not hang while Redis is down; it fails fast
 *   so the user gets an answer and the row in PostgreSQL stays the record of what is owed.
 */

/** BullMQ's key prefix for this product; tests and side-by-side deployments pass their own. */
export const DEFAULT_QUEUE_PREFIX = 'comicmaster';

export type ConnectionRole = 'producer' | 'worker';

/** Everything a producer, worker or flow needs to reach the queues. */
export interface QueueConnection {
  /** BullMQ's `prefix`: every key of every queue lives under `<prefix>:<queue>:…`. */
  readonly prefix: string;
  /** ioredis options for the given role (a fresh object each call; BullMQ mutates what it is given). */
  options(role: ConnectionRole): RedisOptions;
}

const prefixSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.-]+$/, 'a queue prefix of letters, digits, dot, dash or underscore');

const redisUrlSchema = z
  .string()
  .refine((v) => /^rediss?:\/\//.test(v) && URL.canParse(v), { message: 'a redis:// or rediss:// URL' });

/**
 * Turn REDIS_URL into ioredis options. Parsed here rather than by ioredis so the role-specific
 * settings cannot be overridden by the URL and so a malformed URL is an error with a clear message.
 */
export function redisOptionsFromUrl(redisUrl: string, role: ConnectionRole): RedisOptions {
  const url = new URL(redisUrlSchema.parse(redisUrl));
  const dbPath = url.pathname.replace(/^\//, '');
  const db = dbPath === '' ? 0 : Number(dbPath);
  if (!Number.isInteger(db) || db < 0) {
    throw new Error(`REDIS_URL: expected a database number after the host, got "/${dbPath}"`);
  }
  const base: RedisOptions = {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 6379 : Number(url.port),
    db,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: { servername: url.hostname } } : {}),
    connectionName: `comicmaster-${role}`,
  };
  if (role === 'worker') {
    return { ...base, maxRetriesPerRequest: null };
  }
  return {
    ...base,
    // Fail fast: don't queue commands while disconnected, give up on a command after one retry,
    // and don't wait forever for the first connection.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
  };
}

export interface QueueConnectionOptions {
  redisUrl: string;
  /** Defaults to DEFAULT_QUEUE_PREFIX. */
  prefix?: string;
}

export function createQueueConnection(options: QueueConnectionOptions): QueueConnection {
  const prefix = prefixSchema.parse(options.prefix ?? DEFAULT_QUEUE_PREFIX);
  // Validate once up front, so a bad URL fails at start-up rather than at the first job.
  redisOptionsFromUrl(options.redisUrl, 'producer');
  return {
    prefix,
    options: (role) => redisOptionsFromUrl(options.redisUrl, role),
  };
}

/** The connection the processes use: REDIS_URL from the configuration. */
export function queueConnectionFromConfig(
  config: Pick<AppConfig, 'REDIS_URL'>,
  prefix?: string,
): QueueConnection {
  return createQueueConnection({ redisUrl: config.REDIS_URL, ...(prefix === undefined ? {} : { prefix }) });
}

/**
 * A plain ioredis client over the same Redis, for things that are not BullMQ queues (runner
 * heartbeats, locks). The caller owns it and must quit() it.
 */
export function createRedisClient(connection: QueueConnection, role: ConnectionRole): Redis {
  // BullMQ's option type is ioredis's, loosened with an index signature.
  return new Redis(connection.options(role) as IORedisOptions);
}
