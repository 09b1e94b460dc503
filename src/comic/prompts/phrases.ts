import type { Angle, Shot } from '../../agents/script-schema.ts';
import type { FamilyProfile } from '../families.ts';
import { shortPhrases } from './tags.ts';
import { stripQuotedSpeech, type Scene, type SceneCharacter } from './scene.ts';

/**
 * Descriptive phrases for bases trained on web captions (SDXL 1.0 base, Playground v2.5): CLIP reads
 * short comma-separated phrases well, but these models never saw Danbooru tags such as "1girl" or
 * "cowboy shot", so the camera and the people are said in plain words.
 */

const SHOT_PHRASES: Record<Shot, string> = {
  'extreme-close-up': 'extreme close-up of a face',
  'close-up': 'close-up portrait',
  medium: 'medium shot, waist up',
  cowboy: 'medium-long shot, thighs up',
  full: 'full-body shot',
  wide: 'wide shot',
  establishing: 'wide establishing shot of the scenery',
};

const ANGLE_PHRASES: Record<Angle, string | null> = {
  'eye-level': null,
  'from-above': 'seen from above',
  'from-below': 'low angle, seen from below',
  'birds-eye': "bird's-eye view",
  'worms-eye': "worm's-eye view",
  dutch: 'tilted dutch angle',
  'over-the-shoulder': 'over-the-shoulder view',
};

function peopleCount(n: number): string {
  if (n === 0) return 'no people';
  if (n === 1) return 'one person';
  if (n === 2) return 'two people';
  if (n === 3) return 'three people';
  return 'a group of people';
}

function describe(c: SceneCharacter): string {
  const look = [c.trigger, ...c.appearance].filter((s): s is string => Boolean(s)).join(' ');
  const doing = [c.expression, c.pose].filter((s) => s.trim() !== '').join(' and ');
  return `${c.position === 'centre' ? 'in the centre' : `on the ${c.position}`} ${look}${doing ? `, ${doing}` : ''}`;
}

export function phrasePositive(scene: Scene, profile: FamilyProfile): string {
  const parts: string[] = [];
  if (scene.styleTrigger) parts.push(scene.styleTrigger);
  parts.push(...profile.qualityTags);
  parts.push(SHOT_PHRASES[scene.shot]);
  const angle = ANGLE_PHRASES[scene.angle];
  if (angle) parts.push(angle);
  parts.push(peopleCount(scene.characters.length));
  for (const c of scene.characters) parts.push(describe(c));
  parts.push(...shortPhrases(stripQuotedSpeech(scene.action)));
  parts.push(...shortPhrases(scene.setting), scene.time, scene.lighting);
  if (scene.safe) parts.push('fully clothed', 'safe for work');
  return parts
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .join(', ');
}
