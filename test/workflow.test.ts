import { describe, expect, it } from 'vitest';
import { buildRecipe } from '../src/comic/prompt-builder.ts';
import type { RenderRecipe } from '../src/comic/recipe.ts';
import {
  assertWorkflowValid,
  capabilitiesFrom,
  parseInputSpec,
  parseObjectInfo,
  validateWorkflow,
  WorkflowInvalidError,
} from '../src/gpu/object-info.ts';
import { buildWorkflow, type ApiGraph } from '../src/gpu/workflow.ts';
import { userMessageOf } from '../src/errors.ts';
import { expectGolden, goldenInput, loadObjectInfoFixture } from './golden/golden.ts';

const objectInfo = parseObjectInfo(loadObjectInfoFixture());
const PREFIX = 'comic/cm_golden_0001/p01_02_a0';

const recipeFor = (family: RenderRecipe['family']) => buildRecipe(goldenInput(family));
const withControlNet = (r: RenderRecipe): RenderRecipe => ({
  ...r,
  controlNet: {
    model: 'controlnet-union-sdxl-1.0.safetensors',
    imageKey: 'controls/cm_golden_0001/p01_02.png',
    strength: 0.6,
    startPercent: 0,
    endPercent: 0.8,
  },
});
const CONTROL_IMAGE = 'comic/p01_02_control.png';

/** Every link points at a node in the graph and at an output that node has (per /object_info). */
function brokenLinks(graph: ApiGraph): string[] {
  const broken: string[] = [];
  for (const [id, node] of Object.entries(graph)) {
    for (const [input, value] of Object.entries(node.inputs)) {
      if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'string') continue;
      const [src, index] = value as [string, number];
      const outputs = graph[src] ? objectInfo[graph[src].class_type]?.output : undefined;
      if (!outputs || !Number.isInteger(index) || index < 0 || index >= outputs.length)
        broken.push(`${id}.${input} → ${src}[${index}]`);
    }
  }
  return broken;
}

/** What a person would be shown for the error fn throws. */
function shownToUser(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return userMessageOf(e);
  }
  throw new Error('expected a throw');
}

const classes = (g: ApiGraph) => Object.values(g).map((n) => n.class_type);

describe('buildWorkflow golden graphs', () => {
  it.each(['illustrious', 'noobai', 'flux'] as const)('%s', (family) => {
    expectGolden(`graph.${family}`, buildWorkflow(recipeFor(family), { filenamePrefix: PREFIX }));
  });

  it.each(['illustrious', 'flux'] as const)('%s with a ControlNet', (family) => {
    expectGolden(
      `graph.${family}.controlnet`,
      buildWorkflow(withControlNet(recipeFor(family)), {
        filenamePrefix: PREFIX,
        controlImageName: CONTROL_IMAGE,
      }),
    );
  });
});

describe('buildWorkflow', () => {
  const cases = [
    ['illustrious', false],
    ['noobai', false],
    ['flux', false],
    ['illustrious', true],
    ['flux', true],
  ] as const;

  it.each(cases)(
    '%s (controlnet %s): links point at existing nodes and outputs; ComfyUI would accept it',
    (family, cn) => {
      const recipe = cn ? withControlNet(recipeFor(family)) : recipeFor(family);
      const graph = buildWorkflow(recipe, { filenamePrefix: PREFIX, controlImageName: CONTROL_IMAGE });
      expect(brokenLinks(graph)).toEqual([]);
      expect(validateWorkflow(graph, objectInfo, 'gpu-1')).toEqual([]);
    },
  );

  it('is deterministic for a recipe', () => {
    const r = recipeFor('flux');
    expect(JSON.stringify(buildWorkflow(r, { filenamePrefix: PREFIX }))).toBe(
      JSON.stringify(buildWorkflow(r, { filenamePrefix: PREFIX })),
    );
  });

  it('SDXL: chains the LoRAs, batches the candidates, and samples v-pred only for NoobAI', () => {
    const ill = buildWorkflow(recipeFor('illustrious'), { filenamePrefix: PREFIX });
    expect(classes(ill).filter((c) => c === 'LoraLoader')).toHaveLength(2);
    expect(classes(ill)).not.toContain('ModelSamplingDiscrete');
    const latent = Object.values(ill).find((n) => n.class_type === 'EmptyLatentImage')!;
    expect(latent.inputs).toEqual({ width: 832, height: 1216, batch_size: 2 });

    const noob = buildWorkflow(recipeFor('noobai'), { filenamePrefix: PREFIX });
    const msd = Object.entries(noob).find(([, n]) => n.class_type === 'ModelSamplingDiscrete')!;
    expect(msd[1].inputs).toMatchObject({ sampling: 'v_prediction', zsnr: true });
    const sampler = Object.values(noob).find((n) => n.class_type === 'KSampler')!;
    expect(sampler.inputs.model).toEqual([msd[0], 0]);
  });

  it('FLUX: model-only LoRAs, guidance through FluxGuidance, the custom sampler chain', () => {
    const g = buildWorkflow(recipeFor('flux'), { filenamePrefix: PREFIX });
    expect(classes(g)).toEqual(
      expect.arrayContaining([
        'UNETLoader',
        'DualCLIPLoader',
        'VAELoader',
        'LoraLoaderModelOnly',
        'ModelSamplingFlux',
        'CLIPTextEncode',
        'FluxGuidance',
        'BasicGuider',
        'KSamplerSelect',
        'BasicScheduler',
        'RandomNoise',
        'EmptySD3LatentImage',
        'SamplerCustomAdvanced',
        'VAEDecode',
        'SaveImage',
      ]),
    );
    expect(classes(g)).not.toContain('KSampler');
    expect(classes(g)).not.toContain('CheckpointLoaderSimple');
    const clip = Object.values(g).find((n) => n.class_type === 'DualCLIPLoader')!;
    expect(clip.inputs.type).toBe('flux');
  });

  it('refuses a ControlNet recipe without its uploaded image, and an escaping prefix', () => {
    expect(
      shownToUser(() => buildWorkflow(withControlNet(recipeFor('illustrious')), { filenamePrefix: PREFIX })),
    ).toMatch(/composition guide is missing/);
    expect(
      shownToUser(() => buildWorkflow(recipeFor('illustrious'), { filenamePrefix: '../../etc/x' })),
    ).toMatch(/bad output name/);
  });
});

describe('/object_info', () => {
  it('reads both combo encodings (V1 list and V3 COMBO)', () => {
    expect(parseInputSpec([['a', 'b'], { tooltip: 'x' }])).toEqual({ kind: 'combo', options: ['a', 'b'] });
    expect(parseInputSpec(['COMBO', { options: ['offset', 'index'], multiselect: false }])).toEqual({
      kind: 'combo',
      options: ['offset', 'index'],
    });
    expect(parseInputSpec(['INT', { min: 1, max: 10000, default: 20 }])).toEqual({
      kind: 'INT',
      min: 1,
      max: 10000,
    });
    expect(parseInputSpec(['MODEL'])).toEqual({ kind: 'link', type: 'MODEL' });
    const v3 = objectInfo.FluxKontextMultiReferenceLatentMethod!;
    const graph: ApiGraph = {
      '1': {
        class_type: 'UNETLoader',
        inputs: { unet_name: 'flux1-dev.safetensors', weight_dtype: 'default' },
      },
      '2': {
        class_type: 'DualCLIPLoader',
        inputs: {
          clip_name1: 't5xxl_fp8_e4m3fn.safetensors',
          clip_name2: 'clip_l.safetensors',
          type: 'flux',
        },
      },
      '3': { class_type: 'CLIPTextEncode', inputs: { text: 'x', clip: ['2', 0] } },
      '4': { class_type: v3.name!, inputs: { conditioning: ['3', 0], reference_latents_method: 'sideways' } },
    };
    expect(validateWorkflow(graph, objectInfo, 'gpu-1').map((p) => p.message)).toEqual([
      'FluxKontextMultiReferenceLatentMethod (node 4) input "reference_latents_method" cannot be "sideways" on runner gpu-1; it accepts: offset, index, uxo/uno.',
    ]);
  });

  it('tells what a runner can do', () => {
    const caps = capabilitiesFrom(objectInfo);
    expect(caps.checkpoints).toEqual([
      'illustriousXL_v01.safetensors',
      'noobaiXLVpred_v10.safetensors',
      'sd_xl_base_1.0.safetensors',
    ]);
    expect(caps.loras).toEqual(['chars/hero.safetensors', 'style/ink.safetensors']);
    expect(caps.unets).toEqual(['flux1-dev.safetensors']);
    expect(caps.clips).toContain('t5xxl_fp8_e4m3fn.safetensors');
    expect(caps.vaes).toContain('ae.safetensors');
    expect(caps.controlnets).toEqual(['controlnet-union-sdxl-1.0.safetensors']);
    expect(caps.samplers).toContain('euler_ancestral');
    expect(caps.schedulers).toContain('simple');
    expect([caps.hasFlux, caps.hasControlNet, caps.hasIPAdapter]).toEqual([true, true, false]);
    expect(caps.nodes.has('SamplerCustomAdvanced')).toBe(true);
  });

  it('rejects a response that is not object_info', () => {
    expect(shownToUser(() => parseObjectInfo({ KSampler: 'nope' }))).toBe(
      'The GPU runner could not read what its ComfyUI can do.',
    );
  });
});

describe('validateWorkflow messages', () => {
  const base = () => buildWorkflow(recipeFor('illustrious'), { filenamePrefix: PREFIX });
  const messages = (g: ApiGraph) => validateWorkflow(g, objectInfo, 'gpu-1').map((p) => p.message);

  it('a missing LoRA', () => {
    const r = recipeFor('illustrious');
    const g = buildWorkflow(
      { ...r, loras: [{ ...r.loras[0]!, name: 'comic_style_v1.safetensors' }] },
      { filenamePrefix: PREFIX },
    );
    expect(messages(g)).toEqual(['LoRA comic_style_v1.safetensors is not installed on runner gpu-1.']);
    const problems = validateWorkflow(g, objectInfo, 'gpu-1');
    expect(problems[0]).toMatchObject({ code: 'not_installed', input: 'lora_name', classType: 'LoraLoader' });
  });

  it('a missing checkpoint lists what is installed', () => {
    const r = recipeFor('illustrious');
    const g = buildWorkflow(
      { ...r, models: { kind: 'checkpoint', checkpoint: 'ponyDiffusionV6XL.safetensors' } },
      { filenamePrefix: PREFIX },
    );
    expect(messages(g)).toEqual([
      'Checkpoint ponyDiffusionV6XL.safetensors is not installed on runner gpu-1 (installed: illustriousXL_v01.safetensors, noobaiXLVpred_v10.safetensors, sd_xl_base_1.0.safetensors).',
    ]);
  });

  it('an unknown sampler, on KSampler and on KSamplerSelect', () => {
    const r = recipeFor('illustrious');
    expect(messages(buildWorkflow({ ...r, sampler: 'foo' }, { filenamePrefix: PREFIX }))).toEqual([
      'Sampler "foo" is not known to ComfyUI on runner gpu-1.',
    ]);
    const f = recipeFor('flux');
    expect(
      messages(buildWorkflow({ ...f, sampler: 'foo', scheduler: 'bar' }, { filenamePrefix: PREFIX })),
    ).toEqual([
      'Sampler "foo" is not known to ComfyUI on runner gpu-1.',
      'Scheduler "bar" is not known to ComfyUI on runner gpu-1.',
    ]);
  });

  it('values out of range', () => {
    const g = base();
    g['60']!.inputs.steps = 50000;
    g['60']!.inputs.cfg = -1;
    g['11']!.inputs.strength_model = 250;
    expect(messages(g)).toEqual([
      'strength_model 250 is above the maximum 100 for LoraLoader (node 11).',
      'steps 50000 is above the maximum 10000 for KSampler (node 60).',
      'cfg -1 is below the minimum 0 for KSampler (node 60).',
    ]);
  });

  it('missing inputs, wrong literal types, unknown nodes and broken links', () => {
    const g = base();
    delete g['60']!.inputs.seed;
    g['50']!.inputs.batch_size = 1.5;
    g['20'] = { class_type: 'IPAdapterAdvanced', inputs: { model: ['11', 0] } };
    g['70']!.inputs.samples = ['99', 0];
    g['30']!.inputs.clip = ['1', 2]; // the VAE output into a CLIP input
    expect(messages(g)).toEqual([
      'Node type IPAdapterAdvanced (node 20) is not installed in ComfyUI on runner gpu-1; install the custom node that provides it.',
      'CLIPTextEncode (node 30) input "clip" expects CLIP but node 1 (CheckpointLoaderSimple) gives VAE.',
      'EmptyLatentImage (node 50) input "batch_size" must be a whole number, not 1.5.',
      'KSampler (node 60) is missing its required input "seed".',
      'VAEDecode (node 70) input "samples" is linked to node 99, which is not in the graph.',
    ]);
  });

  it('assertWorkflowValid throws one error carrying every problem', () => {
    const r = recipeFor('illustrious');
    const g = buildWorkflow(
      { ...r, sampler: 'foo', loras: [{ ...r.loras[0]!, name: 'comic_style_v1.safetensors' }] },
      { filenamePrefix: PREFIX },
    );
    let caught: unknown;
    try {
      assertWorkflowValid(g, objectInfo, 'gpu-1');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(WorkflowInvalidError);
    const err = caught as WorkflowInvalidError;
    expect(err.problems.map((p) => p.code)).toEqual(['not_installed', 'not_in_list']);
    expect(err.userMessage).toBe(
      'LoRA comic_style_v1.safetensors is not installed on runner gpu-1.\nSampler "foo" is not known to ComfyUI on runner gpu-1.',
    );
    expect(() => assertWorkflowValid(base(), objectInfo, 'gpu-1')).not.toThrow();
  });
});
