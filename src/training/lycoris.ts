/**
 * LyCORIS presets (LoHa, LoCon) for style LoRAs, trained by kohya sd-scripts through LyCORIS's own
 * network module, and the FLUX.2 dev LoRA preset for ai-toolkit with its VRAM check.
 *
 * The kohya arguments are exactly those of LyCORIS's README and docs/Network-Args.md:
 *   --network_module lycoris.kohya --network_dim DIM --network_alpha ALPHA
 *   --network_args "conv_dim=DIM" "conv_alpha=ALPHA" "algo=loha|locon" "preset=…"
 * (each network_args item is its own argv entry; we spawn with argument arrays, never a shell string).
 */

export const LYCORIS_ALGOS = ['loha', 'locon'] as const;
export type LycorisAlgo = (typeof LYCORIS_ALGOS)[number];

export interface LycorisPreset {
  algo: LycorisAlgo;
  label: string;
  /** When to pick it over a plain LoRA, for the /train style choice. */
  goodFor: string;
  /** Linear layers: --network_dim / --network_alpha (script arguments). */
  networkDim: number;
  networkAlpha: number;
  /** Convolution layers: conv_dim / conv_alpha (network_args). */
  convDim: number;
  convAlpha: number;
  /** Which modules LyCORIS wraps (docs/Preset.md); attn-mlp is what its guidelines recommend. */
  preset: 'full' | 'attn-mlp' | 'attn-only';
  /** Learning rate for the U-Net; LyCORIS's own example configs use 2e-4. */
  unetLr: number;
}

/**
 * LyCORIS's recommendations (docs/Algo-List.md): LoHa dim ≤ 32 with alpha from 1 to half the dim
 * (high dims with LoHa go NaN); LoRA/LoCon dim ≤ 64, alpha from 1 to half the dim. The dims follow
 * the example kohya configs (loha_config.toml: dim 8, alpha 4, preset attn-mlp).
 */
export const LYCORIS_PRESETS: Readonly<Record<LycorisAlgo, LycorisPreset>> = {
  loha: {
    algo: 'loha',
    label: 'LoHa (LyCORIS)',
    goodFor:
      'styles that must not leak into faces and poses: the Hadamard product dampens what it learns and mixes well with character LoRAs',
    networkDim: 8,
    networkAlpha: 4,
    convDim: 4,
    convAlpha: 1,
    preset: 'attn-mlp',
    unetLr: 2e-4,
  },
  locon: {
    algo: 'locon',
    label: 'LoCon (LyCORIS)',
    goodFor: 'textured styles (ink, halftone, brush grain): a LoRA that also trains the convolution layers',
    networkDim: 16,
    networkAlpha: 8,
    convDim: 8,
    convAlpha: 4,
    preset: 'attn-mlp',
    unetLr: 2e-4,
  },
};

/** The kohya command-line arguments that train a LyCORIS network instead of kohya's own LoRA. */
export function lycorisKohyaArgs(preset: LycorisPreset): string[] {
  return [
    '--network_module',
    'lycoris.kohya',
    '--network_dim',
    String(preset.networkDim),
    '--network_alpha',
    String(preset.networkAlpha),
    '--network_args',
    `conv_dim=${preset.convDim}`,
    `conv_alpha=${preset.convAlpha}`,
    `algo=${preset.algo}`,
    `preset=${preset.preset}`,
  ];
}

/**
 * Replace kohya's LoRA network arguments in an argv with the LyCORIS ones: drops --network_module,
 * --network_dim, --network_alpha and --network_args (with their values) and appends the preset's.
 */
export function withLycoris(kohyaArgs: readonly string[], preset: LycorisPreset): string[] {
  const replaced = new Set(['--network_module', '--network_dim', '--network_alpha', '--network_args']);
  const out: string[] = [];
  for (let i = 0; i < kohyaArgs.length; i++) {
    const arg = kohyaArgs[i]!;
    if (!replaced.has(arg)) {
      out.push(arg);
      continue;
    }
    // Skip this flag's values: everything up to the next --flag.
    while (i + 1 < kohyaArgs.length && !kohyaArgs[i + 1]!.startsWith('--')) i++;
  }
  return [...out, ...lycorisKohyaArgs(preset)];
}

/**
 * FLUX.2 dev LoRA through ai-toolkit (arch "flux2"). FLUX.2 dev is a 32-billion-parameter transformer
 * with a 24-billion-parameter Mistral text encoder: on a 24 GB card it only trains with the
 * transformer quantised to 8 bits and the text encoder quantised and offloaded to system RAM.
 * The memory figures are our estimates from the model sizes, not measurements.
 */
export const FLUX2_AI_TOOLKIT = {
  arch: 'flux2',
  nameOrPath: 'black-forest-labs/FLUX.2-dev',
  quantize: true,
  qtype: 'qfloat8',
  quantizeTe: true,
  qtypeTe: 'qfloat8',
  lowVram: true,
  /** Run the Mistral encoder on the CPU (ai-toolkit layer offloading) and cache its embeddings. */
  layerOffloadingTextEncoderPercent: 1,
  cacheTextEmbeddings: true,
  networkDim: 32,
  networkAlpha: 32,
  learningRate: 1e-4,
  resolution: [512, 768, 1024],
  /** Estimated floor with the settings above. */
  minVramGb: 24,
  /** The offloaded 8-bit encoder and the quantisation pass need this much system RAM. */
  minRamGb: 64,
} as const;

export type TrainingFit = { fits: true; note: string } | { fits: false; reason: string };

/** Whether a FLUX.2 dev LoRA can train on this box; says why not when it cannot. */
export function flux2LoraFits(box: { vramGb: number; ramGb: number }): TrainingFit {
  const p = FLUX2_AI_TOOLKIT;
  if (box.vramGb < p.minVramGb) {
    return {
      fits: false,
      reason: `FLUX.2 dev LoRA training needs at least ${p.minVramGb} GB of VRAM even with 8-bit quantisation; this GPU has ${box.vramGb} GB. Train the style on FLUX.1-dev or an SDXL base instead.`,
    };
  }
  if (box.ramGb < p.minRamGb) {
    return {
      fits: false,
      reason: `FLUX.2 dev LoRA training offloads its 24-billion-parameter text encoder to system RAM and needs about ${p.minRamGb} GB; this box has ${box.ramGb} GB.`,
    };
  }
  const note =
    box.vramGb < 48
      ? 'fits with the transformer and text encoder quantised to 8 bits and the encoder offloaded to the CPU; expect slow steps'
      : 'fits; quantisation is kept on for speed';
  return { fits: true, note };
}
