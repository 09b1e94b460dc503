/**
 * Runner presence: each runner writes a small JSON heartbeat into Redis under the queue prefix, with a
 * TTL of about three intervals, so a runner that dies simply disappears. `/runner status` lists them,
 * and routing can pick the runner that has the models a job needs.
 *
 * Key: `<prefix>:runners:<id>`. A plain Redis string (SET … PX), not a BullMQ structure.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { log } from '../log.ts';

export const RunnerPresence = z.object({
  id: z.string().min(1).max(128),
  renderer: z.enum(['comfyui', 'storyboard']),
  /** describe() of the renderer, for people. */
  description: z.string(),
  gpu: z.string().nullable(),
  vramTotal: z.number().nullable(),
  vramFree: z.number().nullable(),
  checkpoints: z.array(z.string()),
  loras: z.array(z.string()),
  /**
   * The other model folders a recipe may need (GET /models/{folder}): text encoders, VAEs, ControlNets,
   * CLIP vision and IPAdapter models. Absent from older runners (routing then does not check them).
   */
  textEncoders: z.array(z.string()).optional(),
  vaes: z.array(z.string()).optional(),
  controlnets: z.array(z.string()).optional(),
  clipVision: z.array(z.string()).optional(),
  ipadapters: z.array(z.string()).optional(),
  /** Render ids in progress on this runner (up to two: one running, one queued in ComfyUI). */
  currentJobs: z.array(z.string()),
  online: z.boolean(),
  /** Why the runner cannot render right now (ComfyUI unreachable …), in words a user can read. */
  offlineReason: z.string().nullable(),
  /**
   * While a training holds this GPU (renders paused): when it is expected to end (ISO time), so the
   * bot can show an ETA for renders only this runner can do. Null or absent otherwise.
   */
  trainingUntil: z.string().nullable().optional(),
  startedAt: z.string(),
  updatedAt: z.string(),
});
export type RunnerPresence = z.infer<typeof RunnerPresence>;

/** What the runner knows about itself at each beat (everything but the timestamps and id). */
export type PresenceSnapshot = Omit<RunnerPresence, 'id' | 'startedAt' | 'updatedAt'>;

export const presenceKey = (prefix: string, runnerId: string) => `${prefix}:runners:${runnerId}`;

export interface PresenceOptions {
  redis: Redis;
  prefix: string;
  runnerId: string;
  /** Called at each beat; a throw is logged and reported as offline. */
  snapshot: () => Promise<PresenceSnapshot>;
  intervalMs?: number;
  logger?: Logger;
}

export interface PresenceHandle {
  /** Publish now (e.g. right after the current job changed or ComfyUI went away). */
  beat(): Promise<void>;
  /** Stop beating and remove the key, so status shows the runner gone at once. */
  stop(): Promise<void>;
}

export async function startPresence(options: PresenceOptions): Promise<PresenceHandle> {
  const interval = options.intervalMs ?? 5_000;
  const ttl = interval * 3;
  const key = presenceKey(options.prefix, options.runnerId);
  const logger = (options.logger ?? log()).child({ component: 'presence', runner: options.runnerId });
  const startedAt = new Date().toISOString();
  let stopped = false;
  let inFlight: Promise<void> | undefined;

  const publish = async () => {
    let snapshot: PresenceSnapshot;
    try {
      snapshot = await options.snapshot();
    } catch (err) {
      logger.warn({ err }, 'runner snapshot failed');
      return;
    }
    if (stopped) return;
    const value: RunnerPresence = {
      ...snapshot,
      id: options.runnerId,
      startedAt,
      updatedAt: new Date().toISOString(),
    };
    try {
      await options.redis.set(key, JSON.stringify(value), 'PX', ttl);
    } catch (err) {
      logger.warn({ err }, 'could not publish the runner heartbeat');
    }
  };
  // Beats never overlap: a slow /system_stats must not stack requests.
  const beat = () => {
    inFlight ??= publish().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  await beat();
  const timer = setInterval(() => void beat(), interval);
  timer.unref();

  return {
    beat,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await inFlight;
      await options.redis
        .del(key)
        .catch((err: unknown) => logger.warn({ err }, 'could not remove the runner heartbeat'));
    },
  };
}

/** Every runner with a live heartbeat under the prefix, sorted by id. Unreadable entries are skipped. */
export async function listRunners(redis: Redis, prefix: string): Promise<RunnerPresence[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:runners:*`, 'COUNT', 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys);
  const runners: RunnerPresence[] = [];
  for (const value of values) {
    if (!value) continue; // expired between SCAN and MGET
    try {
      const parsed = RunnerPresence.safeParse(JSON.parse(value));
      if (parsed.success) runners.push(parsed.data);
    } catch {
      // not JSON: someone else's key; ignore
    }
  }
  return runners.sort((a, b) => a.id.localeCompare(b.id));
}
