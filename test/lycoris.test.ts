import { describe, expect, it } from 'vitest';
import {
  FLUX2_AI_TOOLKIT,
  flux2LoraFits,
  LYCORIS_PRESETS,
  lycorisKohyaArgs,
  withLycoris,
} from '../src/training/lycoris.ts';

describe('LyCORIS presets for kohya', () => {
  it('LoHa: the arguments LyCORIS documents for kohya (lycoris.kohya, algo=loha)', () => {
    expect(lycorisKohyaArgs(LYCORIS_PRESETS.loha)).toEqual([
      '--network_module',
      'lycoris.kohya',
      '--network_dim',
      '8',
      '--network_alpha',
      '4',
      '--network_args',
      'conv_dim=4',
      'conv_alpha=1',
      'algo=loha',
      'preset=attn-mlp',
    ]);
  });

  it('LoCon: algo=locon with conv layers', () => {
    const args = lycorisKohyaArgs(LYCORIS_PRESETS.locon);
    expect(args.slice(0, 2)).toEqual(['--network_module', 'lycoris.kohya']);
    expect(args.slice(args.indexOf('--network_args') + 1)).toEqual([
      'conv_dim=8',
      'conv_alpha=4',
      'algo=locon',
      'preset=attn-mlp',
    ]);
  });

  it('stays within LyCORIS recommendations (LoHa dim ≤ 32, alpha ≤ dim/2; LoCon dim ≤ 64)', () => {
    const { loha, locon } = LYCORIS_PRESETS;
    expect(loha.networkDim).toBeLessThanOrEqual(32);
    expect(loha.networkAlpha).toBeLessThanOrEqual(loha.networkDim / 2);
    expect(locon.networkDim).toBeLessThanOrEqual(64);
  });

  it('replaces kohya LoRA network arguments in an existing argv, keeping the rest', () => {
    const base = [
      'sdxl_train_network.py',
      '--network_module',
      'networks.lora',
      '--network_dim',
      '32',
      '--network_alpha',
      '16',
      '--network_args',
      'conv_dim=4',
      '--learning_rate',
      '1e-4',
    ];
    expect(withLycoris(base, LYCORIS_PRESETS.loha)).toEqual([
      'sdxl_train_network.py',
      '--learning_rate',
      '1e-4',
      ...lycorisKohyaArgs(LYCORIS_PRESETS.loha),
    ]);
  });
});

describe('FLUX.2 dev LoRA through ai-toolkit', () => {
  it('is arch flux2 with 8-bit quantisation', () => {
    expect(FLUX2_AI_TOOLKIT).toMatchObject({ arch: 'flux2', quantize: true, quantizeTe: true });
  });

  it('fits a 24 GB card with enough RAM, and says why not otherwise', () => {
    expect(flux2LoraFits({ vramGb: 24, ramGb: 64 }).fits).toBe(true);
    const small = flux2LoraFits({ vramGb: 16, ramGb: 64 });
    expect(!small.fits && small.reason).toMatch(/needs at least 24 GB of VRAM.*this GPU has 16 GB/);
    const lowRam = flux2LoraFits({ vramGb: 24, ramGb: 32 });
    expect(!lowRam.fits && lowRam.reason).toMatch(/about 64 GB; this box has 32 GB/);
  });
});
