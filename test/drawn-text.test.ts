/**
 * Lettering drawn by the model: `/comic new lettering:model` (FLUX.2 only) stores the choice, the
 * script worker builds recipes whose prompt spells out each balloon, and the page assembler leaves
 * those panels unlettered. Any other family is refused with the reason. Real PostgreSQL and Redis,
 * the template writer (no LLM), the storyboard renderer (no GPU).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startComic, type StartComicInput } from '../src/comic/flow/index.ts';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import { layoutPage } from '../src/comic/layout.ts';
import { assemblePage } from '../src/comic/page.ts';
import { parseLocalComicOptions } from '../src/comic/run-comic.ts';
import { getComic } from '../src/db/comics.ts';
import { rendersOfComic } from '../src/db/renders.ts';
import { StoryboardRenderer } from '../src/gpu/storyboard-renderer.ts';
import { createPipelineHarness, TEST_GEOMETRY, type PipelineHarness } from './helpers/pipeline.ts';

const GUILD = '900000000000000011';
let h: PipelineHarness;

beforeAll(async () => {
  h = await createPipelineHarness('drawn-text');
}, 60_000);

afterAll(async () => {
  await h?.close();
});

function request(model: 'flux2' | 'illustrious', lettering: 'overlay' | 'model'): StartComicInput {
  return {
    guildId: GUILD,
    channelId: '900000000000000012',
    userId: `u-${model}-${lettering}`,
    prompt: 'Two rival bakers argue over the last lemon tart while the oven starts to smoke.',
    options: { pages: 1, panelsPerPage: 3, style: null, model, rtl: false, safe: true, lettering },
    limits: { perUser: 5, perGuild: 5 },
  };
}

describe('lettering drawn by the model', () => {
  it('refuses lettering:model with a family that cannot paint text, saying what to choose', async () => {
    const refused = await startComic(h.deps, request('illustrious', 'model'));
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.reason).toMatch(/model:flux2/);
      expect(refused.reason).toMatch(/Illustrious XL/);
      expect(refused.reason).toMatch(/lettering:overlay/);
    }
    expect(() =>
      parseLocalComicOptions({ story: 'A cat opens a bakery.', model: 'illustrious', lettering: 'model' }),
    ).toThrow(/--model flux2/);
    expect(
      parseLocalComicOptions({ story: 'A cat opens a bakery.', model: 'flux2', lettering: 'model' })
        .lettering,
    ).toBe('model');
  });

  it('a flux2 comic with lettering:model has recipes quoting the dialogue and pages with no overlaid balloons', async () => {
    const started = await startComic(h.deps, request('flux2', 'model'));
    if (!started.ok) throw new Error(started.reason);
    expect(started.comic.options.lettering).toBe('model');
    await processScriptJob(h.deps, { comicId: started.comic.id });
    const comic = await getComic(h.deps.db, started.comic.id);
    const script = comic!.script!;
    const page = script.pages[0]!;
    const renders = (await rendersOfComic(h.deps.db, started.comic.id)).sort(
      (a, b) => a.render.recipe.panel.panel - b.render.recipe.panel.panel,
    );
    expect(renders).toHaveLength(page.panels.length);

    const lines = page.panels.flatMap((p) => p.balloons.map((b) => b.text));
    expect(lines.length).toBeGreaterThan(0); // the template writer gives its panels dialogue
    for (const [i, { render }] of renders.entries()) {
      const panel = page.panels[i]!;
      expect(render.recipe.family).toBe('flux2');
      expect(render.recipe.drawnText?.map((d) => d.text)).toEqual([
        ...panel.balloons.map((b) => b.text),
        ...(panel.caption ? [panel.caption] : []),
        ...(panel.sfx ? [panel.sfx] : []),
      ]);
      for (const balloon of panel.balloons) expect(render.recipe.positive).toContain(`"${balloon.text}"`);
    }

    // The page as the assemble worker letters it: the drawn panels get no balloons on top.
    const frames = layoutPage(
      page.panels.map((p) => p.shot),
      TEST_GEOMETRY,
    );
    const renderer = new StoryboardRenderer();
    const images = await Promise.all(
      renders.map(
        async ({ render }) => (await renderer.render({ ...render.recipe, width: 256, height: 256 }))[0]!.png,
      ),
    );
    const drawn = await assemblePage({
      frames,
      panels: page.panels,
      images,
      geometry: TEST_GEOMETRY,
      drawnByModel: renders.map(({ render }) => render.recipe.drawnText !== undefined),
    });
    expect(drawn.balloons).toEqual([]);
    // The same page lettered as overlay does carry them: the flag is what made the difference.
    const overlaid = await assemblePage({ frames, panels: page.panels, images, geometry: TEST_GEOMETRY });
    expect(overlaid.balloons.length).toBeGreaterThanOrEqual(lines.length);
    expect(drawn.png.equals(overlaid.png)).toBe(false);
  });

  it('lettering:overlay on flux2 builds recipes without drawn text (the page letters them)', async () => {
    const started = await startComic(h.deps, request('flux2', 'overlay'));
    if (!started.ok) throw new Error(started.reason);
    await processScriptJob(h.deps, { comicId: started.comic.id });
    const renders = await rendersOfComic(h.deps.db, started.comic.id);
    expect(renders.length).toBeGreaterThan(0);
    for (const { render } of renders) expect(render.recipe.drawnText).toBeUndefined();
  });
});
