/**
 * The style vote on a training's checkpoints, on the database: what the vote message shows (labels,
 * tally), and closing it, which registers the winner as the guild's style.
 *
 * Labels: by epoch, or in blind mode A, B, C… in the random order stored on the training when the
 * evaluation finished (trainings.evaluation.blindOrder), so the labels survive a restart and everybody
 * sees the same ones. Results always reveal the epoch.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { attachTrainedLora } from '../characters/trained-lora.ts';
import {
  type Character,
  type Checkpoint,
  type Style,
  type Training,
  checkpoints,
  styles,
  trainings,
} from '../db/schema.ts';
import { tally, type TallyLine } from '../db/votes.ts';
import { ComicMasterError, InputError } from '../errors.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';
import { artifactKeys } from '../store/keys.ts';
import { evalLoraName } from './plan.ts';
import { EvaluationRecord } from './record.ts';

export interface VoteOption {
  checkpoint: Checkpoint;
  /** What the button shows: "A" (blind) or "epoch 4". */
  label: string;
  votes: number;
}

export interface VoteView {
  training: Training;
  evaluation: EvaluationRecord | null;
  /** In button order: label order when blind, epoch order otherwise. */
  options: VoteOption[];
  totalVotes: number;
}

export function readEvaluation(training: Training): EvaluationRecord | null {
  if (!training.evaluation) return null;
  const parsed = EvaluationRecord.safeParse(training.evaluation);
  return parsed.success ? parsed.data : null;
}

export function blindLabel(index: number): string {
  // A…Z, then AA, AB… (a training rarely keeps more than a dozen checkpoints).
  let label = '';
  let n = index;
  do {
    label = String.fromCharCode(65 + (n % 26)) + label;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return label;
}

/** A random order of the checkpoint ids for a blind vote (Fisher–Yates with crypto randomness). */
export function shuffledOrder(ids: readonly string[], random: () => number = Math.random): string[] {
  const order = [...ids];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

export async function getTraining(db: Db, trainingId: string): Promise<Training | undefined> {
  const [row] = await db.select().from(trainings).where(eq(trainings.id, trainingId));
  return row;
}

export async function trainingCheckpoints(db: Db, trainingId: string): Promise<Checkpoint[]> {
  return db
    .select()
    .from(checkpoints)
    .where(eq(checkpoints.trainingId, trainingId))
    .orderBy(asc(checkpoints.epoch));
}

export async function voteView(db: Db, trainingId: string): Promise<VoteView> {
  const training = await getTraining(db, trainingId);
  if (!training) throw new InputError('That training no longer exists.');
  const evaluation = readEvaluation(training);
  const rows = await trainingCheckpoints(db, trainingId);
  const counts = new Map((await tally(db, trainingId)).map((t) => [t.checkpointId, t.votes]));
  let options: VoteOption[];
  const blind = evaluation?.blindOrder;
  if (blind && blind.length > 0) {
    const byId = new Map(rows.map((c) => [c.id, c]));
    options = blind
      .map((id) => byId.get(id))
      .filter((c): c is Checkpoint => c !== undefined)
      .map((checkpoint, i) => ({ checkpoint, label: blindLabel(i), votes: counts.get(checkpoint.id) ?? 0 }));
  } else {
    options = rows.map((checkpoint) => ({
      checkpoint,
      label: `epoch ${checkpoint.epoch}`,
      votes: counts.get(checkpoint.id) ?? 0,
    }));
  }
  return { training, evaluation, options, totalVotes: options.reduce((a, o) => a + o.votes, 0) };
}

export interface CloseResult {
  training: Training;
  winner: Checkpoint;
  /** The style registered (a style training), or null for a character training. */
  style: Style | null;
  /** The character that got the winning LoRA (a character training), or null for a style training. */
  character: Character | null;
  tally: TallyLine[];
  /** How the winner was chosen, for the announcement. */
  reason: 'most-votes' | 'tie-earlier-epoch' | 'tie-picked' | 'no-votes-earliest';
}

/**
 * Closes the vote and registers the winner as the guild's style (status ready). The winner is the
 * checkpoint with most votes; a tie goes to the earlier epoch (less overtrained) unless `pick` names
 * one of the tied checkpoints (the trainer role's choice). The style's strength is the strength the
 * measures recommend for that checkpoint (0.8 without measures): votes choose a checkpoint, not a
 * strength. Its LoRA is copied to `loras/cm_<training>_e<epoch>.safetensors`, a file name that cannot
 * collide with another style's in ComfyUI's loras folder.
 *
 * The training row is locked FOR UPDATE: votes in progress (FOR SHARE) finish first, none land after,
 * and a second close (timer and command at once) finds the vote already closed.
 */
export async function closeVote(
  db: Db,
  store: ArtifactStore,
  input: { trainingId: string; closedBy: string; pick?: string | null },
): Promise<CloseResult> {
  const result = await db.transaction(async (tx) => {
    const [training] = await tx
      .select()
      .from(trainings)
      .where(eq(trainings.id, input.trainingId))
      .for('update');
    if (!training) throw new InputError('That training no longer exists.');
    if (training.status !== 'voting') throw new InputError('The vote on this training is not open.');
    const lines = await tally(tx as unknown as Db, training.id);
    if (lines.length === 0) throw new InputError('This training has no checkpoints to choose from.');
    const top = lines[0]!.votes;
    const tied = lines.filter((l) => l.votes === top);
    let winnerLine = [...tied].sort((a, b) => a.epoch - b.epoch)[0]!;
    let reason: CloseResult['reason'] =
      tied.length === 1 ? 'most-votes' : top === 0 ? 'no-votes-earliest' : 'tie-earlier-epoch';
    if (input.pick) {
      const picked = tied.find((l) => l.checkpointId === input.pick);
      if (!picked) throw new InputError('You can only pick among the checkpoints tied for the most votes.');
      if (tied.length > 1) {
        winnerLine = picked;
        reason = 'tie-picked';
      }
    }
    const [winner] = await tx.select().from(checkpoints).where(eq(checkpoints.id, winnerLine.checkpointId));
    if (!winner) throw new Error(`checkpoint ${winnerLine.checkpointId} vanished during the close`);

    const evaluation = readEvaluation(training);
    const strength = evaluation?.recommendedStrength[winner.id] ?? 0.8;
    const loraKey = artifactKeys.lora(evalLoraName(training.id, winner.epoch));
    // The file the style points at, copied before the commit: if it cannot be, the vote stays open.
    if (!(await store.exists(loraKey))) {
      const data = await store.getBuffer(winner.artifactKey).catch((cause: unknown) => {
        throw new ComicMasterError(
          'style_lora_missing',
          'The winning checkpoint file is missing from the store.',
          {
            cause,
            operatorMessage: `checkpoint ${winner.id}: ${winner.artifactKey} not readable`,
          },
        );
      });
      await store.put(loraKey, data, { contentType: 'application/octet-stream' });
    }
    if (training.kind === 'character') {
      // A character training's winner is the character's LoRA, not a style (src/characters/trained-lora.ts).
      const character = await attachTrainedLora(tx as unknown as Db, training, loraKey);
      const [closed] = await tx
        .update(trainings)
        .set({ status: 'done', votingClosesAt: null })
        .where(eq(trainings.id, training.id))
        .returning();
      return { training: closed!, winner, style: null, character, tally: lines, reason };
    }
    const values = {
      trigger: training.trigger,
      modelFamily: training.modelFamily,
      loraArtifactKey: loraKey,
      checkpointId: winner.id,
      status: 'ready' as const,
      defaultStrength: strength,
    };
    const [existing] = await tx
      .select()
      .from(styles)
      .where(and(eq(styles.guildId, training.guildId), sql`lower(${styles.name}) = lower(${training.name})`))
      .for('update');
    let style: Style | undefined;
    if (existing) {
      [style] = await tx.update(styles).set(values).where(eq(styles.id, existing.id)).returning();
    } else {
      [style] = await tx
        .insert(styles)
        .values({ guildId: training.guildId, name: training.name, createdBy: training.userId, ...values })
        .returning();
    }
    if (!style) throw new Error('style upsert returned no row');
    const [closed] = await tx
      .update(trainings)
      .set({ status: 'done', votingClosesAt: null })
      .where(eq(trainings.id, training.id))
      .returning();
    return { training: closed!, winner, style, character: null, tally: lines, reason };
  });

  return result;
}
