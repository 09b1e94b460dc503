import type { Logger } from 'pino';
import type { ComicScript } from '../../agents/script-schema.ts';
import type { PanelRenderer } from '../../gpu/renderer.ts';
import type { ArtifactStore } from '../../store/artifact-store.ts';
import { artifactKeys } from '../../store/keys.ts';
import { encodeUnderLimit } from '../encode.ts';
import { assemblePage } from '../page.ts';
import type { RenderRecipe } from '../recipe.ts';
import type { StoredPageLayout } from './comic-data.ts';

/**
 * Draws the storyboard version of every page — each panel sketched from its recipe, then lettered
 * like the final page — so people can read the story while the GPU renders. Pages already in the
 * store (a script job running again) are not drawn twice. Returns the keys, in page order.
 */
export async function renderStoryboardPages(input: {
  comicId: string;
  script: ComicScript;
  layouts: StoredPageLayout[];
  /** recipes[page - 1][panel - 1], attempt 0. */
  recipes: RenderRecipe[][];
  renderer: PanelRenderer;
  store: ArtifactStore;
  maxBytes: number;
  logger: Logger;
}): Promise<string[]> {
  const keys: string[] = [];
  for (const [index, layout] of input.layouts.entries()) {
    const pageNumber = index + 1;
    const key = artifactKeys.storyboardPage(input.comicId, pageNumber);
    keys.push(key);
    if (await input.store.exists(key)) continue;
    const scriptPage = input.script.pages[index];
    const recipes = input.recipes[index];
    if (!scriptPage || !recipes) throw new Error(`storyboard: no script or recipes for page ${pageNumber}`);
    // One panel at a time: each sketch is a full-size image and the machine is small.
    const images: Buffer[] = [];
    for (const recipe of recipes) {
      const [image] = await input.renderer.render(recipe);
      if (!image) throw new Error(`storyboard renderer returned no image for page ${pageNumber}`);
      images.push(image.png);
    }
    const page = await assemblePage({
      frames: layout.frames,
      panels: scriptPage.panels,
      images,
      geometry: layout.geometry,
      rtl: layout.rtl,
      pageNumber,
    });
    const encoded = await encodeUnderLimit(page.png, { maxBytes: input.maxBytes });
    await input.store.put(key, encoded.data, { contentType: `image/${encoded.format}` });
    input.logger.debug(
      { comicId: input.comicId, pageNumber, bytes: encoded.data.length },
      'storyboard page stored',
    );
  }
  return keys;
}
