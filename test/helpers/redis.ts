import { randomUUID } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import {
  createQueueConnection,
  createRedisClient,
  type QueueConnection,
} from '../../src/queue/connection.ts';
import { QUEUE_NAMES } from '../../src/queue/names.ts';

/** The real Redis the tests use (CI starts it on 127.0.0.1:6379). */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A connection with a prefix of its own, so a test file never sees another file's jobs. */
export function testQueueConnection(label: string): QueueConnection {
  return createQueueConnection({
    redisUrl: TEST_REDIS_URL,
    prefix: `test-${label}-${randomUUID().slice(0, 8)}`,
  });
}

/** Every Redis key under a connection's prefix. */
export async function keysUnderPrefix(connection: QueueConnection): Promise<string[]> {
  const redis = createRedisClient(connection, 'worker');
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${connection.prefix}:*`, 'COUNT', 500);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys;
  } finally {
    await redis.quit();
  }
}

/** Obliterate every product queue under the prefix, then drop any key BullMQ left behind. */
export async function cleanupQueues(connection: QueueConnection): Promise<void> {
  for (const name of QUEUE_NAMES) {
    const queue = new Queue(name, { connection: connection.options('worker'), prefix: connection.prefix });
    try {
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  }
  const leftovers = await keysUnderPrefix(connection);
  if (leftovers.length > 0) {
    const redis = createRedisClient(connection, 'worker');
    try {
      await redis.del(...leftovers);
    } finally {
      await redis.quit();
    }
  }
}

/**
 * Wait until a job is completed or failed (for good: a retried job passes through delayed/waiting
 * first), then return it as stored. Polls the job's state, so it cannot miss an event that fired
 * before it started listening; the test's own timeout bounds it.
 */
export async function settledJob(queue: Queue, jobId: string | undefined): Promise<Job> {
  if (jobId === undefined) throw new Error('job has no id');
  for (;;) {
    const state = await queue.getJobState(jobId);
    if (state === 'completed' || state === 'failed') {
      const job = await queue.getJob(jobId);
      if (!job) throw new Error(`job ${jobId} vanished after it settled`);
      return job;
    }
    if (state === 'unknown') throw new Error(`job ${jobId} is not in queue ${queue.name}`);
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}
