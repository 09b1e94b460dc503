import type { RenderRecipe } from '../comic/recipe.ts';

/** One image a renderer produced for a recipe, as a PNG. */
export interface RenderedImage {
  png: Buffer;
  width: number;
  height: number;
}

export interface RenderProgress {
  step: number;
  of: number;
  preview?: { data: Buffer; mime: string };
}

/**
 * Something that turns a RenderRecipe into images: ComfyUI on a GPU, or the storyboard sketcher when
 * no ComfyUI is configured. The comic flow and the runner only ever see this interface.
 */
export interface PanelRenderer {
  readonly kind: 'comfyui' | 'storyboard';
  /** A short description for people ("ComfyUI at http://gpu-box:8188 (NVIDIA GeForce RTX 3090)"). */
  describe(): string;
  render(
    recipe: RenderRecipe,
    options?: { onProgress?: (p: RenderProgress) => void; signal?: AbortSignal },
  ): Promise<RenderedImage[]>;
  close(): Promise<void>;
}
