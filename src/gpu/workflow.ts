import { z } from 'zod';
import { ComicMasterError } from '../errors.ts';
import { familyProfile } from '../comic/families.ts';
import type { RenderRecipe } from '../comic/recipe.ts';

/**
 * RenderRecipe → ComfyUI API-format graph (shared/reference/comfyui.md §3).
 *
 * Node ids are fixed per role ("1" is always the model loader, "60" always the sampler, LoRA slot i
 * is always "1i"), so the same recipe gives the same graph byte for byte, and consecutive renders
 * keep their node ids — ComfyUI caches loader instances per node id, which spares LoRA re-reads.
 */

/** `["<nodeId>", outputIndex]` — a 2-element list is always a link in API format. */
export type Link = [string, number];
export interface ApiNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title: string };
}
export type ApiGraph = Record<string, ApiNode>;

export const ApiGraphSchema = z.record(
  z.string().min(1),
  z.object({
    class_type: z.string().min(1),
    inputs: z.record(z.string(), z.unknown()),
    _meta: z.object({ title: z.string() }).optional(),
  }),
);

export interface WorkflowOptions {
  /** SaveImage prefix; may hold sub/dirs/ (ComfyUI turns them into the subfolder). */
  filenamePrefix: string;
  /** The name /upload/image returned for the recipe's control image; required when it has one. */
  controlImageName?: string;
  /**
   * Set only by a runner whose ComfyUI has ComfyUI_IPAdapter_plus: which apply node it offers. With it
   * (and `referenceImageNames`), SDXL-family graphs get an IPAdapter branch per reference image;
   * without it they are drawn from text and LoRAs alone.
   */
  ipAdapterNode?: 'IPAdapterAdvanced' | 'IPAdapter';
  /**
   * The names /upload/image returned for the recipe's reference images, in order; FLUX.2 graphs
   * need one per reference (ReferenceLatent). Other families ignore them here.
   */
  referenceImageNames?: string[];
}

export const NODE_IDS = {
  model: '1',
  clip: '2',
  vae: '3',
  loraBase: 11, // LoRA slot i → String(11 + i); the recipe allows at most 8
  modelSampling: '20',
  positive: '30',
  negative: '31',
  fluxGuidance: '32',
  controlNetLoader: '40',
  controlImage: '41',
  controlNetApply: '42',
  latent: '50',
  sampler: '60',
  noise: '61',
  samplerSelect: '62',
  scheduler: '63',
  guider: '64',
  decode: '70',
  save: '80',
  ipAdapterLoader: '90',
  referenceImageBase: 91, // IPAdapter reference i → LoadImage String(91 + i); the recipe allows at most 4
  ipAdapterApplyBase: 95, // IPAdapter reference i → apply node String(95 + i)
} as const;

const link = (id: string, output: number): Link => [id, output];

function isSafePrefix(prefix: string): boolean {
  return (
    prefix.length > 0 &&
    prefix.length <= 200 &&
    !prefix.startsWith('/') &&
    !prefix.split('/').includes('..') &&
    !prefix.includes('\0')
  );
}

export function buildWorkflow(recipe: RenderRecipe, opts: WorkflowOptions): ApiGraph {
  if (!isSafePrefix(opts.filenamePrefix)) {
    throw new ComicMasterError('workflow_bad_prefix', 'The render could not be prepared (bad output name).', {
      operatorMessage: `filenamePrefix must be a relative path without "..": ${JSON.stringify(opts.filenamePrefix)}`,
    });
  }
  if (recipe.controlNet && !opts.controlImageName) {
    throw new ComicMasterError(
      'workflow_control_image_missing',
      'The render could not be prepared (its composition guide is missing).',
      {
        operatorMessage:
          'recipe has a controlNet but no controlImageName was given: upload the control image first',
      },
    );
  }
  switch (recipe.models.kind) {
    case 'flux':
      return recipe.family === 'flux-schnell'
        ? fluxSchnellGraph(recipe, recipe.models, opts)
        : fluxGraph(recipe, recipe.models, opts);
    case 'flux2':
      return flux2Graph(recipe, recipe.models, opts);
    case 'sd3':
      return sd3Graph(recipe, recipe.models, opts);
    case 'checkpoint':
      return sdxlGraph(recipe, recipe.models, opts);
  }
}

/** ControlNetLoader + LoadImage + ControlNetApplyAdvanced; returns the conditioning links to use next. */
function addControlNet(
  graph: ApiGraph,
  recipe: RenderRecipe,
  imageName: string,
  positive: Link,
  negative: Link,
  vae: Link | null,
): { positive: Link; negative: Link } {
  const cn = recipe.controlNet;
  if (!cn) return { positive, negative };
  graph[NODE_IDS.controlNetLoader] = {
    class_type: 'ControlNetLoader',
    inputs: { control_net_name: cn.model },
    _meta: { title: `ControlNet: ${cn.model}` },
  };
  graph[NODE_IDS.controlImage] = {
    class_type: 'LoadImage',
    inputs: { image: imageName },
    _meta: { title: 'Control image' },
  };
  graph[NODE_IDS.controlNetApply] = {
    class_type: 'ControlNetApplyAdvanced',
    inputs: {
      positive,
      negative,
      control_net: link(NODE_IDS.controlNetLoader, 0),
      image: link(NODE_IDS.controlImage, 0),
      strength: cn.strength,
      start_percent: cn.startPercent,
      end_percent: cn.endPercent,
      // FLUX ControlNets (Union, InstantX) encode the hint through the VAE; SDXL ones do not need it.
      ...(vae ? { vae } : {}),
    },
    _meta: { title: 'Apply ControlNet' },
  };
  return { positive: link(NODE_IDS.controlNetApply, 0), negative: link(NODE_IDS.controlNetApply, 1) };
}

/** The unified loader's preset: SDXL "PLUS" (ip-adapter-plus_sdxl_vit-h with CLIP ViT-H), strong enough for faces. */
export const IPADAPTER_PRESET = 'PLUS (high strength)';

/**
 * The IPAdapter branch (ComfyUI_IPAdapter_plus): one IPAdapterUnifiedLoader (it finds the CLIP vision
 * and IPAdapter models by preset), then per reference image a LoadImage and an apply node chained on
 * the model before the sampler. Returns the model link to sample with (unchanged without the pack).
 */
function addIPAdapter(graph: ApiGraph, recipe: RenderRecipe, model: Link, opts: WorkflowOptions): Link {
  const refs = recipe.references ?? [];
  const names = opts.referenceImageNames ?? [];
  if (refs.length === 0 || !opts.ipAdapterNode) return model;
  if (names.length < refs.length) {
    throw new ComicMasterError(
      'workflow_reference_image_missing',
      'The render could not be prepared (a character reference image is missing).',
      {
        operatorMessage: `recipe has ${refs.length} reference image(s) but ${names.length} uploaded name(s) were given: upload them first`,
      },
    );
  }
  graph[NODE_IDS.ipAdapterLoader] = {
    class_type: 'IPAdapterUnifiedLoader',
    inputs: { model, preset: IPADAPTER_PRESET },
    _meta: { title: 'IPAdapter loader' },
  };
  let current = link(NODE_IDS.ipAdapterLoader, 0);
  const ipadapter = link(NODE_IDS.ipAdapterLoader, 1);
  refs.forEach((ref, i) => {
    const imageId = String(NODE_IDS.referenceImageBase + i);
    const applyId = String(NODE_IDS.ipAdapterApplyBase + i);
    graph[imageId] = {
      class_type: 'LoadImage',
      inputs: { image: names[i] },
      _meta: { title: `Reference: ${ref.label}` },
    };
    const inputs = {
      model: current,
      ipadapter,
      image: link(imageId, 0),
      weight: ref.weight ?? 0.6,
      start_at: 0,
      end_at: 1,
    };
    graph[applyId] =
      opts.ipAdapterNode === 'IPAdapter'
        ? {
            class_type: 'IPAdapter',
            inputs: { ...inputs, weight_type: 'standard' },
            _meta: { title: `IPAdapter: ${ref.label}` },
          }
        : {
            class_type: 'IPAdapterAdvanced',
            inputs: { ...inputs, weight_type: 'linear', combine_embeds: 'concat', embeds_scaling: 'V only' },
            _meta: { title: `IPAdapter: ${ref.label}` },
          };
    current = link(applyId, 0);
  });
  return current;
}

function saveNodes(graph: ApiGraph, samples: Link, vae: Link, prefix: string): void {
  graph[NODE_IDS.decode] = {
    class_type: 'VAEDecode',
    inputs: { samples, vae },
    _meta: { title: 'VAE Decode' },
  };
  graph[NODE_IDS.save] = {
    class_type: 'SaveImage',
    inputs: { images: link(NODE_IDS.decode, 0), filename_prefix: prefix },
    _meta: { title: 'Save panel' },
  };
}

/** The recipe's LoRAs chained after the model and CLIP (SDXL-family and SD 3.5 graphs). */
function addLoras(
  graph: ApiGraph,
  recipe: RenderRecipe,
  model: Link,
  clip: Link,
): { model: Link; clip: Link } {
  recipe.loras.forEach((lora, i) => {
    const id = String(NODE_IDS.loraBase + i);
    graph[id] = {
      class_type: 'LoraLoader',
      inputs: {
        model,
        clip,
        lora_name: lora.name,
        strength_model: lora.strength,
        strength_clip: lora.strength,
      },
      _meta: { title: `LoRA: ${lora.name}` },
    };
    model = link(id, 0);
    clip = link(id, 1);
  });
  return { model, clip };
}

/** The recipe's LoRAs chained after the diffusion model only (FLUX graphs: the text encoders stay as they are). */
function addModelOnlyLoras(graph: ApiGraph, recipe: RenderRecipe, model: Link): Link {
  recipe.loras.forEach((lora, i) => {
    const id = String(NODE_IDS.loraBase + i);
    graph[id] = {
      class_type: 'LoraLoaderModelOnly',
      inputs: { model, lora_name: lora.name, strength_model: lora.strength },
      _meta: { title: `LoRA: ${lora.name}` },
    };
    model = link(id, 0);
  });
  return model;
}

/** The positive and negative CLIPTextEncode nodes, both on `clip`. */
function addPrompts(graph: ApiGraph, recipe: RenderRecipe, clip: Link): void {
  graph[NODE_IDS.positive] = {
    class_type: 'CLIPTextEncode',
    inputs: { text: recipe.positive, clip },
    _meta: { title: 'Positive prompt' },
  };
  graph[NODE_IDS.negative] = {
    class_type: 'CLIPTextEncode',
    inputs: { text: recipe.negative, clip },
    _meta: { title: 'Negative prompt' },
  };
}

/** The empty latent (its class and title per family) and a KSampler at full denoise. */
function addKSampler(
  graph: ApiGraph,
  recipe: RenderRecipe,
  model: Link,
  cond: { positive: Link; negative: Link },
  latent: { classType: string; title: string },
): void {
  graph[NODE_IDS.latent] = {
    class_type: latent.classType,
    inputs: { width: recipe.width, height: recipe.height, batch_size: recipe.candidates },
    _meta: { title: latent.title },
  };
  graph[NODE_IDS.sampler] = {
    class_type: 'KSampler',
    inputs: {
      model,
      seed: recipe.seed,
      steps: recipe.steps,
      cfg: recipe.cfg,
      sampler_name: recipe.sampler,
      scheduler: recipe.scheduler,
      positive: cond.positive,
      negative: cond.negative,
      latent_image: link(NODE_IDS.latent, 0),
      denoise: 1,
    },
    _meta: { title: 'KSampler' },
  };
}

/**
 * The FLUX sampling chain, as ComfyUI's FLUX examples: an empty latent, RandomNoise, KSamplerSelect,
 * a sigma source (the scheduler node — the one part that differs between FLUX.1 and FLUX.2),
 * BasicGuider (no negative: FLUX is guidance-distilled) and SamplerCustomAdvanced tying them together.
 */
function addCustomSampler(
  graph: ApiGraph,
  recipe: RenderRecipe,
  model: Link,
  conditioning: Link,
  parts: { latent: { classType: string; title: string }; scheduler: ApiNode },
): void {
  graph[NODE_IDS.latent] = {
    class_type: parts.latent.classType,
    inputs: { width: recipe.width, height: recipe.height, batch_size: recipe.candidates },
    _meta: { title: parts.latent.title },
  };
  graph[NODE_IDS.noise] = {
    class_type: 'RandomNoise',
    inputs: { noise_seed: recipe.seed },
    _meta: { title: 'Noise' },
  };
  graph[NODE_IDS.samplerSelect] = {
    class_type: 'KSamplerSelect',
    inputs: { sampler_name: recipe.sampler },
    _meta: { title: 'Sampler' },
  };
  graph[NODE_IDS.scheduler] = parts.scheduler;
  graph[NODE_IDS.guider] = {
    class_type: 'BasicGuider',
    inputs: { model, conditioning },
    _meta: { title: 'Guider' },
  };
  graph[NODE_IDS.sampler] = {
    class_type: 'SamplerCustomAdvanced',
    inputs: {
      noise: link(NODE_IDS.noise, 0),
      guider: link(NODE_IDS.guider, 0),
      sampler: link(NODE_IDS.samplerSelect, 0),
      sigmas: link(NODE_IDS.scheduler, 0),
      latent_image: link(NODE_IDS.latent, 0),
    },
    _meta: { title: 'Sampler (custom advanced)' },
  };
}

function sdxlGraph(recipe: RenderRecipe, models: { checkpoint: string }, opts: WorkflowOptions): ApiGraph {
  const graph: ApiGraph = {};
  graph[NODE_IDS.model] = {
    class_type: 'CheckpointLoaderSimple',
    inputs: { ckpt_name: models.checkpoint },
    _meta: { title: `Checkpoint: ${models.checkpoint}` },
  };
  let model = link(NODE_IDS.model, 0);
  let clip = link(NODE_IDS.model, 1);
  ({ model, clip } = addLoras(graph, recipe, model, clip));
  model = addIPAdapter(graph, recipe, model, opts);
  if (recipe.vPrediction) {
    graph[NODE_IDS.modelSampling] = {
      class_type: 'ModelSamplingDiscrete',
      inputs: { model, sampling: 'v_prediction', zsnr: true },
      _meta: { title: 'v-prediction sampling' },
    };
    model = link(NODE_IDS.modelSampling, 0);
  } else if (recipe.family === 'playground') {
    // Playground v2.5 predicts in EDM space with its own latent scaling; ComfyUI's preset for it
    // sets both (sigma range as the model card: 0.002 … 120).
    graph[NODE_IDS.modelSampling] = {
      class_type: 'ModelSamplingContinuousEDM',
      inputs: { model, sampling: 'edm_playground_v2.5', sigma_max: 120, sigma_min: 0.002 },
      _meta: { title: 'Playground v2.5 EDM sampling' },
    };
    model = link(NODE_IDS.modelSampling, 0);
  }
  addPrompts(graph, recipe, clip);
  const cond = addControlNet(
    graph,
    recipe,
    opts.controlImageName ?? '',
    link(NODE_IDS.positive, 0),
    link(NODE_IDS.negative, 0),
    null,
  );
  addKSampler(graph, recipe, model, cond, { classType: 'EmptyLatentImage', title: 'Empty latent' });
  saveNodes(graph, link(NODE_IDS.sampler, 0), link(NODE_IDS.model, 2), opts.filenamePrefix);
  return graph;
}

function fluxGraph(
  recipe: RenderRecipe,
  models: { unet: string; weightDtype: string; clipT5: string; clipL: string; vae: string },
  opts: WorkflowOptions,
): ApiGraph {
  const graph: ApiGraph = {};
  graph[NODE_IDS.model] = {
    class_type: 'UNETLoader',
    inputs: { unet_name: models.unet, weight_dtype: models.weightDtype },
    _meta: { title: `Diffusion model: ${models.unet}` },
  };
  graph[NODE_IDS.clip] = {
    class_type: 'DualCLIPLoader',
    inputs: { clip_name1: models.clipT5, clip_name2: models.clipL, type: 'flux' },
    _meta: { title: 'Text encoders' },
  };
  graph[NODE_IDS.vae] = {
    class_type: 'VAELoader',
    inputs: { vae_name: models.vae },
    _meta: { title: `VAE: ${models.vae}` },
  };

  let model = link(NODE_IDS.model, 0);
  model = addModelOnlyLoras(graph, recipe, model);
  // FLUX.1-dev shifts its sigma schedule by resolution; the default workflow sets it per size.
  graph[NODE_IDS.modelSampling] = {
    class_type: 'ModelSamplingFlux',
    inputs: { model, max_shift: 1.15, base_shift: 0.5, width: recipe.width, height: recipe.height },
    _meta: { title: 'FLUX sampling shift' },
  };
  model = link(NODE_IDS.modelSampling, 0);

  graph[NODE_IDS.positive] = {
    class_type: 'CLIPTextEncode',
    inputs: { text: recipe.positive, clip: link(NODE_IDS.clip, 0) },
    _meta: { title: 'Prompt' },
  };
  graph[NODE_IDS.fluxGuidance] = {
    class_type: 'FluxGuidance',
    inputs: { conditioning: link(NODE_IDS.positive, 0), guidance: recipe.guidance ?? 3.5 },
    _meta: { title: 'FLUX guidance' },
  };
  // BasicGuider has no negative; ControlNetApplyAdvanced still wants one, so it gets the same conditioning.
  const guided = link(NODE_IDS.fluxGuidance, 0);
  const cond = addControlNet(
    graph,
    recipe,
    opts.controlImageName ?? '',
    guided,
    guided,
    link(NODE_IDS.vae, 0),
  );

  addCustomSampler(graph, recipe, model, cond.positive, {
    latent: { classType: 'EmptySD3LatentImage', title: 'Empty latent (16-channel)' },
    scheduler: {
      class_type: 'BasicScheduler',
      inputs: { model, scheduler: recipe.scheduler, steps: recipe.steps, denoise: 1 },
      _meta: { title: 'Scheduler' },
    },
  });
  saveNodes(graph, link(NODE_IDS.sampler, 0), link(NODE_IDS.vae, 0), opts.filenamePrefix);
  return graph;
}

/**
 * FLUX.1 schnell, as ComfyUI's example: the dev chain without FluxGuidance (schnell has no guidance
 * embedding) and without ModelSamplingFlux (it is distilled for a fixed shift), 4 steps.
 */
function fluxSchnellGraph(
  recipe: RenderRecipe,
  models: { unet: string; weightDtype: string; clipT5: string; clipL: string; vae: string },
  opts: WorkflowOptions,
): ApiGraph {
  const graph = fluxGraph(recipe, models, opts);
  delete graph[NODE_IDS.modelSampling];
  delete graph[NODE_IDS.fluxGuidance];
  // Re-point what read the removed nodes at their inputs.
  const model =
    recipe.loras.length > 0
      ? link(String(NODE_IDS.loraBase + recipe.loras.length - 1), 0)
      : link(NODE_IDS.model, 0);
  const prompt = link(NODE_IDS.positive, 0);
  graph[NODE_IDS.scheduler]!.inputs.model = model;
  graph[NODE_IDS.guider]!.inputs.model = model;
  const apply = graph[NODE_IDS.controlNetApply];
  if (apply) {
    apply.inputs.positive = prompt;
    apply.inputs.negative = prompt;
  } else {
    graph[NODE_IDS.guider]!.inputs.conditioning = prompt;
  }
  return graph;
}

/** Node ids of FLUX.2 reference image i: LoadImage, FluxKontextImageScale, VAEEncode, ReferenceLatent. */
const referenceIds = (i: number) => ({
  load: `9${i}0`,
  scale: `9${i}1`,
  encode: `9${i}2`,
  reference: `9${i}3`,
});

/**
 * FLUX.2 dev, as ComfyUI's FLUX.2 example: UNETLoader (fp8-mixed weights) + CLIPLoader(type flux2,
 * the Mistral encoder) + its own VAE; CLIPTextEncode → FluxGuidance → one ReferenceLatent per
 * reference image (scaled to about a megapixel and VAE-encoded) → BasicGuider; Flux2Scheduler takes
 * the size; EmptyFlux2LatentImage; SamplerCustomAdvanced.
 */
function flux2Graph(
  recipe: RenderRecipe,
  models: { unet: string; weightDtype: string; textEncoder: string; vae: string },
  opts: WorkflowOptions,
): ApiGraph {
  const references = recipe.references ?? [];
  const names = opts.referenceImageNames ?? [];
  if (names.length < references.length) {
    throw new ComicMasterError(
      'workflow_reference_image_missing',
      'The render could not be prepared (a character reference image is missing).',
      {
        operatorMessage: `recipe has ${references.length} reference image(s) but ${names.length} uploaded name(s) were given: upload them first`,
      },
    );
  }
  if (recipe.controlNet) {
    throw new ComicMasterError(
      'workflow_unsupported',
      'FLUX.2 panels cannot follow a composition guide yet.',
      {
        operatorMessage: 'no FLUX.2 ControlNet graph is built: drop the controlNet from FLUX.2 recipes',
      },
    );
  }
  const graph: ApiGraph = {};
  graph[NODE_IDS.model] = {
    class_type: 'UNETLoader',
    inputs: { unet_name: models.unet, weight_dtype: models.weightDtype },
    _meta: { title: `Diffusion model: ${models.unet}` },
  };
  graph[NODE_IDS.clip] = {
    class_type: 'CLIPLoader',
    inputs: { clip_name: models.textEncoder, type: 'flux2' },
    _meta: { title: 'Text encoder' },
  };
  graph[NODE_IDS.vae] = {
    class_type: 'VAELoader',
    inputs: { vae_name: models.vae },
    _meta: { title: `VAE: ${models.vae}` },
  };
  let model = link(NODE_IDS.model, 0);
  model = addModelOnlyLoras(graph, recipe, model);
  graph[NODE_IDS.positive] = {
    class_type: 'CLIPTextEncode',
    inputs: { text: recipe.positive, clip: link(NODE_IDS.clip, 0) },
    _meta: { title: 'Prompt' },
  };
  graph[NODE_IDS.fluxGuidance] = {
    class_type: 'FluxGuidance',
    inputs: { conditioning: link(NODE_IDS.positive, 0), guidance: recipe.guidance ?? 4 },
    _meta: { title: 'FLUX guidance' },
  };
  let conditioning = link(NODE_IDS.fluxGuidance, 0);
  references.forEach((ref, i) => {
    const ids = referenceIds(i);
    graph[ids.load] = {
      class_type: 'LoadImage',
      inputs: { image: names[i] },
      _meta: { title: `Reference: ${ref.label}` },
    };
    // About one megapixel keeps the reference tokens affordable. FluxKontextImageScale (image in,
    // image out, aspect kept) rather than the example's ImageScaleToTotalPixels, whose inputs have
    // changed between ComfyUI releases.
    graph[ids.scale] = {
      class_type: 'FluxKontextImageScale',
      inputs: { image: link(ids.load, 0) },
      _meta: { title: 'Reference to about 1 MP' },
    };
    graph[ids.encode] = {
      class_type: 'VAEEncode',
      inputs: { pixels: link(ids.scale, 0), vae: link(NODE_IDS.vae, 0) },
      _meta: { title: 'Encode reference' },
    };
    graph[ids.reference] = {
      class_type: 'ReferenceLatent',
      inputs: { conditioning, latent: link(ids.encode, 0) },
      _meta: { title: `Reference latent: ${ref.label}` },
    };
    conditioning = link(ids.reference, 0);
  });
  addCustomSampler(graph, recipe, model, conditioning, {
    latent: { classType: 'EmptyFlux2LatentImage', title: 'Empty latent (FLUX.2)' },
    scheduler: {
      class_type: 'Flux2Scheduler',
      inputs: { steps: recipe.steps, width: recipe.width, height: recipe.height },
      _meta: { title: 'Scheduler (FLUX.2)' },
    },
  });
  saveNodes(graph, link(NODE_IDS.sampler, 0), link(NODE_IDS.vae, 0), opts.filenamePrefix);
  return graph;
}

/**
 * SD 3.5 Large/Medium, as ComfyUI's SD3.5 examples: the checkpoint gives the MMDiT and VAE, and
 * TripleCLIPLoader the three text encoders when the checkpoint has none; ModelSamplingSD3 (shift 3),
 * EmptySD3LatentImage, KSampler with a real negative (SD3 uses CFG).
 */
function sd3Graph(
  recipe: RenderRecipe,
  models: { checkpoint: string; textEncoders: { clipL: string; clipG: string; t5: string } | null },
  opts: WorkflowOptions,
): ApiGraph {
  const graph: ApiGraph = {};
  graph[NODE_IDS.model] = {
    class_type: 'CheckpointLoaderSimple',
    inputs: { ckpt_name: models.checkpoint },
    _meta: { title: `Checkpoint: ${models.checkpoint}` },
  };
  let clip = link(NODE_IDS.model, 1);
  if (models.textEncoders) {
    graph[NODE_IDS.clip] = {
      class_type: 'TripleCLIPLoader',
      inputs: {
        clip_name1: models.textEncoders.clipL,
        clip_name2: models.textEncoders.clipG,
        clip_name3: models.textEncoders.t5,
      },
      _meta: { title: 'Text encoders (CLIP-L, CLIP-G, T5)' },
    };
    clip = link(NODE_IDS.clip, 0);
  }
  let model = link(NODE_IDS.model, 0);
  ({ model, clip } = addLoras(graph, recipe, model, clip));
  graph[NODE_IDS.modelSampling] = {
    class_type: 'ModelSamplingSD3',
    inputs: { model, shift: familyProfile(recipe.family).samplingShift ?? 3 },
    _meta: { title: 'SD3 sampling shift' },
  };
  model = link(NODE_IDS.modelSampling, 0);
  addPrompts(graph, recipe, clip);
  const cond = addControlNet(
    graph,
    recipe,
    opts.controlImageName ?? '',
    link(NODE_IDS.positive, 0),
    link(NODE_IDS.negative, 0),
    link(NODE_IDS.model, 2),
  );
  addKSampler(graph, recipe, model, cond, {
    classType: 'EmptySD3LatentImage',
    title: 'Empty latent (16-channel)',
  });
  saveNodes(graph, link(NODE_IDS.sampler, 0), link(NODE_IDS.model, 2), opts.filenamePrefix);
  return graph;
}
