import { z } from 'zod';
import { CastMember, LIMITS } from '../agents/script-schema.ts';

/**
 * What a person may type for a character: a name the script agent and the prompt builder can use
 * verbatim, and an appearance as short comma-separated tags ("red hair, green eyes, yellow raincoat").
 * The limits are the cast bible's (src/agents/script-schema.ts), so a guild character always fits a script.
 */

export const CHARACTER_NAME_MAX = 40;
export const APPEARANCE_TEXT_MAX = 500;
export const APPEARANCE_TAG_MAX = 40;
export const APPEARANCE_TAGS_MAX = LIMITS.appearanceTags;

/** Letters (any script), digits, spaces, and the few marks names carry (O'Neil, Jean-Luc, Dr. Vex). */
export const CharacterName = z
  .string()
  .trim()
  .min(1, 'give the character a name')
  .max(CHARACTER_NAME_MAX, `a name has at most ${CHARACTER_NAME_MAX} characters`)
  .regex(/^[\p{L}\p{N}][\p{L}\p{N} '’.-]*$/u, "a name uses letters, digits, spaces and ' . - only")
  .transform((name) => name.replace(/\s+/g, ' '));

/** "Red hair,  green eyes ,yellow raincoat" → ["red hair", "green eyes", "yellow raincoat"]. */
export const AppearanceText = z
  .string()
  .max(APPEARANCE_TEXT_MAX, `the appearance has at most ${APPEARANCE_TEXT_MAX} characters`)
  .transform((text) =>
    text
      .split(/[,\n]/)
      .map((tag) => tag.trim().replace(/\s+/g, ' ').toLowerCase())
      .filter((tag) => tag !== ''),
  )
  .pipe(
    z
      .array(
        z
          .string()
          .max(APPEARANCE_TAG_MAX, `each appearance tag has at most ${APPEARANCE_TAG_MAX} characters`),
      )
      .min(1, 'describe the look as comma-separated tags, e.g. "red hair, green eyes, yellow raincoat"')
      .max(APPEARANCE_TAGS_MAX, `at most ${APPEARANCE_TAGS_MAX} appearance tags`),
  )
  // The same tag twice only weighs the prompt; keep the first.
  .transform((tags) => [...new Set(tags)]);

/** The role a guild character plays in a script when the story does not say (the schema needs one). */
export const GUILD_CHARACTER_ROLE = 'recurring character from the server cast';

/** A guild character as the script agent's cast member. */
export function castMemberOf(character: { name: string; appearance: readonly string[] }): CastMember {
  return CastMember.parse({
    name: character.name,
    role: GUILD_CHARACTER_ROLE,
    appearance: [...character.appearance],
  });
}
