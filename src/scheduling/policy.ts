/**
 * The GPU scheduling policy, as a pure function: given the render jobs waiting and what the GPU has
 * loaded, which one should it start next? No I/O here, so the policy is tested and benchmarked on its
 * own and the BullMQ side (dispatcher.ts) only has to feed it and act on the answer.
 *
 * Why these rules (issue 8 §1):
 * - Interactive work first. A 🔁 re-roll, then the first panel of a comic, ahead of everything
 *   else: those are what a person is staring at.
 * - Few model changes. ComfyUI reloads a checkpoint (~8 s) whenever it changes and re-patches the
 *   weights (~1 s) whenever the LoRA set changes, so among equals the job that needs no change wins:
 *   same checkpoint first, then same LoRA set. An urgent job that needs another checkpoint may wait a
 *   short "switch patience" while same-checkpoint work exists, so a few urgent jobs of that checkpoint
 *   are served by one switch instead of one each.
 * - Fair across people. Within a group, the owner (person, or comic) served least recently goes
 *   first: comics interleave rather than one 24-panel comic holding the others.
 * - A bound. Any job that has waited longer than its lane's `maxWaitMs` is overdue and goes before
 *   everything that is not; overdue jobs go oldest first, except that jobs enqueued within
 *   `overdueWindowMs` of the oldest count as equally old and are grouped by model, so a burst that goes
 *   overdue together (an evaluation grid) does not thrash the checkpoint.
 * - Bulk last: remaining comic panels before evaluation-grid cells.
 */

/** Lanes in the order they are served (lower index first). */
export const LANES = ['interactive', 'first-panel', 'comic', 'evaluation'] as const;
export type Lane = (typeof LANES)[number];

const URGENT: ReadonlySet<Lane> = new Set(['interactive', 'first-panel']);

export interface Candidate {
  /** The BullMQ job id. */
  jobId: string;
  lane: Lane;
  /** Fairness key: the person who asked, or the comic. */
  owner: string;
  /** The checkpoint (or diffusion model) file the render loads. */
  checkpoint: string;
  /** The LoRA stack as ComfyUI patches it: names and strengths, in order ('' for none). */
  loraSet: string;
  /** When the job was enqueued (ms since the epoch, BullMQ's job.timestamp). */
  enqueuedAt: number;
}

export interface PolicyOptions {
  /** The longest any job of a lane should wait before it goes ahead of everything not overdue. */
  maxWaitMs: Record<Lane, number>;
  /** Overdue jobs enqueued this close to the oldest overdue one are grouped by model. */
  overdueWindowMs: number;
  /** How long an urgent job waits for a checkpoint switch while same-checkpoint work exists. */
  switchPatienceMs: number;
}

/** Defaults in real seconds for a 3090 rendering 28-step SDXL panels (~7 s each). */
export const DEFAULT_POLICY: PolicyOptions = {
  maxWaitMs: { interactive: 60_000, 'first-panel': 120_000, comic: 15 * 60_000, evaluation: 30 * 60_000 },
  overdueWindowMs: 60_000,
  switchPatienceMs: 20_000,
};

/** Scale every duration of a policy (benchmarks run the same policy with scaled-down costs). */
export function scalePolicy(policy: PolicyOptions, factor: number): PolicyOptions {
  const maxWaitMs = Object.fromEntries(
    LANES.map((lane) => [lane, policy.maxWaitMs[lane] * factor]),
  ) as Record<Lane, number>;
  return {
    maxWaitMs,
    overdueWindowMs: policy.overdueWindowMs * factor,
    switchPatienceMs: policy.switchPatienceMs * factor,
  };
}

/** What the scheduler remembers between picks (one per GPU). */
export interface SchedulerState {
  /** The checkpoint and LoRA set of the last job started: what ComfyUI has loaded (or will have). */
  checkpoint: string | undefined;
  loraSet: string | undefined;
  /** owner → pick sequence number of the owner's last pick, for round-robin. */
  lastServed: Map<string, number>;
  picks: number;
}

export function newSchedulerState(): SchedulerState {
  return { checkpoint: undefined, loraSet: undefined, lastServed: new Map(), picks: 0 };
}

/** Remember a pick: the GPU now holds its models, and its owner had a turn. */
export function recordPick(state: SchedulerState, picked: Candidate): void {
  state.checkpoint = picked.checkpoint;
  state.loraSet = picked.loraSet;
  state.picks += 1;
  state.lastServed.set(picked.owner, state.picks);
}

type Key = number[];

function compareKeys(a: Key, b: Key): number {
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function best(candidates: readonly Candidate[], key: (c: Candidate) => Key): Candidate | undefined {
  let winner: Candidate | undefined;
  let winnerKey: Key = [];
  for (const c of candidates) {
    const k = key(c);
    if (!winner || compareKeys(k, winnerKey) < 0) {
      winner = c;
      winnerKey = k;
    }
  }
  return winner;
}

/** The job to start next on this GPU, or undefined when there is none. */
export function pickNext(
  candidates: readonly Candidate[],
  state: SchedulerState,
  now: number,
  options: PolicyOptions,
): Candidate | undefined {
  if (candidates.length === 0) return undefined;
  const sameCheckpoint = (c: Candidate) =>
    state.checkpoint === undefined || c.checkpoint === state.checkpoint ? 0 : 1;
  const sameLoras = (c: Candidate) => (state.loraSet === undefined || c.loraSet === state.loraSet ? 0 : 1);
  const laneRank = (c: Candidate) => LANES.indexOf(c.lane);
  const served = (c: Candidate) => state.lastServed.get(c.owner) ?? 0;
  // Ties on everything else: oldest first, then job id so the choice is deterministic.
  const age = (c: Candidate) => c.enqueuedAt;

  // 1. Overdue jobs, oldest first (grouped by model within the window of the oldest).
  const overdue = candidates.filter((c) => now - c.enqueuedAt > options.maxWaitMs[c.lane]);
  if (overdue.length > 0) {
    const oldest = Math.min(...overdue.map(age));
    const window = overdue.filter((c) => c.enqueuedAt - oldest <= options.overdueWindowMs);
    return best(window, (c) => [sameCheckpoint(c), sameLoras(c), laneRank(c), served(c), age(c)]);
  }

  // 2. Urgent work; one that needs a checkpoint switch waits its patience while other work can run
  //    on the loaded checkpoint.
  const anyOnLoaded = candidates.some((c) => sameCheckpoint(c) === 0);
  const urgent = candidates.filter(
    (c) =>
      URGENT.has(c.lane) &&
      (sameCheckpoint(c) === 0 || !anyOnLoaded || now - c.enqueuedAt >= options.switchPatienceMs),
  );
  if (urgent.length > 0) {
    return best(urgent, (c) => [laneRank(c), sameCheckpoint(c), sameLoras(c), served(c), age(c)]);
  }

  // 3. Bulk: comic panels before evaluation cells; within a lane, the loaded models, then fairness.
  //    Urgent jobs still within their patience are bulk here too if they match the loaded checkpoint
  //    (they would have been picked above), so only bulk lanes remain, unless nothing else is left.
  const bulk = candidates.filter((c) => !URGENT.has(c.lane));
  if (bulk.length === 0) {
    return best(candidates, (c) => [laneRank(c), age(c)]);
  }
  return best(bulk, (c) => [laneRank(c), sameCheckpoint(c), sameLoras(c), served(c), age(c)]);
}

/** Plain first-in-first-out, the baseline the benchmark compares against. */
export function pickFifo(candidates: readonly Candidate[]): Candidate | undefined {
  return best([...candidates], (c) => [c.enqueuedAt]);
}
