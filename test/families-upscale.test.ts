import sharp from 'sharp';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { userMessageOf } from '../src/errors.ts';
import { ComfyClient } from '../src/gpu/comfy-client.ts';
import { parseObjectInfo } from '../src/gpu/object-info.ts';
import { pickUpscaleModel, upscaleWithModel } from '../src/gpu/upscale.ts';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';

const silent = pino({ level: 'silent' });
let fake: FakeComfyUI | undefined;
let client: ComfyClient | undefined;

afterEach(async () => {
  await client?.close();
  await fake?.close();
  client = undefined;
  fake = undefined;
});

async function connect(options: Parameters<typeof startFakeComfyUI>[0]) {
  fake = await startFakeComfyUI({ objectInfoPath: false, timing: { stepMs: 0 }, ...options });
  client = new ComfyClient({ baseUrl: fake.url, logger: silent });
  await client.connect();
  return { client, info: parseObjectInfo(await client.getObjectInfo()) };
}

const small = () =>
  sharp({ create: { width: 96, height: 64, channels: 3, background: '#c04020' } })
    .png()
    .toBuffer();

describe('dataset upscaling through ComfyUI upscale models', () => {
  it('prefers Real-ESRGAN (anime first) among the installed models', () => {
    expect(
      pickUpscaleModel(['4x-UltraSharp.pth', 'RealESRGAN_x4plus.pth', 'RealESRGAN_x4plus_anime_6B.pth']),
    ).toBe('RealESRGAN_x4plus_anime_6B.pth');
    expect(pickUpscaleModel(['4x-UltraSharp.pth'])).toBe('4x-UltraSharp.pth');
    expect(pickUpscaleModel([])).toBeNull();
    expect(pickUpscaleModel(['RealESRGAN_x2.pth'], 'missing.pth')).toBeNull();
  });

  it('uploads the image, upscales it with the model the box has, and returns a PNG of the scaled size', async () => {
    const { client, info } = await connect({ upscaleModels: ['RealESRGAN_x2.pth'] });
    const result = await upscaleWithModel(client, info, await small(), { runnerId: 'gpu-1' });
    expect(result.model).toBe('RealESRGAN_x2.pth');
    const meta = await sharp(result.png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 192, 128]);
  });

  it('says what to install when the box has no upscale model', async () => {
    const { client, info } = await connect({ upscaleModels: [] });
    let shown = '';
    let operator = '';
    try {
      await upscaleWithModel(client, info, await small(), { runnerId: 'gpu-1' });
    } catch (e) {
      shown = userMessageOf(e);
      operator = String((e as { operatorMessage?: string }).operatorMessage ?? (e as Error).message);
    }
    expect(shown).toMatch(/no upscale model/);
    expect(operator).toMatch(/models\/upscale_models/);
  });

  it('refuses clearly when ComfyUI lacks the upscale nodes', async () => {
    const { client, info } = await connect({
      upscaleModels: ['RealESRGAN_x4plus.pth'],
      hiddenNodes: ['ImageUpscaleWithModel'],
    });
    await expect(upscaleWithModel(client, info, await small(), { runnerId: 'gpu-1' })).rejects.toMatchObject({
      code: 'upscale_unavailable',
    });
  });
});
