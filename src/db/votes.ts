import { and, asc, count, desc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import type { Db } from './client.ts';
import { type Vote, checkpoints, trainings, votes } from './schema.ts';

export const CastVoteInput = z.object({
  trainingId: z.uuid(),
  memberId: z.string().min(1).max(64),
  checkpointId: z.uuid(),
});
export type CastVoteInput = z.infer<typeof CastVoteInput>;

/**
 * Records a member's vote for one checkpoint of a training. One vote per member per training: voting
 * again replaces the earlier choice (last write wins). Refused once the vote is closed, or for a
 * checkpoint of another training.
 *
 * The training row is read FOR SHARE, so closing the vote (an UPDATE of that row) waits for votes in
 * progress and no vote slips in after the close.
 */
export async function castVote(db: Db, input: CastVoteInput): Promise<Vote> {
  const parsed = CastVoteInput.safeParse(input);
  if (!parsed.success) {
    throw new InputError('That vote could not be read.', {
      cause: parsed.error,
      operatorMessage: parsed.error.message,
    });
  }
  const { trainingId, memberId, checkpointId } = parsed.data;

  return db.transaction(async (tx) => {
    const [training] = await tx
      .select({ status: trainings.status })
      .from(trainings)
      .where(eq(trainings.id, trainingId))
      .for('share');
    if (!training) throw new InputError('That training no longer exists.');
    if (training.status !== 'voting') throw new InputError('Voting on this training is closed.');

    const [checkpoint] = await tx
      .select({ id: checkpoints.id })
      .from(checkpoints)
      .where(and(eq(checkpoints.id, checkpointId), eq(checkpoints.trainingId, trainingId)));
    if (!checkpoint) throw new InputError('That checkpoint is not part of this training.');

    const [row] = await tx
      .insert(votes)
      .values({ trainingId, memberId, checkpointId })
      .onConflictDoUpdate({
        target: [votes.trainingId, votes.memberId],
        set: { checkpointId, updatedAt: sql`now()` },
      })
      .returning();
    if (!row) throw new Error('vote upsert returned no row');
    return row;
  });
}

export interface TallyLine {
  checkpointId: string;
  epoch: number;
  votes: number;
}

/** Votes per checkpoint of the training, every checkpoint listed (0 when nobody chose it), most first, ties by epoch. */
export async function tally(db: Db, trainingId: string): Promise<TallyLine[]> {
  const votesCount = count(votes.memberId);
  return db
    .select({ checkpointId: checkpoints.id, epoch: checkpoints.epoch, votes: votesCount })
    .from(checkpoints)
    .leftJoin(votes, eq(votes.checkpointId, checkpoints.id))
    .where(eq(checkpoints.trainingId, trainingId))
    .groupBy(checkpoints.id, checkpoints.epoch)
    .orderBy(desc(votesCount), asc(checkpoints.epoch));
}
