import type { Angle, Shot } from '../../agents/script-schema.ts';
import type { FamilyProfile } from '../families.ts';
import { stripQuotedSpeech, type Scene, type SceneCharacter } from './scene.ts';

/**
 * Danbooru-style prompts for Illustrious XL and NoobAI-XL: comma-separated tags, the style trigger
 * first (the LoRA was trained with it in first place), then quality tags, counts, each character's
 * fixed appearance, then camera and scene.
 */

const SHOT_TAGS: Record<Shot, string[]> = {
  'extreme-close-up': ['extreme close-up', 'close-up', 'face focus'],
  'close-up': ['close-up', 'portrait'],
  medium: ['upper body'],
  cowboy: ['cowboy shot'],
  full: ['full body'],
  wide: ['wide shot'],
  establishing: ['scenery', 'wide shot'],
};

const ANGLE_TAGS: Record<Angle, string[]> = {
  'eye-level': [],
  'from-above': ['from above'],
  'from-below': ['from below'],
  'birds-eye': ['from above', 'aerial view'],
  'worms-eye': ['from below', "worm's-eye view"],
  dutch: ['dutch angle'],
  'over-the-shoulder': ['over-the-shoulder shot', 'from behind'],
};

/** 1girl, 2girls … 5girls, then "multiple girls", as Danbooru counts. */
function countTag(n: number, singular: string): string | null {
  if (n === 0) return null;
  if (n === 1) return `1${singular}`;
  if (n <= 5) return `${n}${singular}s`;
  return `multiple ${singular}s`;
}

export function countTags(characters: readonly SceneCharacter[]): string[] {
  if (characters.length === 0) return ['no humans'];
  const by = (g: SceneCharacter['gender']) => characters.filter((c) => c.gender === g).length;
  return [countTag(by('girl'), 'girl'), countTag(by('boy'), 'boy'), countTag(by('other'), 'other')].filter(
    (t): t is string => t !== null,
  );
}

/** "Mira kicks the door open. Dust flies" → ["Mira kicks the door open", "Dust flies"]. */
export function shortPhrases(text: string): string[] {
  return stripQuotedSpeech(text)
    .split(/[.;!?\n]+/)
    .map((s) => s.trim().replace(/,+$/, ''))
    .filter((s) => s !== '');
}

/** Keep the first of equal tags (case-insensitive): the earlier one carries more weight in CLIP. */
function dedupe(tags: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of tags) {
    const tag = raw.trim();
    const key = tag.toLowerCase();
    if (tag === '' || seen.has(key)) continue;
    seen.add(key);
    out.push(tag);
  }
  return out;
}

export function tagPositive(scene: Scene, profile: FamilyProfile): string {
  const tags: string[] = [];
  if (scene.styleTrigger) tags.push(scene.styleTrigger);
  tags.push(...profile.qualityTags);
  // Pony's source_* tags steer the look (anime, cartoon) and sit right after the score ladder.
  tags.push(...(profile.sourceTags ?? []));
  if (scene.safe) tags.push(...profile.safePositive);
  tags.push(...countTags(scene.characters));
  for (const c of scene.characters) {
    if (c.trigger) tags.push(c.trigger);
    tags.push(...c.appearance, c.expression, c.pose);
  }
  tags.push(...SHOT_TAGS[scene.shot], ...ANGLE_TAGS[scene.angle]);
  tags.push(...shortPhrases(scene.setting), scene.time, scene.lighting);
  tags.push(...shortPhrases(scene.action));
  return dedupe(tags).join(', ');
}

export function tagNegative(scene: Scene, profile: FamilyProfile): string {
  return dedupe([...profile.negative, ...(scene.safe ? profile.safeNegative : [])]).join(', ');
}
