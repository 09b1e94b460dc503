import type { CastMember, Panel, FramePosition } from '../../agents/script-schema.ts';

/**
 * One panel as the prompt writers see it: the characters resolved against the cast bible (so their
 * appearance is the bible's, verbatim), their LoRA triggers, and the panel's camera and scene.
 * Dialogue, captions and SFX are deliberately absent: lettering is added on the page, never painted.
 */
export interface SceneCharacter {
  name: string;
  appearance: readonly string[];
  /** Trigger word of the character's LoRA, when one is in the stack. */
  trigger: string | null;
  pose: string;
  expression: string;
  position: FramePosition;
  gender: 'girl' | 'boy' | 'other';
}

export interface Scene {
  styleTrigger: string | null;
  characters: SceneCharacter[];
  shot: Panel['shot'];
  angle: Panel['angle'];
  setting: string;
  time: string;
  lighting: string;
  action: string;
  safe: boolean;
}

const FEMININE = new Set([
  'girl',
  'girls',
  'woman',
  'women',
  'female',
  'lady',
  'queen',
  'princess',
  'mother',
  'sister',
  'heroine',
  'witch',
]);
const MASCULINE = new Set([
  'boy',
  'boys',
  'man',
  'men',
  'male',
  'guy',
  'king',
  'prince',
  'father',
  'brother',
  'hero',
  'wizard',
]);

/**
 * Danbooru counts people by gender (1girl, 1boy); the script only has appearance tags. A tag word such
 * as "girl", "woman" or "old man" decides; anything else, or both, is "other" (Danbooru's 1other).
 */
export function inferGender(appearance: readonly string[]): SceneCharacter['gender'] {
  let feminine = false;
  let masculine = false;
  for (const tag of appearance) {
    // "1girl" → "girl"; "red-haired woman" → ["red", "haired", "woman"].
    for (const word of tag
      .toLowerCase()
      .replace(/\d+/g, ' ')
      .split(/[^a-z]+/)) {
      if (FEMININE.has(word)) feminine = true;
      if (MASCULINE.has(word)) masculine = true;
    }
  }
  if (feminine === masculine) return 'other';
  return feminine ? 'girl' : 'boy';
}

/**
 * "1girl", "2boys", "multiple girls", "no humans": Danbooru count tags describe the whole picture, not
 * one person, so the prompt writers count the panel themselves and drop these from appearances (the
 * gender inference above still reads them).
 */
export function isCountTag(tag: string): boolean {
  return /^(\d+(girl|boy|other)s?|multiple (girls|boys|others)|no humans)$/i.test(tag.trim());
}

export function findCastMember(cast: readonly CastMember[], name: string): CastMember | undefined {
  const key = name.trim().toLowerCase();
  return cast.find((c) => c.name.trim().toLowerCase() === key);
}

/** Quoted speech inside an action line is dialogue; it belongs in a balloon, not in the picture. */
export function stripQuotedSpeech(text: string): string {
  return text
    .replace(/"[^"]*"|“[^”]*”|„[^“”]*[“”]|«[^»]*»/g, ' ')
    .replace(/\s+([,.;:!?])/g, '$1')
    .replace(/\s{2,}/g, ' ')
    .trim();
}
