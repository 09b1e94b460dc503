/** The fake's own protocol fidelity, spoken to with raw HTTP and WebSocket (no product client). */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startFakeComfyUI, type FakeComfyUI } from './fakes/comfyui.ts';

let fake: FakeComfyUI | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const graph = (seed: number, loras: string[] = [], ckpt = 'a.safetensors') => {
  const g: Record<string, { class_type: string; inputs: Record<string, unknown> }> = {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckpt } },
  };
  let model: [string, number] = ['1', 0];
  loras.forEach((l, i) => {
    g[`2${i}`] = { class_type: 'LoraLoaderModelOnly', inputs: { model, lora_name: l, strength_model: 1 } };
    model = [`2${i}`, 0];
  });
  Object.assign(g, {
    '5': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: 'x' } },
    '7': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '8': {
      class_type: 'KSampler',
      inputs: {
        model,
        positive: ['5', 0],
        negative: ['5', 0],
        latent_image: ['7', 0],
        seed,
        steps: 2,
        cfg: 5,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
      },
    },
    '9': { class_type: 'VAEDecode', inputs: { samples: ['8', 0], vae: ['1', 2] } },
    '10': { class_type: 'SaveImage', inputs: { images: ['9', 0], filename_prefix: 'f' } },
  });
  return g;
};

async function post(path: string, body: unknown) {
  const res = await fetch(`${fake!.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, json: (await res.text()) || '{}' };
}

/** Connects, collects JSON frames until executing{node:null} for `promptId` (or `count` frames). */
function collect(
  ws: WebSocket,
  promptId: string,
): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const frames: { type: string; data: Record<string, unknown> }[] = [];
  return new Promise((resolve) => {
    ws.on('message', (data, binary) => {
      if (binary) return;
      const f = JSON.parse(String(data)) as { type: string; data: Record<string, unknown> };
      frames.push(f);
      if (f.type === 'executing' && f.data.node === null && f.data.prompt_id === promptId) resolve(frames);
    });
  });
}

describe('fake ComfyUI protocol', () => {
  it('sends the event order of a normal run, then a fully cached rerun', async () => {
    fake = await startFakeComfyUI({
      checkpoints: ['a.safetensors'],
      objectInfoPath: false,
      previews: 'none',
    });
    const ws = new WebSocket(`${fake.url.replace('http', 'ws')}/ws?clientId=c1`);
    const first = await new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
    expect(JSON.parse(first)).toEqual({
      type: 'status',
      data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'c1' },
    });

    const id = crypto.randomUUID();
    const frames = collect(ws, id);
    expect((await post('/prompt', { prompt: graph(1), client_id: 'c1', prompt_id: id })).status).toBe(200);
    const types = (await frames)
      .filter((f) => f.type !== 'progress_state')
      .map((f) => (f.type === 'executing' ? `executing:${String(f.data.node)}` : f.type));
    expect(types).toEqual([
      'status',
      'status',
      'execution_start',
      'execution_cached',
      'executing:1',
      'executing:5',
      'executing:7',
      'executing:8',
      'progress',
      'progress',
      'executing:9',
      'executing:10',
      'executed',
      'execution_success',
      'status',
      'executing:null',
    ]);

    const again = crypto.randomUUID();
    const frames2 = collect(ws, again);
    await post('/prompt', { prompt: graph(1), client_id: 'c1', prompt_id: again });
    const rerun = (await frames2).filter((f) => f.type !== 'status');
    expect(rerun.map((f) => f.type)).toEqual([
      'execution_start',
      'execution_cached',
      'executed',
      'execution_success',
      'executing',
    ]);
    expect(rerun[1]!.data.nodes).toEqual(['1', '5', '7', '8', '9', '10']);
    expect(rerun[2]!.data.output).toEqual({
      images: [{ filename: 'f_00001_.png', subfolder: '', type: 'output' }],
    });
    ws.close();
  });

  it('answers validation failures with the node_errors shape ComfyUI uses', async () => {
    fake = await startFakeComfyUI({ checkpoints: ['a.safetensors'], objectInfoPath: false });
    const { status, json } = await post('/prompt', { prompt: graph(1, [], 'missing.safetensors') });
    expect(status).toBe(400);
    expect(JSON.parse(json)).toEqual({
      error: {
        type: 'prompt_outputs_failed_validation',
        message: 'Prompt outputs failed validation',
        details: "Value not in list: ckpt_name: 'missing.safetensors' not in ['a.safetensors']",
        extra_info: {},
      },
      node_errors: {
        '1': {
          errors: [
            {
              type: 'value_not_in_list',
              message: 'Value not in list',
              details: "ckpt_name: 'missing.safetensors' not in ['a.safetensors']",
              extra_info: {
                input_name: 'ckpt_name',
                input_config: [['a.safetensors'], {}],
                received_value: 'missing.safetensors',
              },
            },
          ],
          dependent_outputs: ['10'],
          class_type: 'CheckpointLoaderSimple',
        },
      },
    });
    expect((await post('/prompt', { prompt: graph(1), prompt_id: 'NOT-A-UUID' })).status).toBe(400);
    expect(JSON.parse((await post('/prompt', { prompt: { '1': graph(1)['1'] } })).json).error.type).toBe(
      'prompt_no_outputs',
    );
  });

  it('loads a checkpoint only when it changes, patches LoRAs when the set changes, and reruns only the sampler on a new seed', async () => {
    fake = await startFakeComfyUI({
      checkpoints: ['a.safetensors', 'b.safetensors'],
      loras: ['l1.safetensors', 'l2.safetensors'],
      objectInfoPath: false,
    });
    const run = async (g: unknown) => {
      const id = crypto.randomUUID();
      await post('/prompt', { prompt: g, prompt_id: id });
      for (;;) {
        const h = (await (await fetch(`${fake!.url}/history/${id}`)).json()) as Record<string, unknown>;
        if (h[id]) return h[id] as { status: { messages: [string, Record<string, unknown>][] } };
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await run(graph(1, ['l1.safetensors']));
    const seedChange = await run(graph(2, ['l1.safetensors']));
    expect(seedChange.status.messages.find(([t]) => t === 'execution_cached')?.[1].nodes).toEqual([
      '1',
      '20',
      '5',
      '7',
    ]);
    await run(graph(2, ['l2.safetensors']));
    await run(graph(2, ['l2.safetensors'], 'b.safetensors'));
    expect(fake.getStats()).toMatchObject({ promptsExecuted: 4, checkpointLoads: 2, loraPatches: 3 });
  });

  it('serves /view errors like ComfyUI and answers the /api aliases', async () => {
    fake = await startFakeComfyUI({ objectInfoPath: false });
    expect((await fetch(`${fake.url}/view?filename=../x.png`)).status).toBe(400);
    expect((await fetch(`${fake.url}/view?filename=x.png&subfolder=../../etc`)).status).toBe(403);
    expect((await fetch(`${fake.url}/view?filename=nope.png`)).status).toBe(404);
    expect(await (await fetch(`${fake.url}/api/features`)).json()).toMatchObject({
      supports_preview_metadata: true,
    });
    expect(await (await fetch(`${fake.url}/api/object_info/Nope`)).json()).toEqual({});
  });
});
