import type { AppConfig } from '../config/env.ts';
import type { PanelRenderer } from './renderer.ts';
import { StoryboardRenderer } from './storyboard-renderer.ts';

/**
 * The renderer the configuration asks for: ComfyUI when COMFYUI_URL is set, else storyboard sketches,
 * so that the whole flow runs on a machine without a GPU.
 */
export async function createPanelRenderer(config: AppConfig): Promise<PanelRenderer> {
  if (!config.COMFYUI_URL) return new StoryboardRenderer();
  const { ComfyRenderer } = await import('./comfy-renderer.ts');
  return ComfyRenderer.connect(config);
}
