import type { Character } from '../db/schema.ts';

/**
 * The word a character LoRA learns the character under. Kohya keeps it first in every caption and the
 * prompt builder puts it before the character's appearance tags, so it must be one word nobody types
 * by accident: the name's letters plus four characters of the row id ("Mira" → "mira_3fa2"), the
 * same for every training of that character. A character that already has a LoRA keeps its trigger.
 */
export function characterToken(character: Pick<Character, 'id' | 'name' | 'loraTrigger'>): string {
  if (character.loraTrigger && TOKEN_PATTERN.test(character.loraTrigger)) return character.loraTrigger;
  const letters = character.name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '')
    .slice(0, 24);
  const suffix = character.id.replace(/-/g, '').slice(0, 4).toLowerCase();
  // A name in another script has no ASCII letters: the token is then only the marker and the id.
  return letters ? `${letters}_${suffix}` : `chr_${suffix}`;
}

/** The trainer's trigger rule (src/commands/train.ts TRIGGER_PATTERN). */
const TOKEN_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;
