/**
 * A fake ComfyUI for tests and benchmarks: HTTP + WebSocket on 127.0.0.1:0, reproducing what
 * shared/reference/comfyui.md §6 lists (validation with node_errors, one worker and a numbered queue,
 * the exact WS event order, binary previews type 1 or 4, output caching, history written after
 * execution_success, real PNGs via /view, uploads, interrupt, OOM injection, disconnects, restarts and
 * the #16010 stale-handler bug). Product code talks to it exactly as to the real server.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { WebSocket, WebSocketServer } from 'ws';
import { encodePreviewFrame, encodePreviewWithMetadataFrame } from '../../src/gpu/previews.ts';
import {
  builtinObjectInfo,
  comboOptions,
  withInstalledModels,
  type InputSpec,
  type ObjectInfo,
} from './comfyui/object-info.ts';
import { addTextChunks, renderPng, renderPreview } from './comfyui/png.ts';

type Json = Record<string, unknown>;
type Graph = Record<string, { class_type?: string; inputs?: Record<string, unknown> }>;

export interface FakeTiming {
  /** Loading a checkpoint / diffusion model, only when it differs from the loaded one. */
  checkpointLoadMs: number;
  /** Patching LoRA weights, when the LoRA set at the sampler changes. */
  loraPatchMs: number;
  /** Each sampler step. */
  stepMs: number;
  /** Delay between execution_success and the history entry appearing. */
  historyDelayMs: number;
}

export interface FakeComfyUIOptions {
  checkpoints?: string[];
  loras?: string[];
  /** When set, /models/loras and the LoraLoader combo list the *.safetensors files in this folder (plus addLora names). */
  loraDir?: string;
  diffusionModels?: string[];
  vaes?: string[];
  textEncoders?: string[];
  controlnets?: string[];
  /** Files in models/upscale_models (UpscaleModelLoader); the factor is read from the name (x2, x4). */
  upscaleModels?: string[];
  /** Node classes this server lacks (an older ComfyUI, a missing custom node pack): left out of /object_info. */
  hiddenNodes?: string[];
  /** Root for output/, input/, temp/. A temp dir (removed on close) when absent. */
  dataDir?: string;
  timing?: Partial<FakeTiming>;
  /** `--preview-method`: none sends no binary frames; otherwise the preview image format. */
  previews?: 'none' | 'jpeg' | 'png';
  /** Path of an /object_info fixture layered over the built-in table; false to use only the built-in one. */
  objectInfoPath?: string | false;
  /** Reproduce ComfyUI #16010 (a stale handler's cleanup drops the reconnected socket). Default true, like the real server. */
  issue16010?: boolean;
  maxUploadSize?: number;
}

export interface FakeStats {
  promptsExecuted: number;
  promptsFailed: number;
  checkpointLoads: number;
  loraPatches: number;
  /** Time spent executing prompts since start or resetStats(). */
  busyMs: number;
  /** Time not executing, since start or resetStats(). */
  idleMs: number;
  /** Idle time between the end of one prompt and the start of the next (excludes before the first). */
  idleBetweenPromptsMs: number;
}

interface QueueItem {
  number: number;
  promptId: string;
  prompt: Graph;
  extraData: Json & { client_id?: string };
  outputs: string[];
  generation: number;
}

interface NodeValue {
  kind: 'model' | 'latent' | 'image' | 'noise' | 'sigmas' | 'guider' | 'other';
  loras?: string[];
  width?: number;
  height?: number;
  batch?: number;
  seed?: number | string;
  steps?: number;
  /** An upscale model's factor (UpscaleModelLoader), read from its file name (…x2…, …x4…). */
  scale?: number;
}

interface CacheEntry {
  value: NodeValue;
  ui?: { images: ImageRef[] };
}
interface ImageRef {
  filename: string;
  subfolder: string;
  type: string;
}

class Interrupted extends Error {}
class Lost extends Error {}
class NodeFailure extends Error {
  constructor(
    readonly exceptionType: string,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_TIMING: FakeTiming = { checkpointLoadMs: 0, loraPatchMs: 0, stepMs: 0, historyDelayMs: 0 };
const OUTPUT_CLASSES = new Set(['SaveImage', 'PreviewImage']);
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const VRAM_TOTAL = 25_769_279_488; // 24 GiB, an RTX 3090
const OOM_MESSAGE =
  'Allocation on device \nThis error means you ran out of memory on your GPU.\n\n' +
  'TIPS: If the workflow worked before you might have accidentally set the batch_size to a large number.';

const sleep = (ms: number) => new Promise<void>((r) => (ms > 0 ? setTimeout(r, ms) : setImmediate(r)));
const isLink = (v: unknown): v is [string, number] =>
  Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'number';
/** Python's repr of a list of strings, as ComfyUI puts it in value_not_in_list details. */
const pyList = (list: unknown[]) =>
  `[${list.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')}]`;

const GOLDEN_OBJECT_INFO = resolve(dirname(fileURLToPath(import.meta.url)), '../golden/object_info.json');

export class FakeComfyUI {
  readonly timing: FakeTiming;
  readonly stats: FakeStats = {
    promptsExecuted: 0,
    promptsFailed: 0,
    checkpointLoads: 0,
    loraPatches: 0,
    busyMs: 0,
    idleMs: 0,
    idleBetweenPromptsMs: 0,
  };
  /** Every prompt body POSTed, accepted or not (for tests). */
  readonly received: Json[] = [];

  private server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private port = 0;
  private readonly sockets = new Map<string, WebSocket>();
  private readonly socketFlags = new Map<string, Json>();
  private readonly httpConnections = new Set<Socket>();
  private readonly models: Record<string, Set<string>>;
  private readonly baseObjectInfo: ObjectInfo;
  private readonly previews: 'none' | 'jpeg' | 'png';
  private readonly issue16010: boolean;
  private readonly maxUploadSize: number;
  private ownsDataDir = false;

  private queue: QueueItem[] = [];
  private running: { item: QueueItem; lastNode: string | undefined } | undefined;
  private readonly history = new Map<string, Json>();
  private cache = new Map<string, CacheEntry>();
  private counter = 0;
  private generation = 0;
  private interruptRequested = false;
  private loadedModel: string | undefined;
  private patchedLoras = '';
  private pendingFree = { unload: false, free: false };
  private oom: { target: string; remaining: number } | undefined;
  private statsSince = Date.now();
  private lastFinishedAt: number | undefined;
  private pumping = false;

  constructor(
    readonly dataDir: string,
    private readonly options: FakeComfyUIOptions,
  ) {
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.previews = options.previews ?? 'jpeg';
    this.issue16010 = options.issue16010 ?? true;
    this.maxUploadSize = options.maxUploadSize ?? 100 * 1024 * 1024;
    this.models = {
      checkpoints: new Set(options.checkpoints ?? ['illustriousXL_v01.safetensors']),
      loras: new Set(options.loras ?? []),
      diffusion_models: new Set(options.diffusionModels ?? ['flux1-dev.safetensors']),
      vae: new Set(options.vaes ?? ['ae.safetensors', 'sdxl_vae.safetensors']),
      text_encoders: new Set(options.textEncoders ?? ['clip_l.safetensors', 't5xxl_fp8_e4m3fn.safetensors']),
      controlnet: new Set(options.controlnets ?? []),
      upscale_models: new Set(options.upscaleModels ?? []),
      vae_approx: new Set(),
      embeddings: new Set(),
    };
    let table = builtinObjectInfo();
    const fixture =
      options.objectInfoPath === false ? undefined : (options.objectInfoPath ?? GOLDEN_OBJECT_INFO);
    if (fixture && existsSync(fixture)) {
      table = { ...table, ...(JSON.parse(readFileSync(fixture, 'utf8')) as ObjectInfo) };
    }
    for (const hidden of options.hiddenNodes ?? []) delete table[hidden];
    this.baseObjectInfo = table;
    this.server = this.createHttpServer();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  // -------------------------------------------------------------------------------------------
  // Test controls
  // -------------------------------------------------------------------------------------------

  /** Install a LoRA at runtime (what the runner does by copying a file into the LoRA dir). */
  addLora(name: string): void {
    this.models.loras?.add(name);
  }

  addModel(folder: string, name: string): void {
    (this.models[folder] ??= new Set()).add(name);
  }

  /** The next `times` executions of a node (by id or class_type) raise torch.OutOfMemoryError. */
  injectOom(target: string, times = 1): void {
    this.oom = { target, remaining: times };
  }

  setTiming(timing: Partial<FakeTiming>): void {
    Object.assign(this.timing, timing);
  }

  resetStats(): void {
    Object.assign(this.stats, {
      promptsExecuted: 0,
      promptsFailed: 0,
      checkpointLoads: 0,
      loraPatches: 0,
      busyMs: 0,
      idleMs: 0,
      idleBetweenPromptsMs: 0,
    });
    this.statsSince = Date.now();
    this.lastFinishedAt = undefined;
  }

  /** Snapshot of the counters, with idle time computed up to now. */
  getStats(): FakeStats {
    return { ...this.stats, idleMs: Math.max(0, Date.now() - this.statsSince - this.stats.busyMs) };
  }

  /** The client ids with an open WebSocket registered (what the server would route events to). */
  connectedClients(): string[] {
    return [...this.sockets.keys()];
  }

  /** Promise that resolves when the given prompt starts executing. */
  async waitForRunning(promptId?: string): Promise<string> {
    for (;;) {
      const id = this.running?.item.promptId;
      if (id && (!promptId || id === promptId)) return id;
      await sleep(2);
    }
  }

  /**
   * Cut every WebSocket (execution goes on; events for those sids are dropped, never replayed).
   * `staleHandlerMs` keeps the old server-side handler alive that long: with issue16010 on, its
   * cleanup then pops the sid even if the client has reconnected meanwhile, and that socket goes deaf.
   */
  dropConnections(options: { staleHandlerMs?: number } = {}): void {
    for (const [, ws] of this.sockets) {
      (ws as WebSocket & { cleanupDelayMs?: number }).cleanupDelayMs = options.staleHandlerMs ?? 0;
      ws.terminate();
    }
  }

  /** Like a ComfyUI restart: connections cut, queue, history and caches lost, the running prompt gone. */
  async restart(options: { downMs?: number } = {}): Promise<void> {
    this.generation += 1;
    for (const ws of this.sockets.values()) ws.terminate();
    this.sockets.clear();
    this.socketFlags.clear();
    this.queue = [];
    this.running = undefined;
    this.history.clear();
    this.cache.clear();
    this.loadedModel = undefined;
    this.patchedLoras = '';
    this.interruptRequested = false;
    await this.stopListening();
    if (options.downMs) await sleep(options.downMs);
    this.server = this.createHttpServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    this.generation += 1;
    this.queue = [];
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    await this.stopListening();
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  markOwnsDataDir(): void {
    this.ownsDataDir = true;
  }

  // -------------------------------------------------------------------------------------------
  // Server plumbing
  // -------------------------------------------------------------------------------------------

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolveListen, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolveListen();
      });
    });
  }

  private async stopListening(): Promise<void> {
    for (const socket of this.httpConnections) socket.destroy();
    this.httpConnections.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private createHttpServer(): Server {
    const server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendJson(res, 500, { error: String(err) });
        else res.end();
      });
    });
    server.on('connection', (socket) => {
      this.httpConnections.add(socket);
      socket.on('close', () => this.httpConnections.delete(socket));
    });
    server.on('upgrade', (req, socket, head) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/api(?=\/)/, '');
      if (path !== '/ws') {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws, req));
    });
    return server;
  }

  private onSocket(ws: WebSocket, req: IncomingMessage): void {
    const requested = new URL(req.url ?? '/', 'http://x').searchParams.get('clientId');
    const sid = requested || randomUUID().replaceAll('-', '');
    // server.py: a reused clientId replaces the old entry in the sockets map.
    this.sockets.set(sid, ws);
    this.socketFlags.delete(sid);
    ws.send(JSON.stringify({ type: 'status', data: { status: this.queueInfo(), sid } }));
    if (
      this.running &&
      this.running.item.extraData.client_id === sid &&
      this.running.lastNode !== undefined
    ) {
      ws.send(JSON.stringify({ type: 'executing', data: { node: this.running.lastNode } }));
    }
    let first = true;
    ws.on('message', (data, isBinary) => {
      const wasFirst = first;
      first = false;
      if (isBinary || !wasFirst) return;
      try {
        const msg = JSON.parse(String(data)) as { type?: string; data?: Json };
        if (msg.type === 'feature_flags' && msg.data && typeof msg.data === 'object') {
          this.socketFlags.set(sid, msg.data);
          ws.send(JSON.stringify({ type: 'feature_flags', data: this.features() }));
        }
      } catch {
        // Other client text is ignored, like the real server.
      }
    });
    ws.on('close', () => {
      const cleanup = () => {
        // The real handler's `finally: self.sockets.pop(sid)` — unconditional, hence #16010.
        if (this.issue16010 || this.sockets.get(sid) === ws) {
          this.sockets.delete(sid);
          this.socketFlags.delete(sid);
        }
      };
      const delay = (ws as WebSocket & { cleanupDelayMs?: number }).cleanupDelayMs ?? 0;
      if (delay > 0) setTimeout(cleanup, delay);
      else cleanup();
    });
  }

  private features(): Json {
    return { supports_preview_metadata: true, max_upload_size: this.maxUploadSize };
  }

  private queueInfo(): Json {
    return { exec_info: { queue_remaining: this.queue.length + (this.running ? 1 : 0) } };
  }

  /** sid undefined → broadcast. */
  private send(type: string, data: Json, sid: string | undefined): void {
    const text = JSON.stringify({ type, data });
    if (sid === undefined) {
      for (const ws of this.sockets.values()) if (ws.readyState === WebSocket.OPEN) ws.send(text);
      return;
    }
    const ws = this.sockets.get(sid);
    if (ws?.readyState === WebSocket.OPEN) ws.send(text);
  }

  private sendBinary(frame: Buffer, sid: string | undefined): void {
    const targets = sid === undefined ? [...this.sockets.values()] : [this.sockets.get(sid)];
    for (const ws of targets) if (ws?.readyState === WebSocket.OPEN) ws.send(frame, { binary: true });
  }

  private broadcastStatus(): void {
    this.send('status', { status: this.queueInfo() }, undefined);
  }

  private sendJson(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendEmpty(res: ServerResponse, status = 200): void {
    res.writeHead(status, { 'content-length': 0 });
    res.end();
  }

  private async readBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > this.maxUploadSize) {
        this.sendJson(res, 413, { error: 'Request Entity Too Large' });
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private async readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<Json | undefined> {
    const body = await this.readBody(req, res);
    if (!body) return undefined;
    if (body.length === 0) return {};
    try {
      const parsed = JSON.parse(body.toString('utf8')) as unknown;
      return parsed && typeof parsed === 'object' ? (parsed as Json) : {};
    } catch {
      this.sendJson(res, 400, { error: 'invalid json' });
      return undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Routes
  // -------------------------------------------------------------------------------------------

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/^\/api(?=\/)/, '');
    const method = req.method ?? 'GET';

    if (method === 'POST' && path === '/prompt') return this.postPrompt(req, res);
    if (method === 'GET' && path === '/prompt') return this.sendJson(res, 200, this.queueInfo());
    if (method === 'GET' && path === '/queue') {
      return this.sendJson(res, 200, {
        queue_running: this.running ? [this.queueTuple(this.running.item)] : [],
        queue_pending: [...this.queue].sort((a, b) => a.number - b.number).map((q) => this.queueTuple(q)),
      });
    }
    if (method === 'POST' && path === '/queue') {
      const body = await this.readJsonBody(req, res);
      if (!body) return;
      if (body.clear) this.queue = [];
      if (Array.isArray(body.delete)) {
        const ids = new Set(body.delete.map(String));
        this.queue = this.queue.filter((q) => !ids.has(q.promptId));
      }
      this.broadcastStatus();
      return this.sendEmpty(res);
    }
    if (method === 'POST' && path === '/interrupt') {
      const body = await this.readJsonBody(req, res);
      if (!body) return;
      const target = typeof body.prompt_id === 'string' ? body.prompt_id : undefined;
      if (this.running && (target === undefined || target === this.running.item.promptId))
        this.interruptRequested = true;
      return this.sendEmpty(res);
    }
    if (method === 'GET' && path === '/history') {
      const max = url.searchParams.get('max_items');
      let entries = [...this.history.entries()];
      if (max !== null) entries = entries.slice(-Number(max));
      return this.sendJson(res, 200, Object.fromEntries(entries));
    }
    if (method === 'GET' && path.startsWith('/history/')) {
      const id = decodeURIComponent(path.slice('/history/'.length));
      const entry = this.history.get(id);
      return this.sendJson(res, 200, entry ? { [id]: entry } : {});
    }
    if (method === 'POST' && path === '/history') {
      const body = await this.readJsonBody(req, res);
      if (!body) return;
      if (body.clear) this.history.clear();
      if (Array.isArray(body.delete)) for (const id of body.delete) this.history.delete(String(id));
      return this.sendEmpty(res);
    }
    if (method === 'GET' && path === '/view') return this.view(url, res);
    if (method === 'POST' && path === '/upload/image') return this.upload(req, res);
    if (method === 'GET' && path === '/object_info') return this.sendJson(res, 200, await this.objectInfo());
    if (method === 'GET' && path.startsWith('/object_info/')) {
      const name = decodeURIComponent(path.slice('/object_info/'.length));
      const info = (await this.objectInfo())[name];
      return this.sendJson(res, 200, info ? { [name]: info } : {});
    }
    if (method === 'GET' && path === '/system_stats') return this.sendJson(res, 200, this.systemStats());
    if (method === 'GET' && path === '/models') return this.sendJson(res, 200, Object.keys(this.models));
    if (method === 'GET' && path.startsWith('/models/')) {
      const folder = decodeURIComponent(path.slice('/models/'.length));
      if (!(folder in this.models)) return this.sendJson(res, 404, { error: `unknown folder ${folder}` });
      return this.sendJson(res, 200, await this.listModels(folder));
    }
    if (method === 'GET' && path === '/embeddings') return this.sendJson(res, 200, []);
    if (method === 'GET' && path === '/features') return this.sendJson(res, 200, this.features());
    if (method === 'POST' && path === '/free') {
      const body = await this.readJsonBody(req, res);
      if (!body) return;
      this.pendingFree.unload ||= body.unload_models === true;
      this.pendingFree.free ||= body.free_memory === true;
      if (!this.running) this.applyFree();
      return this.sendEmpty(res);
    }
    this.sendJson(res, 404, { error: 'not found' });
  }

  private queueTuple(q: QueueItem): unknown[] {
    return [q.number, q.promptId, q.prompt, q.extraData, q.outputs];
  }

  private applyFree(): void {
    if (this.pendingFree.unload || this.pendingFree.free) {
      this.loadedModel = undefined;
      this.patchedLoras = '';
    }
    if (this.pendingFree.free) this.cache.clear();
    this.pendingFree = { unload: false, free: false };
  }

  private systemStats(): Json {
    const used = this.loadedModel ? 7_500_000_000 : 400_000_000;
    return {
      system: {
        os: 'posix',
        ram_total: 68_719_476_736,
        ram_free: 50_000_000_000,
        comfyui_version: '0.3.64',
        python_version: '3.12.3',
        pytorch_version: '2.8.0+cu128',
        embedded_python: false,
        argv: ['main.py', '--listen', '127.0.0.1'],
      },
      devices: [
        {
          name: 'cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync',
          type: 'cuda',
          index: 0,
          vram_total: VRAM_TOTAL,
          vram_free: VRAM_TOTAL - used,
          torch_vram_total: used,
          torch_vram_free: 100_000_000,
        },
      ],
    };
  }

  private async listModels(folder: string): Promise<string[]> {
    const names = new Set(this.models[folder] ?? []);
    if (folder === 'loras' && this.options.loraDir) {
      for (const f of await listFiles(this.options.loraDir)) if (f.endsWith('.safetensors')) names.add(f);
    }
    if (folder === 'input') for (const f of await listFiles(join(this.dataDir, 'input'))) names.add(f);
    return [...names].sort();
  }

  private async objectInfo(): Promise<ObjectInfo> {
    const models: Record<string, string[]> = {};
    for (const folder of [...Object.keys(this.models), 'input'])
      models[folder] = await this.listModels(folder);
    return withInstalledModels(this.baseObjectInfo, models);
  }

  // -------------------------------------------------------------------------------------------
  // POST /prompt and validation (execution.py validate_prompt / validate_inputs)
  // -------------------------------------------------------------------------------------------

  private async postPrompt(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.readJsonBody(req, res);
    if (!body) return;
    this.received.push(body);
    const error = (type: string, message: string, details = '') =>
      this.sendJson(res, 400, { error: { type, message, details, extra_info: {} }, node_errors: {} });

    if (!body.prompt || typeof body.prompt !== 'object')
      return error('no_prompt', 'No prompt provided', 'No prompt provided');
    const promptId = body.prompt_id === undefined ? randomUUID() : body.prompt_id;
    if (typeof promptId !== 'string' || !CANONICAL_UUID.test(promptId)) {
      return error(
        'invalid_prompt_id',
        'Invalid prompt_id',
        `prompt_id must be a canonical lowercase UUID, got ${String(promptId)}`,
      );
    }
    const prompt = body.prompt as Graph;
    const table = await this.objectInfo();
    for (const [id, node] of Object.entries(prompt)) {
      if (!node || typeof node.class_type !== 'string') {
        return error(
          'invalid_prompt',
          'Cannot execute because a node is missing the class_type property.',
          `Node ID '#${id}'`,
        );
      }
      if (!table[node.class_type]) {
        return error(
          'invalid_prompt',
          `Cannot execute because node ${node.class_type} does not exist.`,
          `Node ID '#${id}'`,
        );
      }
    }
    const result = validatePrompt(prompt, table);
    if (!result.ok) return this.sendJson(res, 400, { error: result.error, node_errors: result.nodeErrors });

    const number =
      typeof body.number === 'number' ? body.number : body.front === true ? -++this.counter : ++this.counter;
    const extraData: QueueItem['extraData'] = {
      ...(body.extra_data && typeof body.extra_data === 'object' ? (body.extra_data as Json) : {}),
      create_time: Date.now(),
    };
    if (typeof body.client_id === 'string') extraData.client_id = body.client_id;
    this.queue.push({
      number,
      promptId,
      prompt,
      extraData,
      outputs: result.goodOutputs,
      generation: this.generation,
    });
    this.broadcastStatus();
    this.sendJson(res, 200, { prompt_id: promptId, number, node_errors: result.nodeErrors });
    void this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // The worker
  // -------------------------------------------------------------------------------------------

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        this.queue.sort((a, b) => a.number - b.number);
        const item = this.queue.shift();
        if (!item) break;
        await this.execute(item);
      }
    } finally {
      this.pumping = false;
    }
  }

  private async execute(item: QueueItem): Promise<void> {
    const started = Date.now();
    if (this.lastFinishedAt !== undefined) this.stats.idleBetweenPromptsMs += started - this.lastFinishedAt;
    this.applyFree();
    this.running = { item, lastNode: undefined };
    this.interruptRequested = false;
    const sid = item.extraData.client_id;
    const promptId = item.promptId;
    const messages: [string, Json][] = [];
    // Lifecycle events go to the prompt's client only, and nowhere without a client_id.
    const lifecycle = (type: string, data: Json, broadcastWithoutClient = false) => {
      const full = { ...data, prompt_id: promptId, timestamp: Date.now() };
      if (type !== 'executing') messages.push([type, full]);
      if (sid !== undefined) this.send(type, full, sid);
      else if (broadcastWithoutClient) this.send(type, full, undefined);
    };
    const alive = () => {
      if (item.generation !== this.generation) throw new Lost();
    };

    this.broadcastStatus();
    lifecycle('execution_start', {});
    const order = executionOrder(item.prompt, item.outputs);
    const signatures = nodeSignatures(item.prompt, order);
    // Classic cache: entries the new prompt does not use are dropped before it runs.
    const used = new Set(order.map((id) => signatures.get(id) ?? ''));
    for (const key of [...this.cache.keys()]) if (!used.has(key)) this.cache.delete(key);
    const cachedNodes = order.filter((id) => this.cache.has(signatures.get(id) ?? ''));
    lifecycle('execution_cached', { nodes: cachedNodes });

    const values = new Map<string, NodeValue>();
    const outputs: Record<string, { images: ImageRef[] }> = {};
    const progress: Record<string, Json> = {};
    const sendProgressState = () =>
      this.send('progress_state', { prompt_id: promptId, nodes: progress }, sid);
    const executed: string[] = [];
    let current: string | undefined;
    let outcome: 'success' | 'error' | 'interrupted' = 'success';

    try {
      for (const id of order) {
        const node = item.prompt[id];
        if (!node?.class_type) continue;
        const classType = node.class_type;
        const key = signatures.get(id) ?? '';
        const hit = this.cache.get(key);
        if (hit) {
          values.set(id, hit.value);
          if (hit.ui) {
            outputs[id] = hit.ui;
            lifecycle('executed', { node: id, display_node: id, output: hit.ui });
          }
          continue;
        }
        alive();
        if (this.interruptRequested) throw new Interrupted();
        current = id;
        this.running.lastNode = id;
        const state = (s: string, value = 0, max = 1) =>
          (progress[id] = {
            value,
            max,
            state: s,
            node_id: id,
            prompt_id: promptId,
            display_node_id: id,
            parent_node_id: null,
            real_node_id: id,
          });
        state('running');
        sendProgressState();
        lifecycle('executing', { node: id, display_node: id });
        if (this.oom && (this.oom.target === id || this.oom.target === classType) && this.oom.remaining > 0) {
          this.oom.remaining -= 1;
          throw new NodeFailure('torch.OutOfMemoryError', OOM_MESSAGE);
        }
        const inputs = resolveInputs(node.inputs ?? {}, values);
        const { value, ui } = await this.runNode(item, id, classType, inputs, (value, max) => {
          state('running', value, max);
          this.send('progress', { value, max, prompt_id: promptId, node: id }, sid);
          sendProgressState();
        });
        alive();
        values.set(id, value);
        this.cache.set(key, ui ? { value, ui } : { value });
        executed.push(id);
        if (ui) {
          outputs[id] = ui;
          lifecycle('executed', { node: id, display_node: id, output: ui });
        }
        state('finished', 1, 1);
        sendProgressState();
      }
      current = undefined;
      lifecycle('execution_success', {});
    } catch (err) {
      if (err instanceof Lost) return;
      const nodeType = current ? item.prompt[current]?.class_type : undefined;
      if (err instanceof Interrupted) {
        outcome = 'interrupted';
        lifecycle(
          'execution_interrupted',
          { node_id: current ?? null, node_type: nodeType ?? null, executed },
          true,
        );
      } else {
        outcome = 'error';
        const failure = err instanceof NodeFailure ? err : new NodeFailure('Exception', String(err));
        if (failure.exceptionType.includes('OutOfMemory')) {
          // execution.py unloads every model after an OOM.
          this.loadedModel = undefined;
          this.patchedLoras = '';
        }
        lifecycle('execution_error', {
          node_id: current ?? null,
          node_type: nodeType ?? null,
          executed,
          exception_message: failure.message,
          exception_type: failure.exceptionType,
          traceback: ['  File "execution.py", line 496, in execute\n'],
          current_inputs: {},
          current_outputs: {},
        });
      }
    }

    // execution_success goes out before the history entry exists.
    await sleep(this.timing.historyDelayMs);
    if (item.generation !== this.generation) return;
    this.history.set(promptId, {
      prompt: this.queueTuple(item),
      outputs,
      status: {
        status_str: outcome === 'success' ? 'success' : 'error',
        completed: outcome === 'success',
        messages,
      },
      meta: Object.fromEntries(
        Object.keys(outputs).map((id) => [
          id,
          { node_id: id, display_node: id, parent_node: null, real_node_id: id },
        ]),
      ),
    });
    this.running = undefined;
    const finished = Date.now();
    this.stats.busyMs += finished - started;
    this.lastFinishedAt = finished;
    if (outcome === 'success') this.stats.promptsExecuted += 1;
    else this.stats.promptsFailed += 1;
    this.broadcastStatus();
    if (sid !== undefined) this.send('executing', { node: null, prompt_id: promptId }, sid);
  }

  private async runNode(
    item: QueueItem,
    id: string,
    classType: string,
    inputs: Record<string, unknown>,
    onStep: (value: number, max: number) => void,
  ): Promise<{ value: NodeValue; ui?: { images: ImageRef[] } }> {
    const num = (v: unknown, d: number) => (typeof v === 'number' ? v : Number(v ?? d));
    const val = (v: unknown): NodeValue =>
      v && typeof v === 'object' && 'kind' in v ? (v as NodeValue) : { kind: 'other' };
    switch (classType) {
      case 'CheckpointLoaderSimple':
      case 'UNETLoader': {
        const name = String(inputs.ckpt_name ?? inputs.unet_name);
        if (this.loadedModel !== name) {
          await sleep(this.timing.checkpointLoadMs);
          this.stats.checkpointLoads += 1;
          this.loadedModel = name;
          this.patchedLoras = '';
        }
        return { value: { kind: 'model', loras: [] } };
      }
      case 'LoraLoader':
      case 'LoraLoaderModelOnly': {
        const base = val(inputs.model);
        return {
          value: {
            kind: 'model',
            loras: [...(base.loras ?? []), `${String(inputs.lora_name)}@${num(inputs.strength_model, 1)}`],
          },
        };
      }
      case 'ModelSamplingDiscrete':
      case 'ModelSamplingFlux':
      case 'ModelSamplingSD3':
      case 'ModelSamplingContinuousEDM':
      case 'ModelSamplingAuraFlow':
      case 'CLIPSetLastLayer':
        return { value: val(inputs.model ?? inputs.clip) };
      case 'EmptyLatentImage':
      case 'EmptySD3LatentImage':
      case 'EmptyFlux2LatentImage':
        return {
          value: {
            kind: 'latent',
            width: num(inputs.width, 512),
            height: num(inputs.height, 512),
            batch: num(inputs.batch_size, 1),
          },
        };
      case 'LatentUpscale': {
        const l = val(inputs.samples);
        return {
          value: {
            ...l,
            width: num(inputs.width, l.width ?? 512),
            height: num(inputs.height, l.height ?? 512),
          },
        };
      }
      case 'LatentUpscaleBy': {
        const l = val(inputs.samples);
        const s = num(inputs.scale_by, 1.5);
        return {
          value: { ...l, width: Math.round((l.width ?? 512) * s), height: Math.round((l.height ?? 512) * s) },
        };
      }
      case 'RandomNoise':
        return { value: { kind: 'noise', seed: num(inputs.noise_seed, 0) } };
      case 'BasicScheduler':
      case 'Flux2Scheduler':
        return { value: { kind: 'sigmas', steps: num(inputs.steps, 20) } };
      case 'BasicGuider':
        return { value: { kind: 'guider', loras: val(inputs.model).loras ?? [] } };
      case 'KSampler':
      case 'KSamplerAdvanced':
        return this.sample(
          item,
          id,
          val(inputs.model).loras ?? [],
          num(inputs.steps, 20),
          num(inputs.seed ?? inputs.noise_seed, 0),
          val(inputs.latent_image),
          onStep,
        );
      case 'SamplerCustomAdvanced':
        return this.sample(
          item,
          id,
          val(inputs.guider).loras ?? [],
          val(inputs.sigmas).steps ?? 20,
          val(inputs.noise).seed ?? 0,
          val(inputs.latent_image),
          onStep,
        );
      case 'VAEDecode': {
        const l = val(inputs.samples);
        return {
          value: {
            kind: 'image',
            width: l.width ?? 512,
            height: l.height ?? 512,
            batch: l.batch ?? 1,
            seed: l.seed ?? 0,
          },
        };
      }
      case 'LoadImage': {
        const file = resolve(this.dataDir, 'input', String(inputs.image));
        const meta = await sharp(file).metadata();
        return {
          value: {
            kind: 'image',
            width: meta.width,
            height: meta.height,
            batch: 1,
            seed: String(inputs.image),
          },
        };
      }
      case 'ImageScale': {
        const i = val(inputs.image);
        return {
          value: {
            ...i,
            width: num(inputs.width, i.width ?? 512),
            height: num(inputs.height, i.height ?? 512),
          },
        };
      }
      case 'UpscaleModelLoader': {
        const factor = /(?:^|[^a-z0-9])x?([1-8])x|x([1-8])(?:[^0-9]|$)/i.exec(String(inputs.model_name));
        return { value: { kind: 'other', scale: Number(factor?.[1] ?? factor?.[2] ?? 4) } };
      }
      case 'ImageUpscaleWithModel': {
        const i = val(inputs.image);
        const s = val(inputs.upscale_model).scale ?? 4;
        return { value: { ...i, width: (i.width ?? 512) * s, height: (i.height ?? 512) * s } };
      }
      case 'SaveImage':
      case 'PreviewImage':
        return {
          value: { kind: 'other' },
          ui: { images: await this.saveImages(item, classType, val(inputs.images), inputs.filename_prefix) },
        };
      default:
        return { value: { kind: 'other' } };
    }
  }

  private async sample(
    item: QueueItem,
    id: string,
    loras: string[],
    steps: number,
    seed: number | string,
    latent: NodeValue,
    onStep: (value: number, max: number) => void,
  ): Promise<{ value: NodeValue }> {
    // load_models_gpu re-patches the weights on the GPU when the LoRA set changes.
    const loraKey = loras.join('|');
    if (loraKey !== this.patchedLoras) {
      if (loraKey !== '') {
        await sleep(this.timing.loraPatchMs);
        this.stats.loraPatches += 1;
      }
      this.patchedLoras = loraKey;
    }
    const sid = item.extraData.client_id;
    const preview = this.previews === 'none' ? undefined : await renderPreview(seed, 0, this.previews);
    for (let step = 1; step <= steps; step++) {
      if (item.generation !== this.generation) throw new Lost();
      if (this.interruptRequested) throw new Interrupted();
      await sleep(this.timing.stepMs);
      if (item.generation !== this.generation) throw new Lost();
      onStep(step, steps);
      if (preview) {
        const mime = this.previews === 'png' ? 'image/png' : 'image/jpeg';
        const flags = sid !== undefined ? this.socketFlags.get(sid) : undefined;
        const frame =
          flags?.supports_preview_metadata === true
            ? encodePreviewWithMetadataFrame(preview, {
                node_id: id,
                prompt_id: item.promptId,
                display_node_id: id,
                parent_node_id: null,
                real_node_id: id,
                image_type: mime,
              })
            : encodePreviewFrame(preview, mime);
        this.sendBinary(frame, sid);
      }
    }
    return {
      value: {
        kind: 'latent',
        width: latent.width ?? 512,
        height: latent.height ?? 512,
        batch: latent.batch ?? 1,
        seed,
      },
    };
  }

  /** SaveImage: `{prefix}_{counter:05}_.png`, subfolder from the prefix, counter after the highest existing file. */
  private async saveImages(
    item: QueueItem,
    classType: string,
    image: NodeValue,
    prefixInput: unknown,
  ): Promise<ImageRef[]> {
    const isTemp = classType === 'PreviewImage';
    const type = isTemp ? 'temp' : 'output';
    const root = join(this.dataDir, type);
    const prefix = isTemp ? `ComfyUI_temp_${randomUUID().slice(0, 5)}` : String(prefixInput ?? 'ComfyUI');
    const fullPrefix = resolve(root, prefix);
    if (relative(root, fullPrefix).startsWith('..')) {
      throw new NodeFailure(
        'Exception',
        `Saving image outside the output folder is not allowed.\n full_output_folder: ${dirname(fullPrefix)}`,
      );
    }
    const folder = dirname(fullPrefix);
    const base = fullPrefix.slice(folder.length + 1);
    const subfolder = relative(root, folder).split(sep).join('/');
    await mkdir(folder, { recursive: true });
    let counter = 1;
    const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d+)_`);
    for (const f of await readdir(folder)) {
      const m = pattern.exec(f);
      if (m?.[1]) counter = Math.max(counter, Number(m[1]) + 1);
    }
    const refs: ImageRef[] = [];
    const width = image.width ?? 512;
    const height = image.height ?? 512;
    const texts: Record<string, string> = { prompt: JSON.stringify(item.prompt) };
    const pnginfo = item.extraData.extra_pnginfo;
    if (pnginfo && typeof pnginfo === 'object') {
      for (const [k, v] of Object.entries(pnginfo as Json)) texts[k] = JSON.stringify(v);
    }
    for (let i = 0; i < (image.batch ?? 1); i++) {
      const filename = `${base}_${String(counter).padStart(5, '0')}_.png`;
      const seed = typeof image.seed === 'number' ? image.seed + i : `${String(image.seed ?? 0)}:${i}`;
      const png = addTextChunks(await renderPng(width, height, seed), isTemp ? {} : texts);
      await writeFile(join(folder, filename), png);
      refs.push({ filename, subfolder, type });
      counter += 1;
    }
    return refs;
  }

  // -------------------------------------------------------------------------------------------
  // /view and /upload/image
  // -------------------------------------------------------------------------------------------

  private async view(url: URL, res: ServerResponse): Promise<void> {
    let filename = url.searchParams.get('filename') ?? '';
    let type = url.searchParams.get('type') || 'output';
    const m = /^(.*) \[(output|input|temp)\]$/.exec(filename);
    if (m?.[1] && m[2]) {
      filename = m[1];
      type = m[2];
    }
    if (!filename || filename.startsWith('/') || filename.includes('..'))
      return this.sendJson(res, 400, { error: 'bad filename' });
    if (!['output', 'input', 'temp'].includes(type)) return this.sendJson(res, 400, { error: 'bad type' });
    const root = join(this.dataDir, type);
    const folder = resolve(root, url.searchParams.get('subfolder') ?? '');
    if (relative(root, folder).startsWith('..')) return this.sendJson(res, 403, { error: 'forbidden' });
    const file = join(folder, filename);
    let data: Buffer;
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
      data = await readFile(file);
    } catch {
      return this.sendJson(res, 404, { error: 'not found' });
    }
    const contentType = filename.endsWith('.png')
      ? 'image/png'
      : filename.endsWith('.jpg') || filename.endsWith('.jpeg')
        ? 'image/jpeg'
        : 'application/octet-stream';
    res.writeHead(200, {
      'content-type': contentType,
      'content-length': data.length,
      'content-disposition': `filename="${filename}"`,
    });
    res.end(data);
  }

  private async upload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.readBody(req, res);
    if (!body) return;
    let form: FormData;
    try {
      form = await new Response(body, {
        headers: { 'content-type': req.headers['content-type'] ?? '' },
      }).formData();
    } catch {
      return this.sendJson(res, 400, { error: 'expected multipart/form-data' });
    }
    const image = form.get('image');
    if (!image || typeof image === 'string' || !image.name) return this.sendEmpty(res, 400);
    const type = String(form.get('type') ?? 'input') || 'input';
    const subfolder = String(form.get('subfolder') ?? '');
    const overwrite = ['true', '1'].includes(String(form.get('overwrite') ?? '').toLowerCase());
    const root = join(this.dataDir, type);
    const folder = resolve(root, subfolder);
    if (relative(root, folder).startsWith('..') || image.name.includes('/') || image.name.includes('..'))
      return this.sendEmpty(res, 400);
    await mkdir(folder, { recursive: true });
    const data = Buffer.from(await image.arrayBuffer());
    let name = image.name;
    if (!overwrite) {
      const dot = name.lastIndexOf('.');
      const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
      for (let i = 1; existsSync(join(folder, name)); i++) {
        const existing = await readFile(join(folder, name));
        if (sha256(existing) === sha256(data)) break; // same content: reuse the file
        name = `${stem} (${i})${ext}`;
      }
    }
    await writeFile(join(folder, name), data);
    this.sendJson(res, 200, { name, subfolder, type });
  }
}

// ---------------------------------------------------------------------------------------------
// Graph helpers
// ---------------------------------------------------------------------------------------------

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e.isDirectory()) out.push(...(await listFiles(join(dir, e.name), `${prefix}${e.name}/`)));
    else out.push(`${prefix}${e.name}`);
  }
  return out;
}

function resolveInputs(
  inputs: Record<string, unknown>,
  values: Map<string, NodeValue>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(inputs)) out[k] = isLink(v) ? values.get(v[0]) : v;
  return out;
}

/** Ancestors first, outputs last: the nodes that actually execute for `outputs`. */
function executionOrder(prompt: Graph, outputs: string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (id: string) => {
    if (seen.has(id)) return;
    seen.add(id);
    for (const v of Object.values(prompt[id]?.inputs ?? {})) if (isLink(v) && prompt[v[0]]) visit(v[0]);
    order.push(id);
  };
  for (const o of [...outputs].sort()) visit(o);
  return order;
}

/** Cache keys: class, literal inputs and the whole ancestor signature (comfy_execution/caching.py). */
function nodeSignatures(prompt: Graph, order: string[]): Map<string, string> {
  const sig = new Map<string, string>();
  for (const id of order) {
    const node = prompt[id];
    const inputs = Object.entries(node?.inputs ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => [k, isLink(v) ? ['link', sig.get(v[0]), v[1]] : v]);
    const raw = JSON.stringify([
      node?.class_type,
      inputs,
      OUTPUT_CLASSES.has(node?.class_type ?? '') ? id : null,
    ]);
    sig.set(id, createHash('sha256').update(raw).digest('hex'));
  }
  return sig;
}

interface ValidationError {
  type: string;
  message: string;
  details: string;
  extra_info: Json;
}

function validatePrompt(
  prompt: Graph,
  table: ObjectInfo,
):
  | { ok: true; goodOutputs: string[]; nodeErrors: Json }
  | { ok: false; error: ValidationError; nodeErrors: Json } {
  const outputs = Object.keys(prompt).filter(
    (id) => table[prompt[id]?.class_type ?? '']?.output_node === true,
  );
  if (outputs.length === 0) {
    return {
      ok: false,
      error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} },
      nodeErrors: {},
    };
  }
  const validated = new Map<string, { valid: boolean; errors: ValidationError[] }>();
  const validateNode = (id: string): boolean => {
    const done = validated.get(id);
    if (done) return done.valid;
    const node = prompt[id];
    const info = table[node?.class_type ?? ''];
    const errors: ValidationError[] = [];
    let valid = true;
    validated.set(id, { valid: true, errors }); // guards cycles
    const inputs = node?.inputs ?? {};
    const specs: [string, InputSpec, boolean][] = [
      ...Object.entries(info?.input.required ?? {}).map(([k, s]): [string, InputSpec, boolean] => [
        k,
        s,
        true,
      ]),
      ...Object.entries(info?.input.optional ?? {}).map(([k, s]): [string, InputSpec, boolean] => [
        k,
        s,
        false,
      ]),
    ];
    for (const [name, spec, required] of specs) {
      if (!(name in inputs)) {
        if (required) {
          errors.push({
            type: 'required_input_missing',
            message: 'Required input is missing',
            details: name,
            extra_info: { input_name: name },
          });
        }
        continue;
      }
      const value = inputs[name];
      const config = spec[1] ?? {};
      if (Array.isArray(value)) {
        if (!isLink(value)) {
          errors.push({
            type: 'bad_linked_input',
            message: 'Bad linked input, must be a length-2 list of [string, int]',
            details: name,
            extra_info: { input_name: name, input_config: spec, received_value: value },
          });
          continue;
        }
        const source = prompt[value[0]];
        const sourceInfo = table[source?.class_type ?? ''];
        const received = sourceInfo?.output[value[1]];
        const expected = typeof spec[0] === 'string' ? spec[0] : 'COMBO';
        if (
          !source ||
          received === undefined ||
          (expected !== '*' && received !== '*' && received !== expected)
        ) {
          errors.push({
            type: 'return_type_mismatch',
            message: 'Return type mismatch between linked nodes',
            details: `${name}, received_type(${received ?? 'None'}) mismatch input_type(${expected})`,
            extra_info: { input_name: name, input_config: spec, received_type: received, linked_node: value },
          });
          continue;
        }
        if (!validateNode(value[0])) valid = false;
        continue;
      }
      const options = comboOptions(spec);
      if (options) {
        if (!options.includes(value)) {
          const listInfo = options.length > 20 ? `(list of length ${options.length})` : pyList(options);
          errors.push({
            type: 'value_not_in_list',
            message: 'Value not in list',
            details: `${name}: '${String(value)}' not in ${listInfo}`,
            extra_info: {
              input_name: name,
              input_config: options.length > 20 ? null : spec,
              received_value: value,
            },
          });
        }
        continue;
      }
      if (spec[0] === 'INT' || spec[0] === 'FLOAT') {
        const n = Number(value);
        if (typeof value === 'boolean' || value === null || value === '' || Number.isNaN(n)) {
          errors.push({
            type: 'invalid_input_type',
            message: `Failed to convert an input value to a ${spec[0]} value`,
            details: `${name}, ${String(value)}`,
            extra_info: { input_name: name, input_config: spec, received_value: value },
          });
          continue;
        }
        const min = config.min;
        const max = config.max;
        if (typeof min === 'number' && n < min) {
          errors.push({
            type: 'value_smaller_than_min',
            message: `Value ${n} smaller than min of ${min}`,
            details: name,
            extra_info: { input_name: name, input_config: spec, received_value: value },
          });
        } else if (typeof max === 'number' && n > max) {
          errors.push({
            type: 'value_bigger_than_max',
            message: `Value ${n} bigger than max of ${max}`,
            details: name,
            extra_info: { input_name: name, input_config: spec, received_value: value },
          });
        }
      }
    }
    valid = valid && errors.length === 0;
    validated.set(id, { valid, errors });
    return valid;
  };

  const goodOutputs: string[] = [];
  const nodeErrors: Record<
    string,
    { errors: ValidationError[]; dependent_outputs: string[]; class_type: string }
  > = {};
  for (const o of outputs) {
    if (validateNode(o)) {
      goodOutputs.push(o);
      continue;
    }
    for (const [id, result] of validated) {
      if (result.valid || result.errors.length === 0) continue;
      nodeErrors[id] ??= {
        errors: result.errors,
        dependent_outputs: [],
        class_type: prompt[id]?.class_type ?? '',
      };
      nodeErrors[id].dependent_outputs.push(o);
    }
  }
  if (goodOutputs.length === 0) {
    const details = Object.values(nodeErrors)
      .flatMap((n) => n.errors)
      .map((e) => `${e.message}: ${e.details}`)
      .join('\n');
    return {
      ok: false,
      error: {
        type: 'prompt_outputs_failed_validation',
        message: 'Prompt outputs failed validation',
        details,
        extra_info: {},
      },
      nodeErrors,
    };
  }
  return { ok: true, goodOutputs, nodeErrors };
}

/** Start a fake ComfyUI on 127.0.0.1 and a free port. */
export async function startFakeComfyUI(options: FakeComfyUIOptions = {}): Promise<FakeComfyUI> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fake-comfyui-')));
  for (const sub of ['output', 'input', 'temp']) await mkdir(join(dataDir, sub), { recursive: true });
  const fake = new FakeComfyUI(dataDir, options);
  if (!options.dataDir) fake.markOwnsDataDir();
  await fake.listen(0);
  return fake;
}
