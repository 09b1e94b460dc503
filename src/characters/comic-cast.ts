import type { CastMember, ComicScript } from '../agents/script-schema.ts';
import { RenderRecipe } from '../comic/recipe.ts';
import type { BuildRecipeInput } from '../comic/prompt-builder.ts';
import type { Db } from '../db/client.ts';
import type { Character } from '../db/schema.ts';
import { castMemberOf } from './appearance.ts';
import { characterLorasForPanel, charactersNamedIn, referencesForPanel } from './cast.ts';
import { listCharacters } from './repository.ts';

/**
 * The glue between a guild's cast and the comic pipeline (src/comic/flow/script-worker.ts): which
 * characters the story names (they go to the script agent as its cast), and per panel, the LoRAs and
 * reference images of the guild characters on it.
 */

export interface ComicCast {
  /** Guild characters the story names, in the order it names them. */
  characters: Character[];
  /** What the script agent receives: names and appearance kept verbatim. */
  castMembers: CastMember[];
}

export async function loadComicCast(db: Db, guildId: string | null, story: string): Promise<ComicCast> {
  if (guildId === null) return { characters: [], castMembers: [] };
  const named = charactersNamedIn(story, await listCharacters(db, guildId));
  return { characters: named, castMembers: named.map(castMemberOf) };
}

/**
 * The guild characters that are in a written script's cast. A script stored before a restart is
 * reused as it is, so this is read from the script rather than from the story.
 */
export async function guildCharactersInScript(
  db: Db,
  guildId: string | null,
  script: ComicScript,
): Promise<Character[]> {
  if (guildId === null) return [];
  const names = new Set(script.cast.map((c) => c.name.toLowerCase()));
  return (await listCharacters(db, guildId)).filter((c) => names.has(c.name.toLowerCase()));
}

/** The character LoRAs buildRecipe should stack for one panel (capped; see CHARACTER_LORA_TOTAL_CAP). */
export function characterLorasFor(
  script: ComicScript,
  page: number,
  panel: number,
  cast: readonly Character[],
): NonNullable<BuildRecipeInput['characterLoras']> {
  const scriptPanel = script.pages[page - 1]?.panels[panel - 1];
  return scriptPanel ? characterLorasForPanel(scriptPanel, cast) : {};
}

/** The recipe with the panel's character reference images added (unchanged when there are none). */
export function withCharacterReferences(
  recipe: RenderRecipe,
  script: ComicScript,
  cast: readonly Character[],
): RenderRecipe {
  const scriptPanel = script.pages[recipe.panel.page - 1]?.panels[recipe.panel.panel - 1];
  if (!scriptPanel) return recipe;
  const refs = referencesForPanel(scriptPanel, cast);
  if (refs.length === 0) return recipe;
  const existing = recipe.references ?? [];
  const merged = [...existing, ...refs.filter((r) => !existing.some((e) => e.imageKey === r.imageKey))].slice(
    0,
    4,
  );
  return RenderRecipe.parse({ ...recipe, references: merged });
}
