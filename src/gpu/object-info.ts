import { z } from 'zod';
import { ComicMasterError } from '../errors.ts';
import { familyProfile } from '../comic/families.ts';
import type { ModelFamily } from '../comic/recipe.ts';
import type { ApiGraph } from './workflow.ts';

/**
 * GET /object_info: what a ComfyUI server can run — its node classes, their inputs, and (through the
 * combo lists) the models it has installed. We read it at start-up to learn the runner's
 * capabilities, and check every graph against it before sending, so that a missing LoRA or an
 * unknown sampler becomes a sentence a person can act on instead of a raw ComfyUI 400.
 *
 * Two encodings of a combo input exist (shared/reference/comfyui.md §1):
 *   V1 nodes: `[["a.safetensors", "b.safetensors"], {tooltip…}]`
 *   V3 nodes: `["COMBO", {options: ["a", "b"], …}]`
 */

// Loose on purpose: ComfyUI adds fields every few releases; we only insist on what we read.
const InputSection = z.record(z.string(), z.unknown());
export const NodeInfo = z
  .object({
    input: z
      .object({
        required: InputSection.optional(),
        optional: InputSection.optional(),
        hidden: InputSection.optional(),
      })
      .loose(),
    output: z.array(z.unknown()).optional(),
    output_name: z.array(z.unknown()).optional(),
    name: z.string().optional(),
    display_name: z.string().optional(),
    category: z.string().optional(),
    output_node: z.boolean().optional(),
  })
  .loose();
export type NodeInfo = z.infer<typeof NodeInfo>;
export const ObjectInfo = z.record(z.string(), NodeInfo);
export type ObjectInfo = z.infer<typeof ObjectInfo>;

export function parseObjectInfo(json: unknown): ObjectInfo {
  const parsed = ObjectInfo.safeParse(json);
  if (!parsed.success) {
    throw new ComicMasterError(
      'comfyui_object_info_invalid',
      'The GPU runner could not read what its ComfyUI can do.',
      {
        cause: parsed.error,
        operatorMessage: `GET /object_info returned an unexpected shape: ${z.prettifyError(parsed.error)}`,
      },
    );
  }
  return parsed.data;
}

/** One declared input, normalised from either encoding. */
export type InputSpec =
  | { kind: 'combo'; options: Array<string | number> | null }
  | { kind: 'INT' | 'FLOAT'; min?: number; max?: number }
  | { kind: 'STRING' }
  | { kind: 'BOOLEAN' }
  /** A socket fed by another node's output: MODEL, CLIP, CONDITIONING, … */
  | { kind: 'link'; type: string };

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const optionList = (v: unknown): Array<string | number> | null =>
  Array.isArray(v)
    ? v.filter((o): o is string | number => typeof o === 'string' || typeof o === 'number')
    : null;

export function parseInputSpec(spec: unknown): InputSpec {
  const [head, opts] = Array.isArray(spec) ? spec : [spec, undefined];
  const options = isRecord(opts) ? opts : {};
  if (Array.isArray(head)) return { kind: 'combo', options: optionList(head) };
  if (head === 'COMBO') return { kind: 'combo', options: optionList(options.options) };
  if (head === 'INT' || head === 'FLOAT') {
    return {
      kind: head,
      ...(typeof options.min === 'number' ? { min: options.min } : {}),
      ...(typeof options.max === 'number' ? { max: options.max } : {}),
    };
  }
  if (head === 'STRING') return { kind: 'STRING' };
  if (head === 'BOOLEAN') return { kind: 'BOOLEAN' };
  return { kind: 'link', type: typeof head === 'string' ? head : '*' };
}

function comboOptions(info: ObjectInfo, classType: string, input: string): string[] {
  const node = info[classType];
  const spec = node?.input.required?.[input] ?? node?.input.optional?.[input];
  if (spec === undefined) return [];
  const parsed = parseInputSpec(spec);
  return parsed.kind === 'combo' && parsed.options ? parsed.options.map(String) : [];
}

/** What one runner's ComfyUI offers, for routing work and for /runner status. */
export interface ComfyCapabilities {
  nodes: Set<string>;
  checkpoints: string[];
  loras: string[];
  /** FLUX-style diffusion models (UNETLoader, models/diffusion_models). */
  unets: string[];
  /** Text encoders (DualCLIPLoader, models/text_encoders). */
  clips: string[];
  vaes: string[];
  controlnets: string[];
  /** Image upscalers (UpscaleModelLoader, models/upscale_models): Real-ESRGAN and the like. */
  upscaleModels: string[];
  samplers: string[];
  schedulers: string[];
  hasControlNet: boolean;
  hasFlux: boolean;
  hasIPAdapter: boolean;
}

const first = (...lists: string[][]): string[] => lists.find((l) => l.length > 0) ?? [];

/**
 * The IPAdapter apply node a ComfyUI offers (ComfyUI_IPAdapter_plus), or null without the pack:
 * IPAdapterAdvanced when present, else the simple IPAdapter; both need IPAdapterUnifiedLoader and
 * CLIPVisionLoader.
 */
export function ipAdapterNodeOf(nodes: ReadonlySet<string>): 'IPAdapterAdvanced' | 'IPAdapter' | null {
  if (!nodes.has('IPAdapterUnifiedLoader') || !nodes.has('CLIPVisionLoader')) return null;
  if (nodes.has('IPAdapterAdvanced')) return 'IPAdapterAdvanced';
  if (nodes.has('IPAdapter')) return 'IPAdapter';
  return null;
}

export function capabilitiesFrom(info: ObjectInfo): ComfyCapabilities {
  const nodes = new Set(Object.keys(info));
  const has = (...names: string[]) => names.every((n) => nodes.has(n));
  return {
    nodes,
    checkpoints: comboOptions(info, 'CheckpointLoaderSimple', 'ckpt_name'),
    loras: first(
      comboOptions(info, 'LoraLoader', 'lora_name'),
      comboOptions(info, 'LoraLoaderModelOnly', 'lora_name'),
    ),
    unets: comboOptions(info, 'UNETLoader', 'unet_name'),
    clips: first(
      comboOptions(info, 'DualCLIPLoader', 'clip_name1'),
      comboOptions(info, 'CLIPLoader', 'clip_name'),
    ),
    vaes: comboOptions(info, 'VAELoader', 'vae_name'),
    controlnets: comboOptions(info, 'ControlNetLoader', 'control_net_name'),
    upscaleModels: comboOptions(info, 'UpscaleModelLoader', 'model_name'),
    samplers: first(
      comboOptions(info, 'KSampler', 'sampler_name'),
      comboOptions(info, 'KSamplerSelect', 'sampler_name'),
    ),
    schedulers: first(
      comboOptions(info, 'KSampler', 'scheduler'),
      comboOptions(info, 'BasicScheduler', 'scheduler'),
    ),
    hasControlNet: has('ControlNetLoader', 'ControlNetApplyAdvanced', 'LoadImage'),
    hasFlux: has(
      'UNETLoader',
      'DualCLIPLoader',
      'FluxGuidance',
      'BasicGuider',
      'SamplerCustomAdvanced',
      'EmptySD3LatentImage',
    ),
    // ComfyUI_IPAdapter_plus is a custom node pack; its presence is optional. The graph needs its
    // unified loader and an apply node; CLIPVisionLoader (core) is what the loader relies on.
    hasIPAdapter: ipAdapterNodeOf(nodes) !== null,
  };
}

export type WorkflowProblemCode =
  | 'unknown_node'
  | 'missing_input'
  | 'not_installed'
  | 'not_in_list'
  | 'below_min'
  | 'above_max'
  | 'wrong_type'
  | 'bad_link';

export interface WorkflowProblem {
  code: WorkflowProblemCode;
  nodeId: string;
  classType: string;
  input: string | null;
  /** A sentence a user or operator can act on. */
  message: string;
}

/** Inputs whose combo lists are installed model files, with the words a person uses for them. */
const MODEL_INPUTS: Record<string, string> = {
  ckpt_name: 'Checkpoint',
  lora_name: 'LoRA',
  unet_name: 'Diffusion model',
  clip_name: 'Text encoder',
  clip_name1: 'Text encoder',
  clip_name2: 'Text encoder',
  vae_name: 'VAE',
  control_net_name: 'ControlNet',
};

/**
 * Inputs ComfyUI does not check against their combo list because the node validates them itself
 * (LoadImage only checks that the file exists; uploads may sit in a subfolder the list omits).
 */
const SELF_VALIDATED: Record<string, string[]> = { LoadImage: ['image'], LoadImageMask: ['image'] };

function listForHumans(options: readonly (string | number)[], limit = 10): string {
  if (options.length === 0) return 'none installed';
  const shown = options.slice(0, limit).map(String).join(', ');
  return options.length > limit ? `${shown}, … ${options.length - limit} more` : shown;
}

function isLink(value: unknown): value is [string, number] {
  return (
    Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'number'
  );
}

function typesCompatible(expected: string, actual: string): boolean {
  if (expected === '*' || actual === '*') return true;
  const accepted = expected.split(',').map((t) => t.trim());
  return actual.split(',').some((t) => accepted.includes(t.trim()));
}

/**
 * Every problem ComfyUI's own validation would report for this graph, and a few it reports badly:
 * unknown node classes, missing required inputs, combo values not offered (a model not installed, an
 * unknown sampler), numbers outside min/max, literals of the wrong type, and links to missing nodes,
 * missing outputs or outputs of the wrong type. An empty list means the graph will be accepted.
 */
export function validateWorkflow(
  graph: ApiGraph,
  objectInfo: ObjectInfo,
  runnerId: string,
): WorkflowProblem[] {
  const problems: WorkflowProblem[] = [];
  const on = `on runner ${runnerId}`;

  for (const [nodeId, node] of Object.entries(graph)) {
    const classType = node.class_type;
    const info = objectInfo[classType];
    const where = `${classType} (node ${nodeId})`;
    const report = (code: WorkflowProblemCode, input: string | null, message: string) =>
      problems.push({ code, nodeId, classType, input, message });

    if (!info) {
      report(
        'unknown_node',
        null,
        `Node type ${classType} (node ${nodeId}) is not installed in ComfyUI ${on}; install the custom node that provides it.`,
      );
      continue;
    }
    const required = info.input.required ?? {};
    const optional = info.input.optional ?? {};

    const declared = [
      ...Object.entries(required).map(([name, raw]) => ({ name, raw, isRequired: true })),
      ...Object.entries(optional).map(([name, raw]) => ({ name, raw, isRequired: false })),
    ];
    for (const { name, raw, isRequired } of declared) {
      const value = node.inputs[name];
      if (value === undefined) {
        if (isRequired) report('missing_input', name, `${where} is missing its required input "${name}".`);
        continue;
      }
      const spec = parseInputSpec(raw);

      if (isLink(value)) {
        const [sourceId, outputIndex] = value;
        const source = graph[sourceId];
        if (!source) {
          report(
            'bad_link',
            name,
            `${where} input "${name}" is linked to node ${sourceId}, which is not in the graph.`,
          );
          continue;
        }
        const outputs = objectInfo[source.class_type]?.output;
        if (!outputs) continue; // the unknown source class is reported on its own
        if (!Number.isInteger(outputIndex) || outputIndex < 0 || outputIndex >= outputs.length) {
          report(
            'bad_link',
            name,
            `${where} input "${name}" reads output ${outputIndex} of ${source.class_type} (node ${sourceId}), which has ${outputs.length} output(s).`,
          );
          continue;
        }
        const produced = outputs[outputIndex];
        if (spec.kind === 'link' && typeof produced === 'string' && !typesCompatible(spec.type, produced)) {
          report(
            'wrong_type',
            name,
            `${where} input "${name}" expects ${spec.type} but node ${sourceId} (${source.class_type}) gives ${produced}.`,
          );
        }
        continue;
      }

      switch (spec.kind) {
        case 'link':
          report(
            'wrong_type',
            name,
            `${where} input "${name}" must be linked to a node that gives ${spec.type}, not set to a value.`,
          );
          break;
        case 'combo': {
          if (spec.options === null || SELF_VALIDATED[classType]?.includes(name)) break;
          if (spec.options.some((o) => o === value || String(o) === String(value))) break;
          const label = MODEL_INPUTS[name];
          if (label) {
            const installed = label === 'LoRA' ? '' : ` (installed: ${listForHumans(spec.options)})`;
            report('not_installed', name, `${label} ${String(value)} is not installed ${on}${installed}.`);
          } else if (name === 'sampler_name') {
            report('not_in_list', name, `Sampler "${String(value)}" is not known to ComfyUI ${on}.`);
          } else if (name === 'scheduler') {
            report('not_in_list', name, `Scheduler "${String(value)}" is not known to ComfyUI ${on}.`);
          } else {
            report(
              'not_in_list',
              name,
              `${where} input "${name}" cannot be "${String(value)}" ${on}; it accepts: ${listForHumans(spec.options)}.`,
            );
          }
          break;
        }
        case 'INT':
        case 'FLOAT': {
          if (
            typeof value !== 'number' ||
            !Number.isFinite(value) ||
            (spec.kind === 'INT' && !Number.isInteger(value))
          ) {
            report(
              'wrong_type',
              name,
              `${where} input "${name}" must be ${spec.kind === 'INT' ? 'a whole number' : 'a number'}, not ${JSON.stringify(value)}.`,
            );
          } else if (spec.min !== undefined && value < spec.min) {
            report('below_min', name, `${name} ${value} is below the minimum ${spec.min} for ${where}.`);
          } else if (spec.max !== undefined && value > spec.max) {
            report('above_max', name, `${name} ${value} is above the maximum ${spec.max} for ${where}.`);
          }
          break;
        }
        case 'STRING':
          if (typeof value !== 'string')
            report(
              'wrong_type',
              name,
              `${where} input "${name}" must be text, not ${JSON.stringify(value)}.`,
            );
          break;
        case 'BOOLEAN':
          if (typeof value !== 'boolean')
            report(
              'wrong_type',
              name,
              `${where} input "${name}" must be true or false, not ${JSON.stringify(value)}.`,
            );
          break;
      }
    }
  }
  return problems;
}

/** Thrown when a graph fails the check; `problems` lets the runner fix what it can (install a LoRA). */
export class WorkflowInvalidError extends ComicMasterError {
  constructor(
    readonly runnerId: string,
    readonly problems: WorkflowProblem[],
  ) {
    super('workflow_invalid', problems.map((p) => p.message).join('\n'), {
      operatorMessage: `graph rejected for runner ${runnerId}: ${problems.map((p) => `[${p.code} node ${p.nodeId}${p.input ? `.${p.input}` : ''}] ${p.message}`).join('; ')}`,
    });
    this.name = 'WorkflowInvalidError';
  }
}

export function assertWorkflowValid(graph: ApiGraph, objectInfo: ObjectInfo, runnerId: string): void {
  const problems = validateWorkflow(graph, objectInfo, runnerId);
  if (problems.length > 0) throw new WorkflowInvalidError(runnerId, problems);
}

/**
 * The ComfyUI node classes each family's graph needs (src/gpu/workflow.ts), and where they come from
 * when missing. ControlNet and reference-image nodes are checked with the graph itself.
 */
const SDXL_NODES = [
  'CheckpointLoaderSimple',
  'LoraLoader',
  'CLIPTextEncode',
  'EmptyLatentImage',
  'KSampler',
  'VAEDecode',
  'SaveImage',
];
const FLUX_NODES = [
  'UNETLoader',
  'DualCLIPLoader',
  'VAELoader',
  'LoraLoaderModelOnly',
  'CLIPTextEncode',
  'BasicGuider',
  'KSamplerSelect',
  'BasicScheduler',
  'RandomNoise',
  'EmptySD3LatentImage',
  'SamplerCustomAdvanced',
  'VAEDecode',
  'SaveImage',
];
export const FAMILY_NODES: Readonly<Record<ModelFamily, readonly string[]>> = {
  illustrious: SDXL_NODES,
  noobai: [...SDXL_NODES, 'ModelSamplingDiscrete'],
  sdxl: SDXL_NODES,
  pony: SDXL_NODES,
  playground: [...SDXL_NODES, 'ModelSamplingContinuousEDM'],
  ponyv7: SDXL_NODES,
  flux: [...FLUX_NODES, 'ModelSamplingFlux', 'FluxGuidance'],
  'flux-schnell': FLUX_NODES,
  flux2: [
    'UNETLoader',
    'CLIPLoader',
    'VAELoader',
    'LoraLoaderModelOnly',
    'CLIPTextEncode',
    'FluxGuidance',
    'ReferenceLatent',
    'FluxKontextImageScale',
    'VAEEncode',
    'LoadImage',
    'BasicGuider',
    'KSamplerSelect',
    'Flux2Scheduler',
    'RandomNoise',
    'EmptyFlux2LatentImage',
    'SamplerCustomAdvanced',
    'VAEDecode',
    'SaveImage',
  ],
  'sd35-large': [
    'CheckpointLoaderSimple',
    'TripleCLIPLoader',
    'LoraLoader',
    'ModelSamplingSD3',
    'CLIPTextEncode',
    'EmptySD3LatentImage',
    'KSampler',
    'VAEDecode',
    'SaveImage',
  ],
  'sd35-medium': [
    'CheckpointLoaderSimple',
    'TripleCLIPLoader',
    'LoraLoader',
    'ModelSamplingSD3',
    'CLIPTextEncode',
    'EmptySD3LatentImage',
    'KSampler',
    'VAEDecode',
    'SaveImage',
  ],
};

/** Nodes that arrived late in ComfyUI core: the release that first shipped them, for the operator. */
const NODE_SINCE: Record<string, string> = {
  Flux2Scheduler: '0.3.71',
  EmptyFlux2LatentImage: '0.3.71',
  ReferenceLatent: '0.3.43',
  FluxKontextImageScale: '0.3.43',
};

/**
 * Why a family cannot render on this ComfyUI, or null when every node its graph uses is there. The
 * reason names the missing nodes and, where known, the ComfyUI release that brings them.
 */
export function familySupportProblem(
  family: ModelFamily,
  objectInfo: ObjectInfo,
  runnerId: string,
): string | null {
  const missing = FAMILY_NODES[family].filter((n) => !(n in objectInfo));
  if (missing.length === 0) return null;
  const newer = (a: string, b: string) => {
    const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
    for (let i = 0; i < Math.max(x.length, y.length); i++)
      if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0) ? a : b;
    return a;
  };
  const since = missing.map((n) => NODE_SINCE[n]).filter((v): v is string => v !== undefined);
  const hint =
    since.length > 0
      ? ` Update ComfyUI to ${since.reduce(newer)} or newer.`
      : ' Update ComfyUI or install the node pack that provides them.';
  return `${familyProfile(family).label} cannot render on runner ${runnerId}: its ComfyUI lacks the node${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.${hint}`;
}
