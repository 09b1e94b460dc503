import type { Angle, FramePosition, Shot } from '../../agents/script-schema.ts';
import type { DrawnText } from '../recipe.ts';
import { stripQuotedSpeech, type Scene, type SceneCharacter } from './scene.ts';

/**
 * Natural-language prompts for FLUX.1-dev, whose T5 encoder reads sentences, not tag soup. The style
 * trigger still comes first; FLUX runs without CFG, so there is no negative prompt.
 */

const SHOT_WORDS: Record<Shot, string> = {
  'extreme-close-up': 'extreme close-up',
  'close-up': 'close-up',
  medium: 'medium',
  cowboy: 'medium-long (cowboy)',
  full: 'full-body',
  wide: 'wide',
  establishing: 'wide establishing',
};

const ANGLE_WORDS: Record<Angle, string> = {
  'eye-level': 'eye level',
  'from-above': 'above',
  'from-below': 'below',
  'birds-eye': "a bird's-eye view",
  'worms-eye': "a worm's-eye view",
  dutch: 'a tilted dutch angle',
  'over-the-shoulder': 'over the shoulder',
};

const WHERE: Record<FramePosition, string> = {
  left: 'On the left',
  centre: 'In the centre',
  right: 'On the right',
};

function sentence(text: string): string {
  const t = text.trim().replace(/[,;:]+$/, '');
  if (t === '') return '';
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

function describeCharacter(c: SceneCharacter): string {
  const look = [c.trigger, ...c.appearance].filter((s): s is string => Boolean(s)).join(', ');
  const parts = [`${WHERE[c.position]}, ${c.name} (${look})`];
  if (c.pose) parts.push(c.pose);
  if (c.expression) parts.push(`looking ${c.expression}`);
  return sentence(parts.join(', '));
}

const SAYS: Record<DrawnText['kind'], string> = {
  speech: 'a speech balloon',
  thought: 'a cloud-shaped thought balloon',
  shout: 'a jagged shout balloon',
  whisper: 'a dashed whisper balloon',
  caption: 'a rectangular caption box',
  sfx: 'bold hand-drawn sound-effect lettering',
};

/**
 * Lettering the model paints (FLUX.2 renders legible text): each balloon, caption or sound effect as
 * a sentence with the exact words in double quotes, which is how the model is told to spell them.
 */
export function drawnTextSentences(drawn: readonly DrawnText[]): string[] {
  return drawn.map((d) => {
    const where = d.speaker ? ` coming from ${d.speaker}` : '';
    const words = d.text.replace(/"/g, "'");
    return d.kind === 'sfx'
      ? `The panel shows ${SAYS.sfx} that reads "${words}".`
      : `The panel has ${SAYS[d.kind]}${where} with clean comic lettering that reads "${words}".`;
  });
}

export function naturalPositive(scene: Scene, drawn: readonly DrawnText[] = []): string {
  const out: string[] = [];
  const opening = `A comic book panel, ${SHOT_WORDS[scene.shot]} shot from ${ANGLE_WORDS[scene.angle]}:`;
  out.push(scene.styleTrigger ? `${scene.styleTrigger}. ${opening}` : opening);
  if (scene.characters.length === 0) out.push('No people are in the frame.');
  for (const c of scene.characters) out.push(describeCharacter(c));
  out.push(sentence(stripQuotedSpeech(scene.action)));
  const where = [scene.setting, scene.time].filter((s) => s.trim() !== '').join(', ');
  if (where !== '') out.push(sentence(`Setting: ${where}`));
  if (scene.lighting.trim() !== '') out.push(sentence(`Lighting: ${scene.lighting}`));
  out.push(...drawnTextSentences(drawn));
  // Positive wording only: T5 handles negation poorly, and "no speech bubbles" tends to summon them.
  if (scene.safe) out.push('Everyone is fully clothed; a safe-for-work image.');
  return out.filter((s) => s !== '').join(' ');
}
