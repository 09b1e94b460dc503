import { LIMITS, type Panel, type Shot } from '../agents/script-schema.ts';
import type { BuildRecipeInput } from '../comic/prompt-builder.ts';
import type { ReferenceImage } from '../comic/recipe.ts';
import type { Character } from '../db/schema.ts';

/**
 * From a guild's cast to what one comic and one panel need: which characters a story names, the
 * character LoRAs of a panel (strength-capped so two characters do not drown each other or the
 * style), and the reference images of a panel with IPAdapter weights by shot.
 */

/**
 * The guild characters a story names: case-insensitive, whole words ("Mira's" names Mira, "Miranda"
 * does not), in the order the story first names them, at most the cast limit.
 */
export function charactersNamedIn<C extends Pick<Character, 'name'>>(story: string, cast: readonly C[]): C[] {
  const found: { character: C; at: number }[] = [];
  for (const character of cast) {
    const escaped = character.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
    const match = new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, 'iu').exec(story);
    if (match) found.push({ character, at: match.index });
  }
  return found
    .sort((a, b) => a.at - b.at)
    .slice(0, LIMITS.castMax)
    .map((f) => f.character);
}

/** A character LoRA's strength on its own: the seed research's 0.5–0.7 band, 0.6 when unset. */
export const CHARACTER_LORA_DEFAULT = 0.6;
export const CHARACTER_LORA_MIN = 0.5;
export const CHARACTER_LORA_MAX = 0.7;
/**
 * The sum of the character LoRA strengths in one panel. Two characters at 0.7 would patch 1.4 on top
 * of the style's 0.8, and each character's features then bleed into the other; above this cap every
 * character LoRA in the panel is scaled down by the same factor (two at 0.7 → 0.6 each; three at 0.6
 * → 0.4 each). With the style at 0.8 the whole stack stays at or under 2.0.
 */
export const CHARACTER_LORA_TOTAL_CAP = 1.2;

type CharacterLora = NonNullable<BuildRecipeInput['characterLoras']>[string];

/** The LoRA of one character as buildRecipe takes it, or null when it has none. */
export function characterLoraOf(character: Character): CharacterLora | null {
  if (!character.loraArtifactKey || !character.loraTrigger) return null;
  const file = character.loraArtifactKey.split('/').pop();
  if (!file) return null;
  const strength = Math.min(
    CHARACTER_LORA_MAX,
    Math.max(CHARACTER_LORA_MIN, character.loraStrength ?? CHARACTER_LORA_DEFAULT),
  );
  return { name: file, strength, trigger: character.loraTrigger, artifactKey: character.loraArtifactKey };
}

const byName = (cast: readonly Character[], name: string) =>
  cast.find((c) => c.name.toLowerCase() === name.trim().toLowerCase());

/** The LoRAs of the guild characters on this panel, keyed by name, under the combined cap. */
export function characterLorasForPanel(
  panel: Pick<Panel, 'characters'>,
  cast: readonly Character[],
): Record<string, CharacterLora> {
  const present: [string, CharacterLora][] = [];
  for (const pc of panel.characters) {
    const character = byName(cast, pc.name);
    const lora = character ? characterLoraOf(character) : null;
    if (character && lora && !present.some(([, l]) => l.name === lora.name))
      present.push([character.name, lora]);
  }
  const total = present.reduce((sum, [, l]) => sum + l.strength, 0);
  const scale = total > CHARACTER_LORA_TOTAL_CAP ? CHARACTER_LORA_TOTAL_CAP / total : 1;
  return Object.fromEntries(
    present.map(([name, l]) => [name, { ...l, strength: Math.round(l.strength * scale * 100) / 100 }]),
  );
}

/**
 * IPAdapter weight by shot: a close-up shows the face the reference shows, so it can follow it
 * closely; a wide shot is mostly setting, where a strong reference would paste a portrait into it.
 */
export const REFERENCE_WEIGHT_BY_SHOT: Record<Shot, number> = {
  'extreme-close-up': 0.85,
  'close-up': 0.8,
  medium: 0.65,
  cowboy: 0.6,
  full: 0.5,
  wide: 0.4,
  establishing: 0.35,
};
/** References per panel: IPAdapter has no notion of who is who, so more faces blur into each other. */
export const MAX_REFERENCES_PER_PANEL = 2;

/**
 * The first reference image of each guild character on the panel (at most two), weighted by shot.
 * Two references share the conditioning: each gets the shot weight divided by √2.
 */
export function referencesForPanel(
  panel: Pick<Panel, 'characters' | 'shot'>,
  cast: readonly Character[],
): ReferenceImage[] {
  const chosen: Character[] = [];
  for (const pc of panel.characters) {
    const character = byName(cast, pc.name);
    if (character && character.referenceImageKeys.length > 0 && !chosen.includes(character))
      chosen.push(character);
  }
  const refs = chosen.slice(0, MAX_REFERENCES_PER_PANEL);
  const weight = REFERENCE_WEIGHT_BY_SHOT[panel.shot] / Math.sqrt(Math.max(1, refs.length));
  return refs.map((c) => ({
    label: c.name,
    imageKey: c.referenceImageKeys[0]!,
    weight: Math.round(weight * 100) / 100,
  }));
}
