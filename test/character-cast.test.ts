/**
 * The guild's cast in a comic: a story naming two guild characters (in any case) gets them as the
 * script's cast with their appearance verbatim, and every panel they are on carries their LoRAs (under
 * the combined cap), their triggers and appearance tags in the prompt, and their reference image.
 * Runs the real script worker on PostgreSQL and Redis, with the template writer (no LLM).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { charactersNamedIn, CHARACTER_LORA_TOTAL_CAP } from '../src/characters/cast.ts';
import { createCharacter, updateCharacter } from '../src/characters/repository.ts';
import { startComic, type StartComicInput } from '../src/comic/flow/index.ts';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import { getComic } from '../src/db/comics.ts';
import { rendersOfComic } from '../src/db/renders.ts';
import { createPipelineHarness, type PipelineHarness } from './helpers/pipeline.ts';

const GUILD = '900000000000000001';
let h: PipelineHarness;

beforeAll(async () => {
  h = await createPipelineHarness('character-cast');
  const mira = await createCharacter(h.deps.db, {
    guildId: GUILD,
    name: 'Mira',
    appearance: ['1girl', 'short red hair', 'green eyes', 'yellow raincoat'],
    ownerId: 'u1',
    referenceImageKeys: [`characters/${GUILD}/mira/ref-a.png`],
  });
  await updateCharacter(h.deps.db, mira.id, {
    loraArtifactKey: 'loras/mira_v1.safetensors',
    loraTrigger: 'mira_rr',
    loraStrength: 0.7,
  });
  const oskar = await createCharacter(h.deps.db, {
    guildId: GUILD,
    name: 'Oskar',
    appearance: ['old man', 'grey beard', 'black trench coat'],
    ownerId: 'u2',
  });
  await updateCharacter(h.deps.db, oskar.id, {
    loraArtifactKey: 'loras/oskar_v2.safetensors',
    loraTrigger: 'oskar_gb',
    loraStrength: 0.7,
  });
  // Not named in the story: must stay out of the comic.
  await createCharacter(h.deps.db, {
    guildId: GUILD,
    name: 'Pip',
    appearance: ['small round robot'],
    ownerId: 'u2',
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe('guild characters in a comic', () => {
  it('finds names as whole words, in any case, in story order', () => {
    const cast = [{ name: 'Mira' }, { name: 'Oskar' }, { name: 'Al' }];
    expect(
      charactersNamedIn("OSKAR chases mira's bag over the roofs; Alfred watches", cast).map((c) => c.name),
    ).toEqual(['Oskar', 'Mira']);
  });

  it('casts them and carries their LoRAs, triggers and appearance into every panel they are on', async () => {
    const input: StartComicInput = {
      guildId: GUILD,
      channelId: '900000000000000002',
      userId: 'u1',
      prompt: 'mira races OSKAR across the rainy rooftops to deliver a letter before midnight. Mira wins.',
      options: { pages: 1, panelsPerPage: 4, style: null, model: 'illustrious', rtl: false, safe: true },
      limits: { perUser: 5, perGuild: 5 },
    };
    const started = await startComic(h.deps, input);
    if (!started.ok) throw new Error(started.reason);
    await processScriptJob(h.deps, { comicId: started.comic.id });

    const comic = await getComic(h.deps.db, started.comic.id);
    const cast = comic!.script!.cast;
    expect(cast.find((c) => c.name === 'Mira')?.appearance).toEqual([
      '1girl',
      'short red hair',
      'green eyes',
      'yellow raincoat',
    ]);
    expect(cast.find((c) => c.name === 'Oskar')?.appearance).toEqual([
      'old man',
      'grey beard',
      'black trench coat',
    ]);
    expect(cast.some((c) => c.name === 'Pip')).toBe(false);

    const renders = await rendersOfComic(h.deps.db, started.comic.id);
    expect(renders).toHaveLength(4);
    let miraPanels = 0;
    let oskarPanels = 0;
    let bothPanels = 0;
    for (const { render } of renders) {
      const recipe = render.recipe;
      const on = new Set(recipe.panel.characters.map((c) => c.name));
      const loras = Object.fromEntries(recipe.loras.map((l) => [l.name, l]));
      if (on.has('Mira') && on.has('Oskar')) bothPanels++;
      if (on.has('Mira')) {
        miraPanels++;
        expect(loras['mira_v1.safetensors']).toMatchObject({
          trigger: 'mira_rr',
          artifactKey: 'loras/mira_v1.safetensors',
        });
        expect(recipe.positive).toContain('mira_rr');
        for (const tag of ['short red hair', 'green eyes', 'yellow raincoat'])
          expect(recipe.positive).toContain(tag);
        expect(recipe.references?.map((r) => r.label)).toContain('Mira');
      } else {
        expect(loras['mira_v1.safetensors']).toBeUndefined();
        expect(recipe.positive).not.toContain('mira_rr');
      }
      if (on.has('Oskar')) {
        oskarPanels++;
        expect(loras['oskar_v2.safetensors']).toMatchObject({ trigger: 'oskar_gb' });
        expect(recipe.positive).toContain('oskar_gb');
        for (const tag of ['grey beard', 'black trench coat']) expect(recipe.positive).toContain(tag);
      } else {
        expect(loras['oskar_v2.safetensors']).toBeUndefined();
      }
      // Two characters at 0.7 each would be 1.4: the panel's character LoRAs stay under the cap.
      const characterTotal = recipe.loras.reduce((sum, l) => sum + l.strength, 0);
      expect(characterTotal).toBeLessThanOrEqual(CHARACTER_LORA_TOTAL_CAP + 1e-9);
      for (const l of recipe.loras) expect(l.strength).toBeGreaterThan(0);
    }
    expect(miraPanels).toBeGreaterThan(0);
    expect(oskarPanels).toBeGreaterThan(0);
    // At least one panel holds both, so the cap above was exercised.
    expect(bothPanels).toBeGreaterThan(0);
  }, 60_000);
});
