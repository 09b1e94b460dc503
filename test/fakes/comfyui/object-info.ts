/**
 * A minimal /object_info table for the fake ComfyUI: the node types of shared/reference/comfyui.md §3,
 * in ComfyUI's own shape (V1 combos `[[options], {opts}]`). Kept here so the fake works without any
 * fixture; when test/golden/object_info.json exists its entries are layered on top. Model combos are
 * filled from the fake's installed models at request time (see `withInstalledModels`).
 */

export type InputSpec = [unknown, Record<string, unknown>?];
export interface NodeInfo {
  input: {
    required?: Record<string, InputSpec>;
    optional?: Record<string, InputSpec>;
    hidden?: Record<string, unknown>;
  };
  input_order?: Record<string, string[]>;
  output: string[];
  output_is_list: boolean[];
  output_name: string[];
  name: string;
  display_name: string;
  description: string;
  category: string;
  output_node: boolean;
}
export type ObjectInfo = Record<string, NodeInfo>;

export const SAMPLERS = [
  'euler',
  'euler_cfg_pp',
  'euler_ancestral',
  'euler_ancestral_cfg_pp',
  'heun',
  'heunpp2',
  'dpm_2',
  'dpm_2_ancestral',
  'lms',
  'dpm_fast',
  'dpm_adaptive',
  'dpmpp_2s_ancestral',
  'dpmpp_2s_ancestral_cfg_pp',
  'dpmpp_sde',
  'dpmpp_sde_gpu',
  'dpmpp_2m',
  'dpmpp_2m_cfg_pp',
  'dpmpp_2m_sde',
  'dpmpp_2m_sde_gpu',
  'dpmpp_2m_sde_heun',
  'dpmpp_2m_sde_heun_gpu',
  'dpmpp_3m_sde',
  'dpmpp_3m_sde_gpu',
  'ddpm',
  'lcm',
  'ipndm',
  'ipndm_v',
  'deis',
  'res_multistep',
  'res_multistep_cfg_pp',
  'res_multistep_ancestral',
  'res_multistep_ancestral_cfg_pp',
  'gradient_estimation',
  'gradient_estimation_cfg_pp',
  'er_sde',
  'seeds_2',
  'seeds_3',
  'sa_solver',
  'sa_solver_pece',
  'ddim',
  'uni_pc',
  'uni_pc_bh2',
];
export const SCHEDULERS = [
  'simple',
  'sgm_uniform',
  'karras',
  'exponential',
  'ddim_uniform',
  'beta',
  'normal',
  'linear_quadratic',
  'kl_optimal',
];
const UPSCALE = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'];
// 2^64 − 1, as ComfyUI declares it (a Python int); JSON carries it as 18446744073709551615.
const SEED_MAX = 2 ** 64 - 1;

function node(
  name: string,
  required: Record<string, InputSpec>,
  output: string[],
  extra: {
    optional?: Record<string, InputSpec>;
    outputNode?: boolean;
    outputName?: string[];
    category?: string;
  } = {},
): NodeInfo {
  return {
    input: { required, ...(extra.optional ? { optional: extra.optional } : {}) },
    input_order: {
      required: Object.keys(required),
      ...(extra.optional ? { optional: Object.keys(extra.optional) } : {}),
    },
    output,
    output_is_list: output.map(() => false),
    output_name: extra.outputName ?? output,
    name,
    display_name: name,
    description: '',
    category: extra.category ?? 'fake',
    output_node: extra.outputNode ?? false,
  };
}

const combo = (options: string[], opts: Record<string, unknown> = {}): InputSpec => [options, opts];
const int = (def: number, min: number, max: number, step = 1): InputSpec => [
  'INT',
  { default: def, min, max, step },
];
const float = (def: number, min: number, max: number, step = 0.01): InputSpec => [
  'FLOAT',
  { default: def, min, max, step },
];
const link = (type: string): InputSpec => [type];

export function builtinObjectInfo(): ObjectInfo {
  const size = (def: number, step: number) => int(def, 16, 16384, step);
  return {
    CheckpointLoaderSimple: node('CheckpointLoaderSimple', { ckpt_name: combo([]) }, [
      'MODEL',
      'CLIP',
      'VAE',
    ]),
    LoraLoader: node(
      'LoraLoader',
      {
        model: link('MODEL'),
        clip: link('CLIP'),
        lora_name: combo([]),
        strength_model: float(1, -100, 100),
        strength_clip: float(1, -100, 100),
      },
      ['MODEL', 'CLIP'],
    ),
    LoraLoaderModelOnly: node(
      'LoraLoaderModelOnly',
      { model: link('MODEL'), lora_name: combo([]), strength_model: float(1, -100, 100) },
      ['MODEL'],
    ),
    CLIPSetLastLayer: node('CLIPSetLastLayer', { clip: link('CLIP'), stop_at_clip_layer: int(-1, -24, -1) }, [
      'CLIP',
    ]),
    CLIPTextEncode: node(
      'CLIPTextEncode',
      { text: ['STRING', { multiline: true, dynamicPrompts: true }], clip: link('CLIP') },
      ['CONDITIONING'],
    ),
    EmptyLatentImage: node(
      'EmptyLatentImage',
      { width: size(512, 8), height: size(512, 8), batch_size: int(1, 1, 4096) },
      ['LATENT'],
    ),
    EmptySD3LatentImage: node(
      'EmptySD3LatentImage',
      { width: size(1024, 16), height: size(1024, 16), batch_size: int(1, 1, 4096) },
      ['LATENT'],
    ),
    KSampler: node(
      'KSampler',
      {
        model: link('MODEL'),
        seed: int(0, 0, SEED_MAX),
        steps: int(20, 1, 10000),
        cfg: float(8, 0, 100, 0.1),
        sampler_name: combo(SAMPLERS),
        scheduler: combo(SCHEDULERS),
        positive: link('CONDITIONING'),
        negative: link('CONDITIONING'),
        latent_image: link('LATENT'),
        denoise: float(1, 0, 1),
      },
      ['LATENT'],
    ),
    KSamplerAdvanced: node(
      'KSamplerAdvanced',
      {
        model: link('MODEL'),
        add_noise: combo(['enable', 'disable']),
        noise_seed: int(0, 0, SEED_MAX),
        steps: int(20, 1, 10000),
        cfg: float(8, 0, 100, 0.1),
        sampler_name: combo(SAMPLERS),
        scheduler: combo(SCHEDULERS),
        positive: link('CONDITIONING'),
        negative: link('CONDITIONING'),
        latent_image: link('LATENT'),
        start_at_step: int(0, 0, 10000),
        end_at_step: int(10000, 0, 10000),
        return_with_leftover_noise: combo(['disable', 'enable']),
      },
      ['LATENT'],
    ),
    VAEDecode: node('VAEDecode', { samples: link('LATENT'), vae: link('VAE') }, ['IMAGE']),
    VAELoader: node('VAELoader', { vae_name: combo([]) }, ['VAE']),
    SaveImage: node(
      'SaveImage',
      { images: link('IMAGE'), filename_prefix: ['STRING', { default: 'ComfyUI' }] },
      [],
      { outputNode: true },
    ),
    PreviewImage: node('PreviewImage', { images: link('IMAGE') }, [], { outputNode: true }),
    LoadImage: node('LoadImage', { image: combo([], { image_upload: true }) }, ['IMAGE', 'MASK']),
    ControlNetLoader: node('ControlNetLoader', { control_net_name: combo([]) }, ['CONTROL_NET']),
    ControlNetApplyAdvanced: node(
      'ControlNetApplyAdvanced',
      {
        positive: link('CONDITIONING'),
        negative: link('CONDITIONING'),
        control_net: link('CONTROL_NET'),
        image: link('IMAGE'),
        strength: float(1, 0, 10),
        start_percent: float(0, 0, 1, 0.001),
        end_percent: float(1, 0, 1, 0.001),
      },
      ['CONDITIONING', 'CONDITIONING'],
      { optional: { vae: link('VAE') }, outputName: ['positive', 'negative'] },
    ),
    ImageScale: node(
      'ImageScale',
      {
        image: link('IMAGE'),
        upscale_method: combo(UPSCALE),
        width: int(512, 0, 16384),
        height: int(512, 0, 16384),
        crop: combo(['disabled', 'center']),
      },
      ['IMAGE'],
    ),
    LatentUpscale: node(
      'LatentUpscale',
      {
        samples: link('LATENT'),
        upscale_method: combo([...UPSCALE, 'bislerp']),
        width: int(512, 0, 16384, 8),
        height: int(512, 0, 16384, 8),
        crop: combo(['disabled', 'center']),
      },
      ['LATENT'],
    ),
    LatentUpscaleBy: node(
      'LatentUpscaleBy',
      {
        samples: link('LATENT'),
        upscale_method: combo([...UPSCALE, 'bislerp']),
        scale_by: float(1.5, 0.01, 8),
      },
      ['LATENT'],
    ),
    ModelSamplingDiscrete: node(
      'ModelSamplingDiscrete',
      {
        model: link('MODEL'),
        sampling: combo(['eps', 'v_prediction', 'lcm', 'x0', 'img_to_img']),
        zsnr: ['BOOLEAN', { default: false }],
      },
      ['MODEL'],
    ),
    UNETLoader: node(
      'UNETLoader',
      { unet_name: combo([]), weight_dtype: combo(['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2']) },
      ['MODEL'],
    ),
    DualCLIPLoader: node(
      'DualCLIPLoader',
      {
        clip_name1: combo([]),
        clip_name2: combo([]),
        type: combo(['sdxl', 'sd3', 'flux', 'hunyuan_video', 'hidream', 'hunyuan_image']),
      },
      ['CLIP'],
      { optional: { device: combo(['default', 'cpu'], { advanced: true }) } },
    ),
    CLIPTextEncodeFlux: node(
      'CLIPTextEncodeFlux',
      {
        clip: link('CLIP'),
        clip_l: ['STRING', { multiline: true }],
        t5xxl: ['STRING', { multiline: true }],
        guidance: float(3.5, 0, 100, 0.1),
      },
      ['CONDITIONING'],
    ),
    FluxGuidance: node(
      'FluxGuidance',
      { conditioning: link('CONDITIONING'), guidance: float(3.5, 0, 100, 0.1) },
      ['CONDITIONING'],
    ),
    ModelSamplingFlux: node(
      'ModelSamplingFlux',
      {
        model: link('MODEL'),
        max_shift: float(1.15, 0, 100),
        base_shift: float(0.5, 0, 100),
        width: size(1024, 8),
        height: size(1024, 8),
      },
      ['MODEL'],
    ),
    RandomNoise: node('RandomNoise', { noise_seed: int(0, 0, SEED_MAX) }, ['NOISE']),
    KSamplerSelect: node('KSamplerSelect', { sampler_name: combo(SAMPLERS) }, ['SAMPLER']),
    BasicScheduler: node(
      'BasicScheduler',
      {
        model: link('MODEL'),
        scheduler: combo(SCHEDULERS),
        steps: int(20, 1, 10000),
        denoise: float(1, 0, 1),
      },
      ['SIGMAS'],
    ),
    BasicGuider: node('BasicGuider', { model: link('MODEL'), conditioning: link('CONDITIONING') }, [
      'GUIDER',
    ]),
    // Families beyond SDXL/FLUX.1 (comfy_extras nodes_sd3, nodes_model_advanced, nodes_flux, nodes_edit_model, nodes_upscale_model).
    CLIPLoader: node(
      'CLIPLoader',
      {
        clip_name: combo([]),
        type: combo([
          'stable_diffusion',
          'stable_cascade',
          'sd3',
          'stable_audio',
          'mochi',
          'ltxv',
          'pixart',
          'cosmos',
          'lumina2',
          'wan',
          'hidream',
          'chroma',
          'ace',
          'omnigen2',
          'qwen_image',
          'hunyuan_image',
          'flux2',
        ]),
      },
      ['CLIP'],
      { optional: { device: combo(['default', 'cpu'], { advanced: true }) } },
    ),
    TripleCLIPLoader: node(
      'TripleCLIPLoader',
      { clip_name1: combo([]), clip_name2: combo([]), clip_name3: combo([]) },
      ['CLIP'],
    ),
    ModelSamplingSD3: node('ModelSamplingSD3', { model: link('MODEL'), shift: float(3, 0, 100) }, ['MODEL']),
    ModelSamplingAuraFlow: node(
      'ModelSamplingAuraFlow',
      { model: link('MODEL'), shift: float(1.73, 0, 100) },
      ['MODEL'],
    ),
    ModelSamplingContinuousEDM: node(
      'ModelSamplingContinuousEDM',
      {
        model: link('MODEL'),
        sampling: combo(['v_prediction', 'edm', 'edm_playground_v2.5', 'eps', 'cosmos_rflow']),
        sigma_max: float(120, 0, 1000, 0.001),
        sigma_min: float(0.002, 0, 1000, 0.001),
      },
      ['MODEL'],
    ),
    EmptyFlux2LatentImage: node(
      'EmptyFlux2LatentImage',
      { width: size(1024, 16), height: size(1024, 16), batch_size: int(1, 1, 4096) },
      ['LATENT'],
    ),
    Flux2Scheduler: node(
      'Flux2Scheduler',
      { steps: int(20, 1, 4096), width: size(1024, 1), height: size(1024, 1) },
      ['SIGMAS'],
    ),
    ReferenceLatent: node('ReferenceLatent', { conditioning: link('CONDITIONING') }, ['CONDITIONING'], {
      optional: { latent: link('LATENT') },
    }),
    FluxKontextImageScale: node('FluxKontextImageScale', { image: link('IMAGE') }, ['IMAGE']),
    VAEEncode: node('VAEEncode', { pixels: link('IMAGE'), vae: link('VAE') }, ['LATENT']),
    UpscaleModelLoader: node('UpscaleModelLoader', { model_name: combo([]) }, ['UPSCALE_MODEL']),
    ImageUpscaleWithModel: node(
      'ImageUpscaleWithModel',
      { upscale_model: link('UPSCALE_MODEL'), image: link('IMAGE') },
      ['IMAGE'],
    ),
    SamplerCustomAdvanced: node(
      'SamplerCustomAdvanced',
      {
        noise: link('NOISE'),
        guider: link('GUIDER'),
        sampler: link('SAMPLER'),
        sigmas: link('SIGMAS'),
        latent_image: link('LATENT'),
      },
      ['LATENT', 'LATENT'],
      { outputName: ['output', 'denoised_output'] },
    ),
  };
}

/** Which combo input lists which model folder (ComfyUI fills these from folder_paths). */
export const MODEL_COMBOS: { node: string; input: string; folder: string }[] = [
  { node: 'CheckpointLoaderSimple', input: 'ckpt_name', folder: 'checkpoints' },
  { node: 'LoraLoader', input: 'lora_name', folder: 'loras' },
  { node: 'LoraLoaderModelOnly', input: 'lora_name', folder: 'loras' },
  { node: 'UNETLoader', input: 'unet_name', folder: 'diffusion_models' },
  { node: 'VAELoader', input: 'vae_name', folder: 'vae' },
  { node: 'DualCLIPLoader', input: 'clip_name1', folder: 'text_encoders' },
  { node: 'DualCLIPLoader', input: 'clip_name2', folder: 'text_encoders' },
  { node: 'ControlNetLoader', input: 'control_net_name', folder: 'controlnet' },
  { node: 'CLIPLoader', input: 'clip_name', folder: 'text_encoders' },
  { node: 'TripleCLIPLoader', input: 'clip_name1', folder: 'text_encoders' },
  { node: 'TripleCLIPLoader', input: 'clip_name2', folder: 'text_encoders' },
  { node: 'TripleCLIPLoader', input: 'clip_name3', folder: 'text_encoders' },
  { node: 'UpscaleModelLoader', input: 'model_name', folder: 'upscale_models' },
  { node: 'LoadImage', input: 'image', folder: 'input' },
];

/** A copy of `table` whose model combos list exactly `models[folder]` (V1 and V3 combo shapes). */
export function withInstalledModels(table: ObjectInfo, models: Record<string, string[]>): ObjectInfo {
  const out = structuredClone(table);
  for (const { node: name, input, folder } of MODEL_COMBOS) {
    const spec = out[name]?.input.required?.[input];
    if (!spec) continue;
    const options = [...(models[folder] ?? [])].sort();
    if (spec[0] === 'COMBO') spec[1] = { ...(spec[1] ?? {}), options };
    else spec[0] = options;
  }
  return out;
}

/** The options of a combo input spec, V1 `[[…]]` or V3 `["COMBO", {options}]`; undefined if not a combo. */
export function comboOptions(spec: InputSpec): unknown[] | undefined {
  if (Array.isArray(spec[0])) return spec[0] as unknown[];
  if (spec[0] === 'COMBO') {
    const options = spec[1]?.options;
    return Array.isArray(options) ? options : [];
  }
  return undefined;
}

/** ComfyUI_IPAdapter_plus's weight types (IPAdapterPlus.py WEIGHT_TYPES). */
export const IPADAPTER_WEIGHT_TYPES = [
  'linear',
  'ease in',
  'ease out',
  'ease in-out',
  'reverse in-out',
  'weak input',
  'weak output',
  'weak middle',
  'strong middle',
  'style transfer',
  'composition',
  'strong style transfer',
  'style and composition',
  'style transfer precise',
  'composition precise',
];
export const IPADAPTER_PRESETS = [
  'LIGHT - SD1.5 only (low strength)',
  'STANDARD (medium strength)',
  'VIT-G (medium strength)',
  'PLUS (high strength)',
  'PLUS FACE (portraits)',
  'FULL FACE - SD1.5 only (portraits stronger)',
];

/**
 * The nodes of the ComfyUI_IPAdapter_plus custom pack that the workflow builder uses, declared as the
 * pack declares them (IPAdapterPlus.py INPUT_TYPES / RETURN_TYPES), plus core CLIPVisionLoader. A
 * custom pack is optional: a fake ComfyUI presents these only when a test layers them in
 * (an objectInfoPath fixture with these layered in, as test/ipadapter.test.ts does).
 */
export function ipAdapterObjectInfo(): ObjectInfo {
  const weight = float(1, -1, 5, 0.05);
  const at = (def: number) => float(def, 0, 1, 0.001);
  return {
    CLIPVisionLoader: node('CLIPVisionLoader', { clip_name: combo([]) }, ['CLIP_VISION']),
    IPAdapterUnifiedLoader: node(
      'IPAdapterUnifiedLoader',
      { model: link('MODEL'), preset: combo(IPADAPTER_PRESETS) },
      ['MODEL', 'IPADAPTER'],
      {
        optional: { ipadapter: link('IPADAPTER') },
        outputName: ['model', 'ipadapter'],
        category: 'ipadapter',
      },
    ),
    IPAdapter: node(
      'IPAdapter',
      {
        model: link('MODEL'),
        ipadapter: link('IPADAPTER'),
        image: link('IMAGE'),
        weight: float(1, -1, 3, 0.05),
        start_at: at(0),
        end_at: at(1),
        weight_type: combo(['standard', 'prompt is more important', 'style transfer']),
      },
      ['MODEL'],
      { optional: { attn_mask: link('MASK') }, category: 'ipadapter' },
    ),
    IPAdapterAdvanced: node(
      'IPAdapterAdvanced',
      {
        model: link('MODEL'),
        ipadapter: link('IPADAPTER'),
        image: link('IMAGE'),
        weight,
        weight_type: combo(IPADAPTER_WEIGHT_TYPES),
        combine_embeds: combo(['concat', 'add', 'subtract', 'average', 'norm average']),
        start_at: at(0),
        end_at: at(1),
        embeds_scaling: combo(['V only', 'K+V', 'K+V w/ C penalty', 'K+mean(V) w/ C penalty']),
      },
      ['MODEL'],
      {
        optional: {
          image_negative: link('IMAGE'),
          attn_mask: link('MASK'),
          clip_vision: link('CLIP_VISION'),
        },
        category: 'ipadapter',
      },
    ),
  };
}
