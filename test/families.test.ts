import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFamilyUsable, FAMILIES, familyAvailability } from '../src/comic/families.ts';
import { buildRecipe } from '../src/comic/prompt-builder.ts';
import {
  MODEL_FAMILIES,
  type ModelFamily,
  type RecipeModels,
  type RenderRecipe,
} from '../src/comic/recipe.ts';
import { userMessageOf } from '../src/errors.ts';
import {
  FAMILY_NODES,
  familySupportProblem,
  parseObjectInfo,
  validateWorkflow,
  type ObjectInfo,
} from '../src/gpu/object-info.ts';
import { buildWorkflow, type ApiGraph } from '../src/gpu/workflow.ts';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';
import { CHARACTER_LORAS, expectGolden, goldenInput, STYLE } from './golden/golden.ts';

/**
 * Every model family against the fake ComfyUI's /object_info: with the family's nodes and files
 * installed its graph is accepted; without them it is refused with a reason a person can act on.
 */

const PREFIX = 'comic/cm_golden_0001/p01_02_a0';
const NEW_FAMILIES = [
  'flux-schnell',
  'flux2',
  'sdxl',
  'pony',
  'playground',
  'sd35-large',
  'sd35-medium',
  'ponyv7',
] as const;

/** The files a family's default models need, by ComfyUI model folder. */
function filesOf(models: RecipeModels): Record<string, string[]> {
  switch (models.kind) {
    case 'checkpoint':
      return { checkpoints: [models.checkpoint] };
    case 'sd3':
      return {
        checkpoints: [models.checkpoint],
        text_encoders: models.textEncoders ? Object.values(models.textEncoders) : [],
      };
    case 'flux':
      return {
        diffusion_models: [models.unet],
        text_encoders: [models.clipT5, models.clipL],
        vae: [models.vae],
      };
    case 'flux2':
      return { diffusion_models: [models.unet], text_encoders: [models.textEncoder], vae: [models.vae] };
  }
}

function everyFamilyFile(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const family of MODEL_FAMILIES) {
    for (const [folder, files] of Object.entries(filesOf(FAMILIES[family].models)))
      out[folder] = [...new Set([...(out[folder] ?? []), ...files])];
  }
  return out;
}

async function objectInfoOf(fake: FakeComfyUI): Promise<ObjectInfo> {
  const res = await fetch(`${fake.url}/object_info`);
  return parseObjectInfo(await res.json());
}

const recipeFor = (family: ModelFamily, extra: Partial<Parameters<typeof buildRecipe>[0]> = {}) =>
  buildRecipe({ ...goldenInput(family), ...extra });
const graphOf = (recipe: RenderRecipe, referenceImageNames?: string[]) =>
  buildWorkflow(recipe, { filenamePrefix: PREFIX, ...(referenceImageNames ? { referenceImageNames } : {}) });
const nodesOf = (g: ApiGraph) => Object.values(g);
const classes = (g: ApiGraph) => nodesOf(g).map((n) => n.class_type);

let full: FakeComfyUI;
let fullInfo: ObjectInfo;

beforeAll(async () => {
  const files = everyFamilyFile();
  full = await startFakeComfyUI({
    objectInfoPath: false,
    checkpoints: files.checkpoints ?? [],
    diffusionModels: files.diffusion_models ?? [],
    textEncoders: files.text_encoders ?? [],
    vaes: files.vae ?? [],
    loras: [STYLE.lora.name, CHARACTER_LORAS.Mira.name],
  });
  fullInfo = await objectInfoOf(full);
});

afterAll(async () => {
  await full?.close();
});

describe('each family renders on a ComfyUI that has its nodes and files', () => {
  it.each(MODEL_FAMILIES)('%s: the graph passes /object_info validation', (family) => {
    const graph = graphOf(recipeFor(family));
    expect(validateWorkflow(graph, fullInfo, 'gpu-1')).toEqual([]);
    expect(familySupportProblem(family, fullInfo, 'gpu-1')).toBeNull();
  });

  it.each(NEW_FAMILIES)('%s: golden recipe and graph', (family) => {
    const recipe = recipeFor(family);
    expectGolden(`recipe.${family}`, recipe);
    expectGolden(`graph.${family}`, graphOf(recipe));
  });
});

describe('each family is refused with a clear reason where its nodes are missing', () => {
  // The nodes that are new with each family (an older ComfyUI or a box without the pack lacks them).
  const distinctive: Partial<Record<ModelFamily, string[]>> = {
    flux2: ['Flux2Scheduler', 'EmptyFlux2LatentImage', 'CLIPLoader'],
    'sd35-large': ['TripleCLIPLoader', 'ModelSamplingSD3'],
    'sd35-medium': ['TripleCLIPLoader', 'ModelSamplingSD3'],
    playground: ['ModelSamplingContinuousEDM'],
    'flux-schnell': ['UNETLoader', 'DualCLIPLoader'],
    flux: ['FluxGuidance'],
    noobai: ['ModelSamplingDiscrete'],
  };
  let old: FakeComfyUI;
  let oldInfo: ObjectInfo;
  beforeAll(async () => {
    const files = everyFamilyFile();
    old = await startFakeComfyUI({
      objectInfoPath: false,
      checkpoints: files.checkpoints ?? [],
      hiddenNodes: [...new Set(Object.values(distinctive).flat())],
    });
    oldInfo = await objectInfoOf(old);
  });
  afterAll(async () => {
    await old?.close();
  });

  it.each(Object.entries(distinctive))('%s', (family, missing) => {
    const graph = graphOf(recipeFor(family as ModelFamily));
    const problems = validateWorkflow(graph, oldInfo, 'gpu-old');
    const unknown = problems.filter((p) => p.code === 'unknown_node').map((p) => p.classType);
    for (const node of missing) if (classes(graph).includes(node)) expect(unknown).toContain(node);
    const reason = familySupportProblem(family as ModelFamily, oldInfo, 'gpu-old');
    expect(reason).toContain(FAMILIES[family as ModelFamily].label);
    expect(reason).toContain('cannot render on runner gpu-old');
    for (const node of missing.filter((n) => FAMILY_NODES[family as ModelFamily].includes(n)))
      expect(reason).toContain(node);
  });

  it('says which ComfyUI release brings the FLUX.2 nodes', () => {
    expect(familySupportProblem('flux2', oldInfo, 'gpu-old')).toMatch(/Update ComfyUI to 0\.3\.71 or newer/);
  });

  it('names a missing model file with what is installed', () => {
    const info = structuredClone(fullInfo);
    info.UNETLoader!.input.required!.unet_name = [['flux1-dev.safetensors'], {}];
    const problems = validateWorkflow(graphOf(recipeFor('flux2')), info, 'gpu-1');
    expect(problems.map((p) => p.message).join('\n')).toMatch(
      /Diffusion model flux2_dev_fp8mixed\.safetensors is not installed on runner gpu-1/,
    );
  });
});

describe('family conventions', () => {
  it('FLUX.1 schnell: 4 steps, cfg 1, no negative, no guidance node', () => {
    const recipe = recipeFor('flux-schnell');
    expect(recipe).toMatchObject({ steps: 4, cfg: 1, guidance: null, negative: '' });
    const g = graphOf(recipe);
    expect(classes(g)).not.toContain('FluxGuidance');
    expect(classes(g)).not.toContain('ModelSamplingFlux');
    expect(nodesOf(g).find((n) => n.class_type === 'BasicScheduler')!.inputs.steps).toBe(4);
  });

  it('FLUX.2: its own encoder and VAE, and one ReferenceLatent per character sheet', () => {
    const recipe: RenderRecipe = {
      ...recipeFor('flux2'),
      references: [
        { imageKey: 'refs/mira.png', label: 'Mira' },
        { imageKey: 'refs/oskar.png', label: 'Oskar' },
      ],
    };
    const g = graphOf(recipe, ['refs/mira.png', 'refs/oskar.png']);
    expect(validateWorkflow(g, fullInfo, 'gpu-1')).toEqual([]);
    expect(nodesOf(g).find((n) => n.class_type === 'CLIPLoader')!.inputs).toMatchObject({
      clip_name: 'mistral_3_small_flux2_fp8.safetensors',
      type: 'flux2',
    });
    expect(nodesOf(g).find((n) => n.class_type === 'VAELoader')!.inputs.vae_name).toBe(
      'flux2-vae.safetensors',
    );
    expect(classes(g).filter((c) => c === 'ReferenceLatent')).toHaveLength(2);
    expect(
      nodesOf(g)
        .filter((n) => n.class_type === 'LoadImage')
        .map((n) => n.inputs.image),
    ).toEqual(['refs/mira.png', 'refs/oskar.png']);
    let shown = '';
    try {
      graphOf(recipe, ['refs/mira.png']);
    } catch (e) {
      shown = userMessageOf(e);
    }
    expect(shown).toMatch(/a character reference image is missing/);
  });

  it('FLUX.2: a balloon "drawn by the model" is spelled out in the prompt and kept on the recipe', () => {
    const recipe = recipeFor('flux2', { drawnText: true });
    expect(recipe.positive).toContain('reads "You will never make it!"');
    expect(recipe.positive).toContain('reads "Watch me, old man."');
    expect(recipe.positive).toContain('sound-effect lettering that reads "WHOOSH"');
    expect(recipe.drawnText).toEqual([
      { kind: 'shout', speaker: 'Oskar', text: 'You will never make it!' },
      { kind: 'speech', speaker: 'Mira', text: 'Watch me, old man.' },
      { kind: 'sfx', speaker: null, text: 'WHOOSH' },
    ]);
    // Families that cannot letter leave it to the page assembler.
    expect(recipeFor('illustrious', { drawnText: true }).drawnText).toBeUndefined();
    expect(recipeFor('flux2').positive).not.toContain('reads "');
  });

  it('Pony V6: the score ladder, a source tag and the safe rating lead the prompt', () => {
    const recipe = recipeFor('pony');
    expect(
      recipe.positive.startsWith(
        'inkpunk_style, score_9, score_8_up, score_7_up, score_6_up, score_5_up, score_4_up, source_anime',
      ),
    ).toBe(true);
    expect(recipe.positive).toContain('rating_safe');
    expect(recipe.negative).toContain('score_4');
  });

  it('Playground v2.5: EDM sampling, cfg 3, DPM++ 2M Karras', () => {
    const g = graphOf(recipeFor('playground'));
    const edm = nodesOf(g).find((n) => n.class_type === 'ModelSamplingContinuousEDM')!;
    expect(edm.inputs).toMatchObject({ sampling: 'edm_playground_v2.5', sigma_max: 120, sigma_min: 0.002 });
    expect(nodesOf(g).find((n) => n.class_type === 'KSampler')!.inputs).toMatchObject({
      cfg: 3,
      sampler_name: 'dpmpp_2m',
      scheduler: 'karras',
    });
  });

  it('SDXL base speaks in phrases, not Danbooru counts', () => {
    const recipe = recipeFor('sdxl');
    expect(recipe.positive).toContain('two people');
    expect(recipe.positive).not.toMatch(/\b1girl\b|cowboy shot/);
  });

  it('SD 3.5: three text encoders, shift 3, a real negative', () => {
    const recipe = recipeFor('sd35-large');
    expect(recipe.negative).not.toBe('');
    const g = graphOf(recipe);
    expect(nodesOf(g).find((n) => n.class_type === 'TripleCLIPLoader')!.inputs).toEqual({
      clip_name1: 'clip_l.safetensors',
      clip_name2: 'clip_g.safetensors',
      clip_name3: 't5xxl_fp8_e4m3fn_scaled.safetensors',
    });
    expect(nodesOf(g).find((n) => n.class_type === 'ModelSamplingSD3')!.inputs.shift).toBe(3);
  });
});

describe('experimental families', () => {
  it('Pony V7 is refused with its reason until an operator enables it', () => {
    const refused = familyAvailability('ponyv7', []);
    expect(refused.usable).toBe(false);
    expect(!refused.usable && refused.reason).toMatch(
      /AuraFlow.*immature.*ENABLE_EXPERIMENTAL_FAMILIES=ponyv7/,
    );
    expect(familyAvailability('ponyv7', ['ponyv7'])).toEqual({ usable: true });
    let shown = '';
    try {
      assertFamilyUsable('ponyv7', []);
    } catch (e) {
      shown = userMessageOf(e);
    }
    expect(shown).toMatch(/Pony V7 \(AuraFlow\) is off on this server/);
  });

  it('Hunyuan Image 3.0 stays refused: it does not fit a 24 GB card', () => {
    const refused = familyAvailability('hunyuan3', ['hunyuan3']);
    expect(!refused.usable && refused.reason).toMatch(/Hunyuan Image 3\.0 is not available: .*24 GB/);
  });

  it('the stable families are usable without any setting', () => {
    for (const family of MODEL_FAMILIES.filter((f) => f !== 'ponyv7'))
      expect(familyAvailability(family, [])).toEqual({ usable: true });
  });
});
