import { and, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.ts';
import { characters, type Character, type Training } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { CHARACTER_LORA_DEFAULT } from './cast.ts';

/**
 * The end of a character training: the checkpoint the vote chose becomes the character's LoRA, with
 * the training's trigger (the character's token) and the default strength of the seed research's
 * 0.5–0.7 band. Called by the vote close (src/evaluation/vote.ts) inside its transaction, so the
 * training is marked done only when the character got its LoRA.
 */

/** What `/train character` keeps in trainings.config to find the character again. */
export const CharacterTrainingConfig = z.object({ characterId: z.uuid() });

export async function attachTrainedLora(
  db: Db,
  training: Training,
  loraArtifactKey: string,
): Promise<Character> {
  if (training.kind !== 'character')
    throw new Error(`training ${training.id} is a ${training.kind} training, not a character's`);
  const byId = CharacterTrainingConfig.safeParse(training.config);
  // The row id survives a rename; the name is the fallback for a config written without it.
  const where = byId.success
    ? and(eq(characters.id, byId.data.characterId), eq(characters.guildId, training.guildId))
    : and(eq(characters.guildId, training.guildId), sql`lower(${characters.name}) = lower(${training.name})`);
  const [row] = await db
    .update(characters)
    .set({ loraArtifactKey, loraTrigger: training.trigger, loraStrength: CHARACTER_LORA_DEFAULT })
    .where(where)
    .returning();
  if (!row) {
    throw new InputError(
      `The character **${training.name}** was deleted, so there is nothing to give the trained LoRA to.`,
      {
        operatorMessage: `training ${training.id}: character ${byId.success ? byId.data.characterId : training.name} not found at vote close`,
      },
    );
  }
  return row;
}
