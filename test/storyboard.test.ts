import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { RenderRecipe } from '../src/comic/recipe.ts';
import { renderStoryboardPanel } from '../src/comic/storyboard.ts';

function recipe(
  over: Partial<RenderRecipe['panel']> = {},
  size: [number, number] = [1216, 832],
): RenderRecipe {
  return {
    version: 1,
    family: 'illustrious',
    vPrediction: false,
    models: { kind: 'checkpoint', checkpoint: 'illustriousXL_v01.safetensors' },
    positive: 'masterpiece, best quality, 2girls, harbour, dusk',
    negative: 'lowres, bad anatomy',
    loras: [],
    width: size[0],
    height: size[1],
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: 28,
    cfg: 6,
    guidance: null,
    seed: 424242,
    candidates: 1,
    controlNet: null,
    panel: {
      comicId: 'c-demo',
      page: 1,
      panel: 2,
      attempt: 0,
      shot: 'medium',
      angle: 'eye-level',
      setting: 'The harbour of Vell at dusk',
      action: 'Mina points at the dark lighthouse',
      characters: [
        { name: 'Mina', position: 'left' },
        { name: 'Oskar', position: 'right' },
      ],
      ...over,
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function rgb(png: Buffer) {
  return sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
}

describe('renderStoryboardPanel', () => {
  it('draws a PNG at exactly the recipe size for every shot', async () => {
    const shots = ['extreme-close-up', 'close-up', 'medium', 'cowboy', 'full', 'wide', 'establishing'];
    for (const [i, shot] of shots.entries()) {
      const size: [number, number] = i % 2 ? [832, 1216] : [1344, 768];
      const png = await renderStoryboardPanel(
        recipe({ shot, angle: i === 3 ? 'dutch' : 'from-above' }, size),
      );
      const meta = await sharp(png).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', ...size]);
    }
  });

  it('is deterministic: the same recipe gives the same bytes, another recipe does not', async () => {
    const a = await renderStoryboardPanel(recipe());
    const b = await renderStoryboardPanel(recipe());
    expect(sha(a)).toBe(sha(b));
    const c = await renderStoryboardPanel(recipe({ characters: [{ name: 'Mina', position: 'centre' }] }));
    expect(sha(c)).not.toBe(sha(a));
  });

  it('puts the figures where the brief says they stand, on paper, not on a blank canvas', async () => {
    const { data, info } = await rgb(
      await renderStoryboardPanel(recipe({ characters: [{ name: 'Mina', position: 'left' }] })),
    );
    // Count drawn (non-paper) pixels in the left and right thirds of the middle band.
    const paper = [0xf4, 0xef, 0xe3];
    let left = 0;
    let right = 0;
    for (let y = Math.round(info.height * 0.25); y < info.height * 0.6; y++) {
      for (let x = 0; x < info.width; x++) {
        const i = (y * info.width + x) * 3;
        const ink =
          Math.abs(data[i]! - paper[0]!) +
            Math.abs(data[i + 1]! - paper[1]!) +
            Math.abs(data[i + 2]! - paper[2]!) >
          30;
        if (!ink) continue;
        if (x < info.width / 3) left++;
        else if (x > (2 * info.width) / 3) right++;
      }
    }
    expect(left).toBeGreaterThan(5 * Math.max(right, 1));
    // Paper tone at a corner inside the border.
    const i = (40 * info.width + info.width - 40) * 3;
    expect([data[i], data[i + 1], data[i + 2]]).toEqual(paper);
  });

  it('rejects an invalid recipe', async () => {
    await expect(renderStoryboardPanel({ ...recipe(), width: 100 })).rejects.toThrow(/storyboard recipe/);
  });
});
