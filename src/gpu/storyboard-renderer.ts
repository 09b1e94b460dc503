import sharp from 'sharp';
import { renderStoryboardPanel } from '../comic/storyboard.ts';
import type { RenderRecipe } from '../comic/recipe.ts';
import type { PanelRenderer, RenderedImage } from './renderer.ts';

/**
 * Draws each panel as a storyboard sketch at the recipe's size: no GPU, no models, deterministic.
 * Used when no ComfyUI is configured, and as a preview before GPU time is spent.
 */
export class StoryboardRenderer implements PanelRenderer {
  readonly kind = 'storyboard' as const;

  describe(): string {
    return 'storyboard sketches (COMFYUI_URL is not set)';
  }

  async render(recipe: RenderRecipe): Promise<RenderedImage[]> {
    const png = await renderStoryboardPanel(recipe);
    const { width, height } = await sharp(png).metadata();
    return [{ png, width: width ?? recipe.width, height: height ?? recipe.height }];
  }

  async close(): Promise<void> {}
}
