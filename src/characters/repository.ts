import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { characters, type Character } from '../db/schema.ts';
import { InputError } from '../errors.ts';

/**
 * The guild's cast, as rows. Names are unique per guild whatever their case: the table's unique index
 * on (guild_id, lower(name)) decides, so two people creating "Mira" at once get one row and one refusal.
 */

const UNIQUE_VIOLATION = '23505';

function isUniqueViolation(error: unknown): boolean {
  for (let e: unknown = error; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    if ((e as { code?: unknown }).code === UNIQUE_VIOLATION) return true;
  }
  return false;
}

export interface NewCharacter {
  guildId: string;
  name: string;
  appearance: string[];
  ownerId: string;
  referenceImageKeys?: string[];
  /** Set when reference images are stored under the row's id before the row exists. */
  id?: string;
}

export async function createCharacter(db: Db, input: NewCharacter): Promise<Character> {
  try {
    const [row] = await db
      .insert(characters)
      .values({
        ...(input.id ? { id: input.id } : {}),
        guildId: input.guildId,
        name: input.name,
        appearance: input.appearance,
        ownerId: input.ownerId,
        referenceImageKeys: input.referenceImageKeys ?? [],
      })
      .returning();
    if (!row) throw new Error('insert into characters returned no row');
    return row;
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new InputError(
        `There is already a character called “${input.name}” on this server. Pick another name, or \`/character edit\` it.`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

export async function listCharacters(db: Db, guildId: string): Promise<Character[]> {
  return db
    .select()
    .from(characters)
    .where(eq(characters.guildId, guildId))
    .orderBy(asc(sql`lower(${characters.name})`));
}

/** By name, whatever its case; null when the guild has no such character. */
export async function findCharacter(db: Db, guildId: string, name: string): Promise<Character | null> {
  const [row] = await db
    .select()
    .from(characters)
    .where(and(eq(characters.guildId, guildId), sql`lower(${characters.name}) = lower(${name.trim()})`));
  return row ?? null;
}

/** Like findCharacter, but a missing character is an answer for the person who asked. */
export async function requireCharacter(db: Db, guildId: string, name: string): Promise<Character> {
  const row = await findCharacter(db, guildId, name);
  if (!row)
    throw new InputError(
      `There is no character called “${name.trim()}” on this server. \`/character list\` shows the cast.`,
    );
  return row;
}

export type CharacterChanges = Partial<
  Pick<Character, 'appearance' | 'referenceImageKeys' | 'loraArtifactKey' | 'loraTrigger' | 'loraStrength'>
>;

export async function updateCharacter(db: Db, id: string, changes: CharacterChanges): Promise<Character> {
  const [row] = await db.update(characters).set(changes).where(eq(characters.id, id)).returning();
  if (!row) throw new InputError('That character was deleted in the meantime.');
  return row;
}

export async function deleteCharacter(db: Db, id: string): Promise<boolean> {
  const rows = await db.delete(characters).where(eq(characters.id, id)).returning({ id: characters.id });
  return rows.length > 0;
}
