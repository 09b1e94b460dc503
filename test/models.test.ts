import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeInstalledModels, familyOfFile } from '../src/commands/models-handler.ts';
import { presenceKey, type RunnerPresence } from '../src/gpu/presence.ts';
import { TEST_REDIS_URL } from './helpers/redis.ts';

const prefix = `test-models-${randomUUID().slice(0, 8)}`;
let redis: Redis;

function presence(id: string, checkpoints: string[]): RunnerPresence {
  const now = new Date().toISOString();
  return {
    id,
    renderer: 'comfyui',
    description: 'ComfyUI',
    gpu: 'RTX 3090',
    vramTotal: 24e9,
    vramFree: 20e9,
    checkpoints,
    loras: [],
    currentJobs: [],
    online: true,
    offlineReason: null,
    startedAt: now,
    updatedAt: now,
  };
}

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  await redis.set(
    presenceKey(prefix, 'gpu-1'),
    JSON.stringify(
      presence('gpu-1', [
        'illustriousXL_v01.safetensors',
        'ponyDiffusionV6XL_v6StartWithThisOne.safetensors',
        'flux1-dev.safetensors',
        'flux2_dev_fp8mixed.safetensors',
        'sd3.5_large.safetensors',
        'mystery_merge_v3.safetensors',
      ]),
    ),
    'PX',
    60_000,
  );
  await redis.set(
    presenceKey(prefix, 'gpu-2'),
    JSON.stringify(
      presence('gpu-2', [
        'illustriousXL_v01.safetensors',
        'flux1-schnell.safetensors',
        'pony-v7-base.safetensors',
      ]),
    ),
    'PX',
    60_000,
  );
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

describe('/models', () => {
  it('recognises families from file names', () => {
    expect(familyOfFile('flux2_dev_fp8mixed.safetensors')).toBe('flux2');
    expect(familyOfFile('flux1-schnell.safetensors')).toBe('flux-schnell');
    expect(familyOfFile('sub/flux1-dev.safetensors')).toBe('flux');
    expect(familyOfFile('sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors')).toBe('sd35-medium');
    expect(familyOfFile('playground-v2.5-1024px-aesthetic.fp16.safetensors')).toBe('playground');
    expect(familyOfFile('sd_xl_base_1.0.safetensors')).toBe('sdxl');
    expect(familyOfFile('noobaiXLVpred_v10.safetensors')).toBe('noobai');
    expect(familyOfFile('mystery.safetensors')).toBeNull();
  });

  it('lists what the runners have, grouped by family, with what each is good for', async () => {
    const text = await describeInstalledModels(redis, prefix, []);
    const lines = text.split('\n');
    expect(lines[0]).toBe('Models on 2 runner(s):');
    const block = (label: string) => {
      const i = lines.findIndex((l) => l.startsWith(`**${label}**`));
      return i < 0 ? '' : `${lines[i]}\n${lines[i + 1] ?? ''}`;
    };
    expect(block('Illustrious XL')).toContain('`illustriousXL_v01.safetensors` (gpu-1, gpu-2)');
    expect(block('Illustrious XL')).toContain('anime and manga styles');
    expect(block('FLUX.2 dev')).toContain('`flux2_dev_fp8mixed.safetensors` (gpu-1)');
    expect(block('FLUX.1 schnell')).toContain('`flux1-schnell.safetensors` (gpu-2)');
    expect(block('FLUX.1-dev')).toContain('`flux1-dev.safetensors`');
    expect(block('Pony Diffusion V6 XL')).toContain('ponyDiffusionV6XL');
    expect(block('SD 3.5 Large')).toContain('render only');
    expect(block('Pony V7 (AuraFlow)')).toContain('off on this server');
    expect(text).toContain(
      '**Other files** (family not recognised from the name): `mystery_merge_v3.safetensors` (gpu-1)',
    );
    // Families nobody installed are not listed.
    expect(text).not.toContain('Playground');
  });

  it('marks an experimental family usable once enabled', async () => {
    expect(await describeInstalledModels(redis, prefix, ['ponyv7'])).not.toContain('off on this server');
  });

  it('says so when no runner is online', async () => {
    expect(await describeInstalledModels(redis, `${prefix}-empty`, [])).toMatch(/No GPU runner is online/);
  });
});
