/**
 * Character reference images on the GPU side: with the IPAdapter node pack present, the graph gets an
 * IPAdapter branch that ComfyUI's own /object_info accepts, the reference is uploaded through
 * /upload/image and the panel renders; without the pack no IPAdapter node is built, the panel still
 * renders from text and LoRAs, and the image's embedded recipe says so.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referencesForPanel } from '../src/characters/cast.ts';
import { RenderRecipe } from '../src/comic/recipe.ts';
import { ComfyRenderer } from '../src/gpu/comfy-renderer.ts';
import { capabilitiesFrom, parseObjectInfo, validateWorkflow } from '../src/gpu/object-info.ts';
import { readEmbeddedRecipe } from '../src/gpu/png-metadata.ts';
import { buildWorkflow } from '../src/gpu/workflow.ts';
import { createLogger } from '../src/log.ts';
import { createArtifactStore } from '../src/store/local-store.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';
import { ipAdapterObjectInfo } from './fakes/comfyui/object-info.ts';
import { loadObjectInfoFixture } from './golden/golden.ts';

const silent = createLogger({ level: 'silent' });
let dir: string;
let store: ArtifactStore;
let withPackPath: string;

const REF_KEY = 'characters/g1/c1/ref-mira.png';

function recipeWithReference(shotWeight = 0.8): RenderRecipe {
  const golden = JSON.parse(goldenRecipeText) as RenderRecipe;
  return RenderRecipe.parse({
    ...golden,
    // Small and quick: the fake draws at this size.
    width: 512,
    height: 512,
    steps: 2,
    candidates: 1,
    loras: [],
    references: [{ imageKey: REF_KEY, label: 'Mira', weight: shotWeight }],
  });
}

let goldenRecipeText = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cm-ipadapter-'));
  goldenRecipeText = await readFile(new URL('./golden/recipe.illustrious.json', import.meta.url), 'utf8');
  store = createArtifactStore({ dataDir: join(dir, 'data') });
  const ref = await sharp({ create: { width: 320, height: 400, channels: 3, background: '#c04030' } })
    .png()
    .toBuffer();
  await store.put(REF_KEY, ref);
  // The custom pack is optional: this fixture is the golden table with the pack's nodes layered in.
  withPackPath = join(dir, 'object_info_with_ipadapter.json');
  await writeFile(
    withPackPath,
    JSON.stringify({ ...(loadObjectInfoFixture() as object), ...ipAdapterObjectInfo() }),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('IPAdapter branch in the graph', () => {
  it('validates against /object_info with the pack, and is not built without it', () => {
    const recipe = recipeWithReference();
    const withPack = parseObjectInfo({ ...(loadObjectInfoFixture() as object), ...ipAdapterObjectInfo() });
    expect(capabilitiesFrom(withPack).hasIPAdapter).toBe(true);
    const graph = buildWorkflow(recipe, {
      filenamePrefix: 'comicmaster/t/p01-01-a0',
      referenceImageNames: ['comicmaster/ref.png'],
      ipAdapterNode: 'IPAdapterAdvanced',
    });
    expect(validateWorkflow(graph, withPack, 'gpu-1')).toEqual([]);
    const apply = Object.values(graph).find((n) => n.class_type === 'IPAdapterAdvanced');
    expect(apply?.inputs.weight).toBe(0.8);
    // The sampler samples the IPAdapter-patched model.
    const sampler = Object.values(graph).find((n) => n.class_type === 'KSampler');
    const [samplerModelNode] = sampler?.inputs.model as [string, number];
    expect(graph[samplerModelNode]?.class_type).toBe('IPAdapterAdvanced');

    const without = parseObjectInfo(loadObjectInfoFixture());
    expect(capabilitiesFrom(without).hasIPAdapter).toBe(false);
    const plain = buildWorkflow(recipe, { filenamePrefix: 'comicmaster/t/p01-01-a0' });
    expect(Object.values(plain).some((n) => n.class_type.startsWith('IPAdapter'))).toBe(false);
    expect(validateWorkflow(plain, without, 'gpu-1')).toEqual([]);
  });

  it('weighs references by shot: close-ups follow the reference more than wide shots', () => {
    const cast = [{ name: 'Mira', referenceImageKeys: [REF_KEY] }] as unknown as Parameters<
      typeof referencesForPanel
    >[1];
    const panel = (shot: 'close-up' | 'wide') => ({
      shot,
      characters: [{ name: 'mira', pose: '', expression: '', position: 'centre' as const }],
    });
    const close = referencesForPanel(panel('close-up'), cast)[0]!;
    const wide = referencesForPanel(panel('wide'), cast)[0]!;
    expect(close.weight).toBeGreaterThanOrEqual(0.75);
    expect(wide.weight).toBeLessThanOrEqual(0.45);
    expect(close.label).toBe('Mira');
  });
});

describe('ComfyRenderer with reference images', () => {
  async function renderOn(fake: FakeComfyUI) {
    const renderer = await ComfyRenderer.connect(
      { COMFYUI_URL: fake.url, COMFYUI_LORA_DIR: undefined, RUNNER_ID: 'gpu-1', dataDir: join(dir, 'data') },
      { store, logger: silent },
    );
    try {
      return await renderer.render(recipeWithReference());
    } finally {
      await renderer.close();
    }
  }

  it('uploads the reference and renders through the IPAdapter branch when the pack is installed', async () => {
    const fake = await startFakeComfyUI({ objectInfoPath: withPackPath, timing: { stepMs: 0 } });
    try {
      const images = await renderOn(fake);
      expect(images).toHaveLength(1);
      expect(images[0]).toMatchObject({ width: 512, height: 512 });
      const graph = (
        fake.received.at(-1) as {
          prompt: Record<string, { class_type: string; inputs: Record<string, unknown> }>;
        }
      ).prompt;
      const load = Object.values(graph).find((n) => n.class_type === 'LoadImage');
      expect(String(load?.inputs.image)).toMatch(/^comicmaster\/[0-9a-f]{24}\.png$/);
      expect(Object.values(graph).map((n) => n.class_type)).toEqual(
        expect.arrayContaining(['IPAdapterUnifiedLoader', 'IPAdapterAdvanced']),
      );
      expect(readEmbeddedRecipe(images[0]!.png)?.referencesApplied).toBe(true);
    } finally {
      await fake.close();
    }
  });

  it('draws from text and LoRAs only, and says so, when the pack is missing', async () => {
    const fake = await startFakeComfyUI({ objectInfoPath: false, timing: { stepMs: 0 } });
    try {
      const images = await renderOn(fake);
      expect(images).toHaveLength(1);
      const graph = (fake.received.at(-1) as { prompt: Record<string, { class_type: string }> }).prompt;
      expect(
        Object.values(graph).some(
          (n) => n.class_type.startsWith('IPAdapter') || n.class_type === 'LoadImage',
        ),
      ).toBe(false);
      const embedded = readEmbeddedRecipe(images[0]!.png);
      expect(embedded?.referencesApplied).toBe(false);
      expect(embedded?.references?.[0]?.label).toBe('Mira');
    } finally {
      await fake.close();
    }
  });
});
