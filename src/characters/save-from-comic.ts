import { z } from 'zod';
import type { CastMember, ComicScript } from '../agents/script-schema.ts';
import type { Db } from '../db/client.ts';
import type { Character, Comic } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { APPEARANCE_TAG_MAX, APPEARANCE_TAGS_MAX, CharacterName } from './appearance.ts';
import { createCharacter, findCharacter } from './repository.ts';

/**
 * "Save to cast": a character the script agent invented for one comic becomes a guild character, with
 * the name and appearance tags the script gave it, so later stories can name it and look the same.
 */

export interface UnsavedCastMember {
  /** Position in the script's cast: what the storyboard button carries, stable across restarts. */
  index: number;
  member: CastMember;
}

/**
 * The script's cast members that are not guild characters (by name, whatever its case) and whose
 * name a guild character may have.
 */
export function unsavedCastMembers(
  script: ComicScript,
  guildCast: readonly Pick<Character, 'name'>[],
): UnsavedCastMember[] {
  const known = new Set(guildCast.map((c) => c.name.toLowerCase()));
  return script.cast
    .map((member, index) => ({ index, member }))
    .filter(
      ({ member }) =>
        !known.has(member.name.trim().toLowerCase()) && CharacterName.safeParse(member.name).success,
    );
}

/** The script's tags as a guild character keeps them: trimmed, lower case, each once. */
const SavedAppearance = z
  .array(z.string())
  .transform((tags) => [
    ...new Set(tags.map((t) => t.trim().replace(/\s+/g, ' ').toLowerCase()).filter((t) => t !== '')),
  ])
  .pipe(z.array(z.string().max(APPEARANCE_TAG_MAX)).min(1).max(APPEARANCE_TAGS_MAX));

export type SaveResult = { created: true; character: Character } | { created: false; character: Character };

/**
 * Creates the guild character for cast member `index` of the comic's script, owned by `ownerId`.
 * Idempotent: when the guild already has a character of that name (saved by an earlier click, or
 * made with /character create), that one is returned with created: false.
 */
export async function saveCastMember(
  db: Db,
  comic: Comic,
  index: number,
  ownerId: string,
): Promise<SaveResult> {
  if (!comic.guildId) throw new InputError('Only comics made in a server can add to its cast.');
  const member = comic.script?.cast[index];
  if (!member) throw new InputError('That character is not in this comic’s script any more.');
  const name = CharacterName.parse(member.name);
  const existing = await findCharacter(db, comic.guildId, name);
  if (existing) return { created: false, character: existing };
  try {
    const character = await createCharacter(db, {
      guildId: comic.guildId,
      name,
      appearance: SavedAppearance.parse(member.appearance),
      ownerId,
    });
    return { created: true, character };
  } catch (error) {
    // Two clicks at once: the unique index lets one insert win; the other finds its row.
    const winner = await findCharacter(db, comic.guildId, name);
    if (winner) return { created: false, character: winner };
    throw error;
  }
}
