import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamError } from '../src/errors.ts';
import {
  ComfyClient,
  ComfyInterruptedError,
  ComfyOutOfMemoryError,
  ComfyPromptLostError,
  ComfyValidationError,
  type ComfyClientOptions,
} from '../src/gpu/comfy-client.ts';
import type { ApiGraph } from '../src/gpu/comfy-protocol.ts';
import { startFakeComfyUI, type FakeComfyUI, type FakeComfyUIOptions } from './fakes/comfyui.ts';

const silent = pino({ level: 'silent' });
const CKPT = 'illustriousXL_v01.safetensors';

/** The reference's SDXL graph (shared/reference/comfyui.md §3), small and with few steps. */
function sdxlGraph(
  o: {
    seed?: number;
    width?: number;
    height?: number;
    steps?: number;
    loras?: string[];
    batch?: number;
    prefix?: string;
  } = {},
): ApiGraph {
  const graph: ApiGraph = { '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: CKPT } } };
  let model: [string, number] = ['1', 0];
  let clip: [string, number] = ['1', 1];
  (o.loras ?? []).forEach((lora, i) => {
    const id = String(2 + i);
    graph[id] = {
      class_type: 'LoraLoader',
      inputs: { model, clip, lora_name: lora, strength_model: 0.8, strength_clip: 0.8 },
    };
    model = [id, 0];
    clip = [id, 1];
  });
  Object.assign(graph, {
    '5': { class_type: 'CLIPTextEncode', inputs: { clip, text: 'masterpiece, 1girl, rooftop, night' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { clip, text: 'lowres, bad anatomy' } },
    '7': {
      class_type: 'EmptyLatentImage',
      inputs: { width: o.width ?? 64, height: o.height ?? 96, batch_size: o.batch ?? 1 },
    },
    '8': {
      class_type: 'KSampler',
      inputs: {
        model,
        positive: ['5', 0],
        negative: ['6', 0],
        latent_image: ['7', 0],
        seed: o.seed ?? 123456789,
        steps: o.steps ?? 3,
        cfg: 5.5,
        sampler_name: 'euler_ancestral',
        scheduler: 'normal',
        denoise: 1.0,
      },
    },
    '9': { class_type: 'VAEDecode', inputs: { samples: ['8', 0], vae: ['1', 2] } },
    '10': {
      class_type: 'SaveImage',
      inputs: { images: ['9', 0], filename_prefix: o.prefix ?? 'comic/ep01/p003' },
    },
  });
  return graph;
}

let fake: FakeComfyUI | undefined;
const clients: ComfyClient[] = [];

async function setup(fakeOptions: FakeComfyUIOptions = {}, clientOptions: Partial<ComfyClientOptions> = {}) {
  fake = await startFakeComfyUI({ objectInfoPath: false, ...fakeOptions });
  const client = new ComfyClient({
    baseUrl: fake.url,
    logger: silent,
    pollIntervalMs: 2_000,
    recoveryPollIntervalMs: 50,
    reconnectInitialDelayMs: 20,
    ...clientOptions,
  });
  clients.push(client);
  await client.connect();
  return { fake, client };
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await fake?.close();
  fake = undefined;
});

describe('ComfyClient against the fake ComfyUI', () => {
  it('renders a graph to a PNG of the requested size, fetched through /view', async () => {
    const { client, fake } = await setup();
    const result = await client.run(sdxlGraph({ width: 832, height: 1216 }));
    expect(result.cached).toBe(false);
    expect(result.images).toHaveLength(1);
    const [image] = result.images;
    expect(image).toMatchObject({
      filename: 'p003_00001_.png',
      subfolder: 'comic/ep01',
      type: 'output',
      nodeId: '10',
    });
    const meta = await sharp(image!.data).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 832, height: 1216 });
    expect(await readdir(join(fake.dataDir, 'output/comic/ep01'))).toEqual(['p003_00001_.png']);
  });

  it('gives one image per batch item with consecutive counters, and different seeds give different images', async () => {
    const { client } = await setup();
    const batch = await client.run(sdxlGraph({ batch: 2, seed: 1 }));
    expect(batch.images.map((i) => i.filename)).toEqual(['p003_00001_.png', 'p003_00002_.png']);
    const other = await client.run(sdxlGraph({ seed: 2 }));
    expect(other.images[0]!.filename).toBe('p003_00003_.png');
    expect(other.images[0]!.data.equals(batch.images[0]!.data)).toBe(false);
  });

  it('reports sampler progress from 1 to max', async () => {
    const { client } = await setup();
    const seen: [number, number, string | undefined][] = [];
    await client.run(sdxlGraph({ steps: 5 }), { onProgress: (v, m, node) => seen.push([v, m, node]) });
    expect(seen).toEqual([1, 2, 3, 4, 5].map((v) => [v, 5, '8']));
  });

  it('decodes type-4 previews (after negotiating feature flags) with their mime type', async () => {
    const { client } = await setup({ previews: 'jpeg' });
    const previews: { mime: string; format: string | undefined }[] = [];
    const formats: Promise<void>[] = [];
    await client.run(sdxlGraph({ steps: 2 }), {
      onPreview: (image, mime) =>
        formats.push(
          sharp(image)
            .metadata()
            .then((m) => void previews.push({ mime, format: m.format })),
        ),
    });
    await Promise.all(formats);
    expect(client.serverFeatures.supports_preview_metadata).toBe(true);
    expect(previews).toEqual([
      { mime: 'image/jpeg', format: 'jpeg' },
      { mime: 'image/jpeg', format: 'jpeg' },
    ]);
  });

  it.each([
    ['jpeg', 'image/jpeg'],
    ['png', 'image/png'],
  ] as const)('decodes type-1 %s previews with the right mime type', async (format, mime) => {
    const { client } = await setup({ previews: format }, { previewMetadata: false });
    const seen: { mime: string; format: string | undefined }[] = [];
    const pending: Promise<void>[] = [];
    await client.run(sdxlGraph({ steps: 3 }), {
      onPreview: (image, m) =>
        pending.push(
          sharp(image)
            .metadata()
            .then((meta) => void seen.push({ mime: m, format: meta.format })),
        ),
    });
    await Promise.all(pending);
    expect(seen).toHaveLength(3);
    for (const s of seen) expect(s).toEqual({ mime, format });
  });

  it('turns a missing LoRA into a ComfyValidationError naming the node and input', async () => {
    const { client } = await setup({ loras: ['style/ink.safetensors'] });
    const error = await client
      .run(sdxlGraph({ loras: ['comic_style_v1.safetensors'] }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ComfyValidationError);
    const v = error as ComfyValidationError;
    expect(v.errorType).toBe('prompt_outputs_failed_validation');
    expect(v.nodeErrors).toEqual([
      {
        nodeId: '2',
        classType: 'LoraLoader',
        errors: [
          expect.objectContaining({
            type: 'value_not_in_list',
            inputName: 'lora_name',
            receivedValue: 'comic_style_v1.safetensors',
          }),
        ],
      },
    ]);
    expect(v.userMessage).toContain(
      "node 2 (LoraLoader): lora_name 'comic_style_v1.safetensors' is not available",
    );
  });

  it('reports a missing input, an out-of-range value and an unknown node type readably', async () => {
    const { client } = await setup();
    const graph = sdxlGraph({ steps: 0 });
    delete graph['5']!.inputs.text;
    const error = (await client.submit(graph).catch((e: unknown) => e)) as ComfyValidationError;
    expect(error).toBeInstanceOf(ComfyValidationError);
    expect(error.userMessage).toContain('node 5 (CLIPTextEncode): required input text is missing');
    expect(error.userMessage).toContain('node 8 (KSampler) input steps: Value 0 smaller than min of 1');

    const unknown = sdxlGraph();
    unknown['11'] = { class_type: 'NoSuchNode', inputs: {} };
    const e2 = (await client.submit(unknown).catch((e: unknown) => e)) as ComfyValidationError;
    expect(e2.errorType).toBe('invalid_prompt');
    expect(e2.userMessage).toContain("NoSuchNode does not exist. (Node ID '#11')");
  });

  it('turns an OOM into an error whose message says what to try', async () => {
    const { client, fake } = await setup();
    fake.injectOom('KSampler');
    const error = await client.run(sdxlGraph()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ComfyOutOfMemoryError);
    const oom = error as ComfyOutOfMemoryError;
    expect(oom.exceptionType).toBe('torch.OutOfMemoryError');
    expect(oom.nodeType).toBe('KSampler');
    expect(oom.userMessage).toMatch(/GPU ran out of memory while running KSampler/);
    expect(oom.userMessage).toMatch(/smaller image size/);
    // The server recovers: the next render works.
    await expect(client.run(sdxlGraph({ seed: 5 }))).resolves.toMatchObject({ images: [expect.anything()] });
  });

  it('rejects an interrupted render with ComfyInterruptedError, and the next one still runs', async () => {
    const { client, fake } = await setup({ timing: { stepMs: 10 } });
    const promptId = crypto.randomUUID();
    const running = client.run(sdxlGraph({ steps: 500 }), { promptId });
    await fake.waitForRunning(promptId);
    await client.interrupt(promptId);
    await expect(running).rejects.toBeInstanceOf(ComfyInterruptedError);
    const history = await client.getHistory(promptId);
    expect(history?.status).toMatchObject({ status_str: 'error', completed: false });
    await expect(client.run(sdxlGraph({ steps: 2 }))).resolves.toMatchObject({ cached: false });
  });

  it('completes when execution_success arrives well before the history entry exists', async () => {
    const { client } = await setup({ timing: { historyDelayMs: 300 } });
    const result = await client.run(sdxlGraph());
    expect(result.images).toHaveLength(1);
    expect((await sharp(result.images[0]!.data).metadata()).width).toBe(64);
  });

  it('completes an identical resubmission from the cache, with the old filenames and no new file', async () => {
    const { client, fake } = await setup();
    const first = await client.run(sdxlGraph());
    const progress: number[] = [];
    const second = await client.run(sdxlGraph(), { onProgress: (v) => progress.push(v) });
    expect(second.cached).toBe(true);
    expect(second.promptId).not.toBe(first.promptId);
    expect(second.images.map((i) => i.filename)).toEqual(first.images.map((i) => i.filename));
    expect(second.images[0]!.data.equals(first.images[0]!.data)).toBe(true);
    expect(progress).toEqual([]);
    expect(await readdir(join(fake.dataDir, 'output/comic/ep01'))).toEqual(['p003_00001_.png']);
    expect(fake.getStats().checkpointLoads).toBe(1);
  });

  it('still resolves exactly once with the images when the WebSocket is cut mid-render', async () => {
    const { client, fake } = await setup({ timing: { stepMs: 10 } });
    let dropped = false;
    let settled = 0;
    const result = await client
      .run(sdxlGraph({ steps: 30 }), {
        onProgress: (v) => {
          if (v === 3 && !dropped) {
            dropped = true;
            fake.dropConnections();
          }
        },
      })
      .finally(() => settled++);
    expect(dropped).toBe(true);
    expect(settled).toBe(1);
    expect(result.images.map((i) => i.filename)).toEqual(['p003_00001_.png']);
    expect(fake.getStats().promptsExecuted).toBe(1);
    // Reconnected with the same clientId.
    expect(fake.connectedClients()).toContain(client.clientId);
  });

  it('survives ComfyUI #16010 (a stale handler swallows the reconnected socket) by polling', async () => {
    const { client, fake } = await setup({ timing: { stepMs: 10 }, issue16010: true });
    let dropped = false;
    const result = await client.run(sdxlGraph({ steps: 40 }), {
      onProgress: (v) => {
        if (v === 2 && !dropped) {
          dropped = true;
          fake.dropConnections({ staleHandlerMs: 150 });
        }
      },
    });
    expect(result.images).toHaveLength(1);
    expect(fake.getStats().promptsExecuted).toBe(1);
    // The client noticed the deaf socket and reopened it: the next run gets its events again.
    const progress: number[] = [];
    await client.run(sdxlGraph({ steps: 3, seed: 9 }), { onProgress: (v) => progress.push(v) });
    expect(progress).toEqual([1, 2, 3]);
  });

  it('rejects the runs a ComfyUI restart lost instead of hanging', async () => {
    const { client, fake } = await setup({ timing: { stepMs: 10 } });
    const first = client.run(sdxlGraph({ steps: 200, seed: 1 }));
    const second = client.run(sdxlGraph({ steps: 200, seed: 2 }));
    const firstOutcome = first.catch((e: unknown) => e);
    const secondOutcome = second.catch((e: unknown) => e);
    await fake.waitForRunning();
    // Both accepted: one running, one pending.
    while ((await client.queueRemaining()) < 2) await new Promise((r) => setTimeout(r, 5));
    await fake.restart({ downMs: 50 });
    // Both are reported as lost (retryable), never left hanging.
    for (const outcome of [await firstOutcome, await secondOutcome]) {
      expect(outcome).toBeInstanceOf(UpstreamError);
      expect((outcome as UpstreamError).retryable).toBe(true);
    }
    expect(await firstOutcome).toBeInstanceOf(ComfyPromptLostError);
    // After the restart the client is usable again.
    await expect(client.run(sdxlGraph({ steps: 2 }))).resolves.toMatchObject({ cached: false });
  });

  it('reports an unreachable ComfyUI as a retryable UpstreamError', async () => {
    const { fake } = await setup();
    const url = fake.url;
    await fake.close();
    const client = new ComfyClient({ baseUrl: url, logger: silent });
    clients.push(client);
    const connectError = await client.connect().catch((e: unknown) => e);
    expect(connectError).toBeInstanceOf(UpstreamError);
    expect((connectError as UpstreamError).retryable).toBe(true);
    expect((connectError as UpstreamError).userMessage).toMatch(/not reachable/);
    const httpError = await client.getQueue().catch((e: unknown) => e);
    expect(httpError).toBeInstanceOf(UpstreamError);
    expect((httpError as UpstreamError).retryable).toBe(true);
  });

  it('uploads an image and returns the server name, renamed on collision', async () => {
    const { client } = await setup();
    const a = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    const b = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'blue' } })
      .png()
      .toBuffer();
    expect(await client.uploadImage(a, 'pose.png', { subfolder: 'cn' })).toEqual({
      name: 'pose.png',
      subfolder: 'cn',
      type: 'input',
    });
    expect((await client.uploadImage(a, 'pose.png', { subfolder: 'cn' })).name).toBe('pose.png');
    expect((await client.uploadImage(b, 'pose.png', { subfolder: 'cn' })).name).toBe('pose (1).png');
    expect((await client.uploadImage(b, 'pose.png', { subfolder: 'cn', overwrite: true })).name).toBe(
      'pose.png',
    );
  });

  it('reads the GPU, models, queue and object_info', async () => {
    const { client, fake } = await setup({ loras: ['style/ink.safetensors'] });
    const stats = await client.getSystemStats();
    expect(stats.gpuName).toBe('NVIDIA GeForce RTX 3090');
    expect(stats.vramTotal).toBeGreaterThan(20e9);
    fake.addLora('chars/hero.safetensors');
    expect(await client.getModels('loras')).toEqual(['chars/hero.safetensors', 'style/ink.safetensors']);
    expect(await client.getModels('checkpoints')).toEqual([CKPT]);
    const info = await client.getObjectInfo();
    expect(
      (info.LoraLoader as { input: { required: { lora_name: unknown[] } } }).input.required.lora_name[0],
    ).toEqual(['chars/hero.safetensors', 'style/ink.safetensors']);
    expect(await client.queueRemaining()).toBe(0);
    expect(await client.getQueue()).toEqual({ running: [], pending: [] });
    await client.free({ unloadModels: true, freeMemory: true });
  });
});
