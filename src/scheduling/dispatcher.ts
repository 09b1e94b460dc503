/**
 * The BullMQ side of GPU scheduling: choose which waiting `render` job this runner takes next, and
 * take exactly that one.
 *
 * Why this shape. BullMQ serves a queue by priority then age, and a Worker with a processor fetches
 * its next job itself; neither knows which checkpoint is loaded on *this* GPU or which runner has
 * which models. So the runner processes the render queue manually (a Worker without a processor,
 * worker.getNextJob / job.moveToCompleted, BullMQ's documented "manually fetching jobs" pattern) and,
 * when ComfyUI has room, does:
 *   1. take a short Redis lock shared by all runners (one claim at a time, so two runners never pick
 *      the same job and the pick below is not overtaken);
 *   2. read the waiting jobs (BullMQ's wait list and prioritized set), keep those this runner can
 *      render (it has the checkpoint; each LoRA is installed or in the artifact store), and let the
 *      policy (policy.ts) choose;
 *   3. raise the chosen job to priority 1 (reserved for this; see RENDER_PRIORITY) with
 *      job.changePriority, and call worker.getNextJob, which moves it to active under our token.
 * Everything else stays BullMQ's: locks and stalled-job recovery (a dead runner's job returns to the
 * queue and another runner takes it), retries and backoff, flows (the page assembles when its renders
 * complete), events and progress. Jobs added without a priority (they would jump the prioritized set)
 * are given their lane's priority on the way, so the reserved slot is the only thing ahead.
 */
import { Job, type Queue, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { listRunners, type RunnerPresence } from '../gpu/presence.ts';
import { log } from '../log.ts';
import { parsePayload, type RenderJob } from '../queue/payloads.ts';
import { canRender, candidateOf, type RunnerModels } from './candidates.ts';
import {
  DEFAULT_POLICY,
  newSchedulerState,
  pickFifo,
  pickNext,
  recordPick,
  type Candidate,
  type Lane,
  type PolicyOptions,
  type SchedulerState,
} from './policy.ts';

/** The priority the dispatcher gives the one job it is about to take. Nothing else may use it. */
export const CLAIM_PRIORITY = 1;

/** Priorities for jobs that arrive without one, by lane (BullMQ: lower runs first). */
const LANE_PRIORITY: Record<Lane, number> = {
  interactive: 2,
  'first-panel': 50,
  comic: 100,
  evaluation: 1_000,
};

export type SchedulingMode = 'scheduled' | 'fifo';

export interface DispatcherOptions {
  /** The render queue, for reading waiting jobs. */
  queue: Queue;
  /** A Worker on the render queue created without a processor: claims move jobs to active through it. */
  worker: Worker;
  /** A plain Redis client for the claim lock and for reading other runners' presence. */
  redis: Redis;
  prefix: string;
  runnerId: string;
  /** 'fifo' ignores the policy (first in, first out): the benchmark's baseline. Default 'scheduled'. */
  mode?: SchedulingMode;
  policy?: PolicyOptions;
  /** What this runner can render now; null means anything (the storyboard renderer). */
  models?: () => RunnerModels | null;
  /**
   * Whether this runner can render at all right now (its ComfyUI answers). While it cannot, it claims
   * nothing, so jobs wait for (or go to) a runner that can instead of burning their retries here.
   */
  online?: () => boolean;
  /** How many waiting jobs to consider per pick (oldest by priority first). Default 500. */
  scanLimit?: number;
  /** Wall clock (the benchmark and tests use the real one; injectable for reasoning, not for faking). */
  now?: () => number;
  logger?: Logger;
}

interface Waiting {
  id: string;
  job: Job;
  candidate: Candidate | undefined;
  payload: RenderJob | undefined;
  /** In BullMQ's plain wait list (no priority) rather than the prioritized set. */
  unprioritized: boolean;
}

const LOCK_TTL_MS = 5_000;
/** How long a runner that stopped announcing itself still counts as able to take its jobs. */
const PEER_MEMORY_MS = 60_000;
const RELEASE_LOCK = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

export class RenderDispatcher {
  readonly state: SchedulerState = newSchedulerState();
  private readonly logger: Logger;
  private readonly lockKey: string;
  private readonly policy: PolicyOptions;
  private readonly now: () => number;
  /**
   * Waiting jobs already read, by id: a job's data never changes while it waits, so each pick reads
   * only the ids (cheap) and fetches and validates just the jobs it has not seen.
   */
  private readonly known = new Map<string, Omit<Waiting, 'unprioritized'>>();
  /** Other runners seen lately, with what they announced (see eligible()). */
  private readonly recentPeers = new Map<string, { presence: RunnerPresence; seenAt: number }>();

  constructor(private readonly options: DispatcherOptions) {
    this.logger = (options.logger ?? log()).child({
      component: 'render-dispatcher',
      runner: options.runnerId,
    });
    this.lockKey = `${options.prefix}:${options.queue.name}:scheduler-lock`;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.now = options.now ?? Date.now;
  }

  /**
   * Take the next job this runner should render, moved to active under `token`; undefined when there
   * is nothing for it (or another runner holds the claim lock for a moment: call again shortly).
   */
  async claim(token: string): Promise<Job | undefined> {
    const { redis } = this.options;
    if (this.options.online && !this.options.online()) return undefined;
    const lockValue = `${this.options.runnerId}:${token}`;
    const locked = await redis.set(this.lockKey, lockValue, 'PX', LOCK_TTL_MS, 'NX');
    if (locked !== 'OK') return undefined;
    try {
      return await this.claimLocked(token);
    } finally {
      await redis
        .eval(RELEASE_LOCK, 1, this.lockKey, lockValue)
        .catch((err: unknown) => this.logger.warn({ err }, 'could not release the claim lock'));
    }
  }

  private async claimLocked(token: string): Promise<Job | undefined> {
    const waiting = await this.readWaiting();
    if (waiting.length === 0) {
      // BullMQ promotes due delayed jobs (retries after backoff) inside moveToActive; with nothing
      // waiting, ask it directly, which also hands us such a job if one just became due.
      const job = await this.options.worker.getNextJob(token, { block: false });
      if (job)
        await this.restorePriority(job, job.priority === CLAIM_PRIORITY ? LANE_PRIORITY.comic : job.priority);
      return job ?? undefined;
    }

    // A payload no schema accepts is taken at once, so it fails visibly instead of sitting there.
    let chosen = waiting.find((w) => !w.candidate);
    if (!chosen) {
      const eligible = await this.eligible(waiting);
      const candidates = eligible.map((w) => w.candidate as Candidate);
      const mode = this.options.mode ?? 'scheduled';
      const pick =
        mode === 'fifo' ? pickFifo(candidates) : pickNext(candidates, this.state, this.now(), this.policy);
      if (!pick) return undefined;
      chosen = eligible.find((w) => w.job.id === pick.jobId);
      if (!chosen) return undefined;
    }

    // Nothing may sit ahead of the claim: jobs without a priority get their lane's.
    for (const w of waiting) {
      if (w.unprioritized && w !== chosen) {
        const lane = w.candidate?.lane ?? 'comic';
        await w.job.changePriority({ priority: LANE_PRIORITY[lane] }).catch(() => undefined);
      }
    }
    const original = chosen.unprioritized ? 0 : chosen.job.priority;
    try {
      await chosen.job.changePriority({ priority: CLAIM_PRIORITY });
    } catch (err) {
      // Taken or removed since we read it (cancelled comic, another process): pick again next time.
      this.logger.debug({ err, jobId: chosen.job.id }, 'chosen job is no longer waiting');
      return undefined;
    }
    const job = await this.options.worker.getNextJob(token, { block: false });
    if (!job) {
      // The queue is paused (or the job went elsewhere): leave it with its own priority.
      await this.restorePriority(chosen.job, original);
      return undefined;
    }
    // Give the claimed job its own priority back, so a hand-back or a retry does not jump the queue.
    if (job.id === chosen.job.id) await this.restorePriority(job, original);
    if (job.id !== chosen.job.id) {
      // Something slipped in ahead (a job added without a priority just now); we own it, so render it.
      this.logger.debug({ wanted: chosen.job.id, got: job.id }, 'claimed a different job than chosen');
    }
    const parsed = parsePayload('render', job.data);
    if (parsed.ok) recordPick(this.state, candidateOf(job.id ?? '', parsed.payload, job.timestamp));
    return job;
  }

  private async restorePriority(job: Job, priority: number): Promise<void> {
    await job
      .changePriority({ priority })
      .catch((err: unknown) => this.logger.debug({ err, jobId: job.id }, 'could not restore the priority'));
  }

  private async readWaiting(): Promise<Waiting[]> {
    const { queue } = this.options;
    const limit = this.options.scanLimit ?? 500;
    const [plain, prioritized] = await Promise.all([
      queue.getRanges(['wait'], 0, limit - 1, true),
      queue.getRanges(['prioritized'], 0, limit - 1, true),
    ]);
    const seen = new Set([...plain, ...prioritized]);
    for (const id of this.known.keys()) if (!seen.has(id)) this.known.delete(id);
    const read = async (id: string): Promise<Omit<Waiting, 'unprioritized'> | undefined> => {
      const cached = this.known.get(id);
      if (cached) return cached;
      const job = await Job.fromId(queue, id);
      if (!job) return undefined; // taken or removed in between
      const parsed = parsePayload('render', job.data);
      const entry = {
        id,
        job,
        payload: parsed.ok ? parsed.payload : undefined,
        candidate: parsed.ok ? candidateOf(id, parsed.payload, job.timestamp) : undefined,
      };
      this.known.set(id, entry);
      return entry;
    };
    const out: Waiting[] = [];
    for (const [ids, unprioritized] of [
      [plain, true],
      [prioritized, false],
    ] as const) {
      for (const id of ids) {
        const entry = await read(id);
        if (entry) out.push({ ...entry, unprioritized });
      }
    }
    return out;
  }

  /**
   * The jobs this runner may take: those it can render, plus those no live runner can render (taken
   * so they fail with a clear message rather than wait forever).
   */
  private async eligible(waiting: Waiting[]): Promise<Waiting[]> {
    const mine = this.options.models?.() ?? null;
    if (mine === null) return waiting;
    const canDo = waiting.filter((w) => w.payload && canRender(mine, w.payload.recipe));
    const cannot = waiting.filter((w) => w.payload && !canRender(mine, w.payload.recipe));
    if (cannot.length === 0) return canDo;
    // A peer that is training or briefly offline still counts: the job waits for it (with an ETA).
    // So does a peer whose heartbeat key lapsed a moment ago (a busy machine, a restart): it is
    // remembered for a while, so its jobs are not taken here only to fail.
    const now = this.now();
    for (const r of await listRunners(this.options.redis, this.options.prefix).catch(() => [])) {
      if (r.id !== this.options.runnerId) this.recentPeers.set(r.id, { presence: r, seenAt: now });
    }
    for (const [id, seen] of this.recentPeers) {
      if (now - seen.seenAt > PEER_MEMORY_MS) this.recentPeers.delete(id);
    }
    const peers = [...this.recentPeers.values()].map((p) => p.presence);
    const orphans = cannot.filter(
      (w) => !peers.some((p) => p.renderer === 'storyboard' || canRender(p, (w.payload as RenderJob).recipe)),
    );
    return [...canDo, ...orphans];
  }
}
