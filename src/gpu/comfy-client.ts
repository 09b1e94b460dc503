/**
 * A small ComfyUI client typed from the protocol (shared/reference/comfyui.md).
 *
 * What it guarantees to its callers (the render worker, the CLI):
 * - `run()` settles exactly once per prompt: with the output images (fetched through /view), or with
 *   a typed error (validation, execution, out-of-memory, interrupted, lost, unreachable).
 * - We choose the prompt_id before submitting and register the run before the POST, so events that
 *   arrive before the POST response (a cached prompt can finish first) are not lost.
 * - `execution_success` is sent before ComfyUI writes the history entry, so completion polls
 *   /history/{id} with a short backoff until the entry exists, and takes the outputs from it.
 * - A dropped WebSocket is reconnected (after the old one has fully closed, ComfyUI #16010) with the
 *   same clientId; every in-flight run is then reconciled from /queue and /history, and a slow
 *   /queue + /history poll keeps running as a backstop, because events for the old socket are gone
 *   and a stale server handler can swallow the new socket's events.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import WebSocket, { type RawData } from 'ws';
import type { z } from 'zod';
import { ComicMasterError, InputError, UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import {
  CANONICAL_UUID,
  historySchema,
  modelListSchema,
  promptAcceptedSchema,
  promptInfoSchema,
  promptRejectedSchema,
  queueSchema,
  systemStatsSchema,
  uploadResponseSchema,
  parseWsEvent,
  type ApiGraph,
  type ExecutionErrorData,
  type ExecutionInterruptedData,
  type HistoryEntry,
  type ImageRef,
  type NodeErrors,
  type QueueState,
  type QueuedPrompt,
  type UploadResponse,
  type WsEvent,
} from './comfy-protocol.ts';
import { parseBinaryFrame, type PreviewMime } from './previews.ts';

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export interface ComfyNodeError {
  nodeId: string;
  classType: string;
  errors: { type: string; message: string; details: string; inputName?: string; receivedValue?: unknown }[];
}

/** ComfyUI refused the graph (HTTP 400). Retrying the same graph will not help. */
export class ComfyValidationError extends ComicMasterError {
  constructor(
    readonly errorType: string,
    readonly errorMessage: string,
    readonly nodeErrors: ComfyNodeError[],
    readonly details = '',
  ) {
    const summary = ComfyValidationError.summarize(errorType, errorMessage, nodeErrors, details);
    super('comfy_validation', `ComfyUI rejected the workflow: ${summary}`, {
      operatorMessage: `ComfyUI /prompt 400 ${errorType}: ${summary}`,
    });
    this.name = 'ComfyValidationError';
  }

  static summarize(
    errorType: string,
    message: string,
    nodeErrors: ComfyNodeError[],
    details: string,
  ): string {
    if (nodeErrors.length === 0) return details ? `${message} (${details})` : message;
    const parts: string[] = [];
    for (const node of nodeErrors) {
      for (const e of node.errors) {
        const where = `node ${node.nodeId} (${node.classType})`;
        if (e.type === 'value_not_in_list' && e.inputName) {
          parts.push(
            `${where}: ${e.inputName} '${String(e.receivedValue ?? '?')}' is not available on this ComfyUI`,
          );
        } else if (e.type === 'required_input_missing' && e.inputName) {
          parts.push(`${where}: required input ${e.inputName} is missing`);
        } else {
          const input = e.inputName ? ` input ${e.inputName}` : '';
          parts.push(`${where}${input}: ${e.message}${e.details ? ` (${e.details})` : ''}`);
        }
      }
    }
    return parts.length > 0 ? parts.join('; ') : `${errorType}: ${message}`;
  }
}

/** A node raised while ComfyUI executed the prompt. */
export class ComfyExecutionError extends ComicMasterError {
  readonly promptId: string;
  readonly nodeId: string | undefined;
  readonly nodeType: string | undefined;
  readonly exceptionType: string;
  readonly exceptionMessage: string;

  constructor(data: ExecutionErrorData, code = 'comfy_execution', userMessage?: string) {
    const where = data.node_type
      ? `${data.node_type} (node ${data.node_id ?? '?'})`
      : `node ${data.node_id ?? '?'}`;
    const firstLine = data.exception_message.split('\n')[0]?.trim() ?? '';
    super(code, userMessage ?? `The render failed in ${where}: ${firstLine || data.exception_type}`, {
      operatorMessage: `ComfyUI execution_error in ${where} for prompt ${data.prompt_id}: ${data.exception_type}: ${data.exception_message}`,
    });
    this.name = 'ComfyExecutionError';
    this.promptId = data.prompt_id;
    this.nodeId = data.node_id ?? undefined;
    this.nodeType = data.node_type ?? undefined;
    this.exceptionType = data.exception_type;
    this.exceptionMessage = data.exception_message;
  }
}

/** The GPU ran out of memory (torch.OutOfMemoryError, "Allocation on device"). */
export class ComfyOutOfMemoryError extends ComfyExecutionError {
  constructor(data: ExecutionErrorData) {
    const where = data.node_type ?? `node ${data.node_id ?? '?'}`;
    super(
      data,
      'comfy_oom',
      `The GPU ran out of memory while running ${where}. Try a smaller image size, fewer candidates per panel, ` +
        'or fewer LoRAs; if other work was using the GPU, try again once it is idle.',
    );
    this.name = 'ComfyOutOfMemoryError';
  }
}

export function isOutOfMemory(data: { exception_type?: string; exception_message?: string }): boolean {
  return (
    (data.exception_type ?? '').includes('OutOfMemoryError') ||
    (data.exception_message ?? '').includes('Allocation on device') ||
    /CUDA out of memory/i.test(data.exception_message ?? '')
  );
}

/** The prompt was interrupted (POST /interrupt, or our own cancel). */
export class ComfyInterruptedError extends ComicMasterError {
  constructor(
    readonly promptId: string,
    reason = 'The render was interrupted.',
    readonly nodeType?: string,
  ) {
    super('comfy_interrupted', reason, {
      operatorMessage: `prompt ${promptId} interrupted${nodeType ? ` in ${nodeType}` : ''}`,
    });
    this.name = 'ComfyInterruptedError';
  }
}

/** The prompt is in neither the queue nor the history (ComfyUI restarted, or someone deleted it). */
export class ComfyPromptLostError extends UpstreamError {
  constructor(
    readonly promptId: string,
    why: string,
  ) {
    super(
      'comfyui',
      'The GPU box lost this render (ComfyUI restarted or dropped it); it can be submitted again.',
      {
        operatorMessage: `prompt ${promptId} lost: ${why}`,
        retryable: true,
      },
    );
    this.name = 'ComfyPromptLostError';
  }
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

export interface ComfyClientOptions {
  baseUrl: string;
  /** Our WebSocket identity; lifecycle events are routed to it. Random if absent. */
  clientId?: string;
  logger?: Logger;
  /** Timeout for each HTTP request. */
  requestTimeoutMs?: number;
  /** Backstop /queue + /history poll for in-flight runs while the socket looks healthy. */
  pollIntervalMs?: number;
  /** The same poll after a reconnect, when events may have been dropped. */
  recoveryPollIntervalMs?: number;
  /** How long to wait for the history entry after execution_success. */
  historyWaitMs?: number;
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Ping interval; a missed pong closes the socket and reconnects. 0 disables. */
  heartbeatMs?: number;
  /** Ask for type-4 previews (with prompt id metadata). Default true; false gets type-1 frames. */
  previewMetadata?: boolean;
}

export interface RunOptions {
  promptId?: string;
  front?: boolean;
  onProgress?: (value: number, max: number, node: string | undefined) => void;
  onPreview?: (image: Buffer, mime: PreviewMime) => void;
  signal?: AbortSignal;
}

export interface OutputImage {
  nodeId: string;
  filename: string;
  subfolder: string;
  type: string;
  data: Buffer;
}

export interface RunResult {
  promptId: string;
  images: OutputImage[];
  /** Every output came from ComfyUI's cache: nothing was rendered, the files are the old ones. */
  cached: boolean;
  timings: {
    /** Local time from submit to result, images included. */
    totalMs: number;
    /** ComfyUI's own execution_start → execution_success, when known. */
    executionMs?: number;
  };
}

export interface SubmitResult {
  promptId: string;
  number: number;
  /** Outputs that failed validation are skipped while the rest run (HTTP 200 with node_errors). */
  nodeErrors: ComfyNodeError[];
}

export interface SystemStats {
  gpuName: string | undefined;
  vramTotal: number | undefined;
  vramFree: number | undefined;
  comfyuiVersion: string | undefined;
  devices: { name: string; type: string; vramTotal: number; vramFree: number }[];
}

// ---------------------------------------------------------------------------------------------
// Run tracking
// ---------------------------------------------------------------------------------------------

interface RunTracker {
  promptId: string;
  startedAtLocal: number;
  submitted: boolean;
  settled: boolean;
  /** Completion is being read from history; do it once. */
  finishing: boolean;
  /** A reconnect happened while this run was in flight: events may have been dropped. */
  eventsMayBeLost: boolean;
  cachedNodes: Set<string>;
  options: RunOptions;
  pollTimer: NodeJS.Timeout | undefined;
  resolve: (result: RunResult) => void;
  reject: (error: unknown) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function toNodeErrors(raw: NodeErrors): ComfyNodeError[] {
  return Object.entries(raw).map(([nodeId, entry]) => ({
    nodeId,
    classType: entry.class_type,
    errors: entry.errors.map((e) => ({
      type: e.type,
      message: e.message,
      details: e.details,
      inputName: e.extra_info?.input_name,
      receivedValue: e.extra_info?.received_value,
    })),
  }));
}

/** `cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync` → `NVIDIA GeForce RTX 3090`. */
export function gpuNameFromDevice(name: string): string {
  return name
    .replace(/^[a-z]+:\d+\s+/i, '')
    .replace(/\s+:\s+\S+$/, '')
    .trim();
}

export class ComfyClient {
  readonly clientId: string;
  private readonly baseUrl: string;
  private readonly logger: Logger;
  private readonly requestTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly recoveryPollIntervalMs: number;
  private readonly historyWaitMs: number;
  private readonly reconnectInitialDelayMs: number;
  private readonly reconnectMaxDelayMs: number;
  private readonly heartbeatMs: number;
  private readonly previewMetadata: boolean;

  private ws: WebSocket | undefined;
  private opening: Promise<void> | undefined;
  private closedByUs = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private readonly runs = new Map<string, RunTracker>();
  /** The prompt ComfyUI is executing for us; type-1 previews carry no prompt id. */
  private currentPromptId: string | undefined;
  /** Flags the server answered our feature_flags frame with. */
  serverFeatures: Record<string, unknown> = {};

  constructor(options: ComfyClientOptions) {
    if (!URL.canParse(options.baseUrl)) throw new InputError(`COMFYUI_URL is not a URL: ${options.baseUrl}`);
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.clientId = options.clientId ?? randomUUID();
    this.logger = (options.logger ?? log()).child({ component: 'comfy-client', comfyui: this.baseUrl });
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 2_000;
    this.recoveryPollIntervalMs = options.recoveryPollIntervalMs ?? 250;
    this.historyWaitMs = options.historyWaitMs ?? 30_000;
    this.reconnectInitialDelayMs = options.reconnectInitialDelayMs ?? 100;
    this.reconnectMaxDelayMs = options.reconnectMaxDelayMs ?? 5_000;
    this.heartbeatMs = options.heartbeatMs ?? 20_000;
    this.previewMetadata = options.previewMetadata ?? true;
  }

  // -------------------------------------------------------------------------------------------
  // WebSocket
  // -------------------------------------------------------------------------------------------

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Open the WebSocket (idempotent). Rejects with UpstreamError when ComfyUI is unreachable. */
  async connect(): Promise<void> {
    this.closedByUs = false;
    if (this.connected) return;
    this.opening ??= this.waitForOldSocket()
      .then(() => this.openSocket())
      .finally(() => {
        this.opening = undefined;
      });
    return this.opening;
  }

  /**
   * Never open a second socket with our clientId while the previous one is still closing: the
   * server's cleanup of the old one would remove the new one (ComfyUI #16010).
   */
  private async waitForOldSocket(): Promise<void> {
    const old = this.ws;
    if (!old || old.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      old.once('close', () => resolve());
      if (old.readyState === WebSocket.OPEN) old.close();
    });
  }

  private wsUrl(): string {
    const url = new URL(`${this.baseUrl}/ws`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('clientId', this.clientId);
    return url.toString();
  }

  private openSocket(): Promise<void> {
    return new Promise((resolve, reject) => {
      // No `origin` option: ComfyUI answers 403 when an Origin host differs from Host.
      const ws = new WebSocket(this.wsUrl(), { handshakeTimeout: this.requestTimeoutMs });
      let opened = false;
      ws.on('open', () => {
        opened = true;
        this.ws = ws;
        this.reconnectAttempt = 0;
        // Must be the first client message, or the server ignores it.
        ws.send(
          JSON.stringify({
            type: 'feature_flags',
            data: { supports_preview_metadata: this.previewMetadata },
          }),
        );
        this.startHeartbeat(ws);
        this.logger.debug({ clientId: this.clientId }, 'comfyui websocket open');
        resolve();
      });
      ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
      ws.on('pong', () => {
        this.awaitingPong = false;
      });
      ws.on('error', (err) => {
        if (!opened) reject(this.unreachable(err, 'WebSocket'));
        else this.logger.warn({ err }, 'comfyui websocket error');
      });
      ws.on('close', (code) => {
        if (!opened) return;
        this.onSocketClosed(ws, code);
      });
    });
  }

  private startHeartbeat(ws: WebSocket): void {
    this.stopHeartbeat();
    if (this.heartbeatMs <= 0) return;
    this.awaitingPong = false;
    this.heartbeatTimer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (this.awaitingPong) {
        // No pong for a whole interval: the connection is dead. terminate() leads to 'close',
        // and only then do we reconnect, so the old socket is gone first.
        this.logger.warn('comfyui websocket missed a pong; dropping it');
        ws.terminate();
        return;
      }
      this.awaitingPong = true;
      ws.ping();
    }, this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** The old socket has fully closed (its 'close' event); only now is it safe to reconnect. */
  private onSocketClosed(ws: WebSocket, code: number): void {
    if (this.ws === ws) this.ws = undefined;
    this.stopHeartbeat();
    this.currentPromptId = undefined;
    if (this.closedByUs) return;
    this.logger.warn({ code, inFlight: this.runs.size }, 'comfyui websocket closed; reconnecting');
    for (const run of this.runs.values()) {
      run.eventsMayBeLost = true;
      this.schedulePoll(run);
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closedByUs || this.reconnectTimer) return;
    const base = Math.min(
      this.reconnectMaxDelayMs,
      this.reconnectInitialDelayMs * 2 ** this.reconnectAttempt,
    );
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    this.reconnectAttempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closedByUs) return;
      this.connect().then(
        () => {
          this.logger.info({ inFlight: this.runs.size }, 'comfyui websocket reconnected; reconciling runs');
          for (const run of this.runs.values()) void this.reconcile(run);
        },
        (err: unknown) => {
          this.logger.debug({ err, attempt: this.reconnectAttempt }, 'comfyui reconnect failed');
          this.scheduleReconnect();
        },
      );
    }, delay);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.onBinary(data);
      return;
    }
    const event = parseWsEvent(Buffer.isBuffer(data) ? data.toString('utf8') : String(data));
    if (event) this.onEvent(event);
  }

  private onBinary(data: RawData): void {
    const frame = parseBinaryFrame(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    if (frame.kind !== 'preview') {
      if (frame.kind === 'unknown') this.logger.debug({ reason: frame.reason }, 'ignored binary frame');
      return;
    }
    const promptId = frame.metadata?.prompt_id ?? this.currentPromptId;
    const run = promptId ? this.runs.get(promptId) : undefined;
    if (!run?.options.onPreview) return;
    try {
      run.options.onPreview(frame.image, frame.mime);
    } catch (err) {
      this.logger.warn({ err, promptId }, 'onPreview callback threw');
    }
  }

  private onEvent(event: WsEvent): void {
    if (event.type === 'feature_flags') {
      this.serverFeatures = event.data;
      return;
    }
    if (event.type === 'status') return;
    const promptId = event.data.prompt_id;
    if (event.type === 'execution_start' || (event.type === 'executing' && event.data.node !== null)) {
      if (promptId) this.currentPromptId = promptId;
    }
    const run = promptId ? this.runs.get(promptId) : undefined;
    if (!run || run.settled) return;

    switch (event.type) {
      case 'execution_cached':
        for (const node of event.data.nodes) run.cachedNodes.add(node);
        break;
      case 'progress':
        if (run.options.onProgress) {
          try {
            run.options.onProgress(event.data.value, event.data.max, event.data.node ?? undefined);
          } catch (err) {
            this.logger.warn({ err, promptId }, 'onProgress callback threw');
          }
        }
        break;
      case 'execution_success':
        void this.finishFromHistory(run);
        break;
      case 'executing':
        // {node:null} comes after history is written: a good moment to look again if we are waiting.
        break;
      case 'execution_error':
        this.settle(run, { error: executionErrorFrom(event.data) });
        break;
      case 'execution_interrupted':
        this.settle(run, { error: interruptedErrorFrom(event.data) });
        break;
      default:
        break;
    }
  }

  /** Close the socket and stop reconnecting. Runs still in flight are rejected. */
  async close(): Promise<void> {
    this.closedByUs = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopHeartbeat();
    for (const run of [...this.runs.values()]) {
      this.settle(run, {
        error: new UpstreamError(
          'comfyui',
          'The connection to the GPU box was closed before the render finished.',
          {
            operatorMessage: `ComfyClient closed with prompt ${run.promptId} in flight`,
          },
        ),
      });
    }
    const ws = this.ws;
    this.ws = undefined;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close();
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1_000).unref();
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Running prompts
  // -------------------------------------------------------------------------------------------

  /** POST /prompt with our client_id and a prompt_id we chose. */
  async submit(graph: ApiGraph, options: { promptId?: string; front?: boolean } = {}): Promise<SubmitResult> {
    const promptId = options.promptId ?? randomUUID();
    if (!CANONICAL_UUID.test(promptId)) {
      throw new InputError('Internal error: a render id was malformed.', {
        operatorMessage: `prompt_id must be a canonical lowercase UUID, got ${promptId}`,
      });
    }
    const body: Record<string, unknown> = { prompt: graph, client_id: this.clientId, prompt_id: promptId };
    if (options.front) body.front = true;
    const res = await this.request('POST', '/prompt', { json: body });
    const json = await this.readJson(res, 'POST /prompt');
    if (res.status === 400) {
      const rejected = promptRejectedSchema.safeParse(json);
      if (!rejected.success) {
        throw new UpstreamError('comfyui', 'ComfyUI refused the workflow with an unreadable answer.', {
          operatorMessage: `POST /prompt 400: ${JSON.stringify(json).slice(0, 500)}`,
          retryable: false,
        });
      }
      const error = rejected.data.error;
      const [type, message, details] =
        typeof error === 'string' ? ['error', error, ''] : [error.type, error.message, error.details];
      throw new ComfyValidationError(type, message, toNodeErrors(rejected.data.node_errors), details);
    }
    if (!res.ok) throw this.httpError('POST /prompt', res.status, json);
    const accepted = this.parse(promptAcceptedSchema, json, 'POST /prompt');
    return {
      promptId: accepted.prompt_id,
      number: accepted.number,
      nodeErrors: toNodeErrors(accepted.node_errors),
    };
  }

  /** Submit a graph and follow it to its end. Settles exactly once. */
  async run(graph: ApiGraph, options: RunOptions = {}): Promise<RunResult> {
    if (options.signal?.aborted)
      throw new ComfyInterruptedError(options.promptId ?? '', 'The render was cancelled.');
    await this.connect();
    const promptId = options.promptId ?? randomUUID();
    if (this.runs.has(promptId)) throw new InputError(`Render ${promptId} is already running.`);

    let resolve!: (r: RunResult) => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<RunResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // ComfyUI can report an error before our POST /prompt has been answered; the rejection is
    // observed below, once the submission returns, so it must not count as unhandled meanwhile.
    done.catch(() => {});
    const run: RunTracker = {
      promptId,
      startedAtLocal: Date.now(),
      submitted: false,
      settled: false,
      finishing: false,
      eventsMayBeLost: false,
      cachedNodes: new Set(),
      options,
      pollTimer: undefined,
      resolve,
      reject,
    };
    // Registered before the POST: events for this id that beat the response are handled.
    this.runs.set(promptId, run);

    const onAbort = () => {
      if (run.settled) return;
      this.settle(run, { error: new ComfyInterruptedError(promptId, 'The render was cancelled.') });
      void this.cancelOnServer(promptId);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    try {
      await this.submit(graph, { promptId, front: options.front });
      run.submitted = true;
      this.schedulePoll(run);
    } catch (err) {
      this.settle(run, { error: err });
    }
    try {
      return await done;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async cancelOnServer(promptId: string): Promise<void> {
    try {
      await this.deleteFromQueue([promptId]);
      await this.interrupt(promptId);
    } catch (err) {
      this.logger.warn({ err, promptId }, 'could not cancel the prompt on ComfyUI');
    }
  }

  private settle(run: RunTracker, outcome: { result: RunResult } | { error: unknown }): void {
    if (run.settled) return;
    run.settled = true;
    if (run.pollTimer) clearTimeout(run.pollTimer);
    run.pollTimer = undefined;
    this.runs.delete(run.promptId);
    if ('result' in outcome) run.resolve(outcome.result);
    else run.reject(outcome.error);
  }

  private schedulePoll(run: RunTracker): void {
    if (run.settled || !run.submitted) return;
    if (run.pollTimer) clearTimeout(run.pollTimer);
    const interval = run.eventsMayBeLost ? this.recoveryPollIntervalMs : this.pollIntervalMs;
    run.pollTimer = setTimeout(() => {
      run.pollTimer = undefined;
      void this.reconcile(run).finally(() => this.schedulePoll(run));
    }, interval);
  }

  /**
   * Where is this prompt? /queue first, then /history: a prompt leaves the queue and enters history
   * atomically on the server, so "not in the queue, then not in history" means it is gone.
   */
  private async reconcile(run: RunTracker): Promise<void> {
    if (run.settled || run.finishing || !run.submitted) return;
    let queue: QueueState;
    let entry: HistoryEntry | undefined;
    try {
      queue = await this.getQueue();
      if (run.settled || run.finishing) return;
      const inQueue = [...queue.running, ...queue.pending].some((q) => q.promptId === run.promptId);
      if (inQueue) return;
      entry = await this.getHistory(run.promptId);
    } catch (err) {
      // Unreachable for now: the reconnect loop and the next poll will try again.
      this.logger.debug({ err, promptId: run.promptId }, 'reconcile could not reach comfyui');
      return;
    }
    if (run.settled || run.finishing) return;
    if (entry) {
      run.finishing = true;
      await this.settleFromHistory(run, entry);
      // The socket looked open but never told us this run ended: the server may have dropped our
      // sid (a stale handler's cleanup, ComfyUI #16010). A fresh socket heals it for later runs.
      if (this.ws?.readyState === WebSocket.OPEN) {
        this.logger.warn({ promptId: run.promptId }, 'run finished without events; reopening the websocket');
        this.ws.terminate();
      }
      return;
    }
    this.logger.warn({ promptId: run.promptId }, 'prompt vanished from the comfyui queue and history');
    this.settle(run, { error: new ComfyPromptLostError(run.promptId, 'in neither /queue nor /history') });
  }

  /** After execution_success: the history entry may not exist yet; poll with a short backoff. */
  private async finishFromHistory(run: RunTracker): Promise<void> {
    if (run.finishing || run.settled) return;
    run.finishing = true;
    const deadline = Date.now() + this.historyWaitMs;
    let delay = 5;
    for (;;) {
      if (run.settled) return;
      try {
        const entry = await this.getHistory(run.promptId);
        if (entry) {
          await this.settleFromHistory(run, entry);
          return;
        }
      } catch (err) {
        this.logger.debug({ err, promptId: run.promptId }, 'history not readable yet');
      }
      if (Date.now() > deadline) {
        this.settle(run, {
          error: new ComfyPromptLostError(
            run.promptId,
            `no history entry ${this.historyWaitMs} ms after execution_success`,
          ),
        });
        return;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
  }

  private async settleFromHistory(run: RunTracker, entry: HistoryEntry): Promise<void> {
    const messages = entry.status?.messages ?? [];
    for (const [type, data] of messages) {
      if (type === 'execution_cached' && Array.isArray(data.nodes)) {
        for (const n of data.nodes) run.cachedNodes.add(String(n));
      }
    }
    if (entry.status && entry.status.status_str !== 'success') {
      const errorMessage = messages.find(([type]) => type === 'execution_error');
      const interrupted = messages.find(([type]) => type === 'execution_interrupted');
      let error: unknown;
      if (errorMessage) {
        error = executionErrorFrom({
          exception_type: '',
          exception_message: '',
          ...errorMessage[1],
          prompt_id: run.promptId,
        } as ExecutionErrorData);
      } else if (interrupted) {
        error = interruptedErrorFrom({
          ...interrupted[1],
          prompt_id: run.promptId,
        } as ExecutionInterruptedData);
      } else {
        error = new ComfyExecutionError({
          prompt_id: run.promptId,
          exception_type: entry.status.status_str,
          exception_message: 'ComfyUI reported the prompt as failed without details',
        });
      }
      this.settle(run, { error });
      return;
    }

    const refs: { nodeId: string; ref: ImageRef }[] = [];
    const outputNodes = Object.keys(entry.outputs).sort((a, b) =>
      a.localeCompare(b, 'en', { numeric: true }),
    );
    for (const nodeId of outputNodes) {
      for (const ref of entry.outputs[nodeId]?.images ?? []) refs.push({ nodeId, ref });
    }
    let images: OutputImage[];
    try {
      images = await Promise.all(
        refs.map(async ({ nodeId, ref }) => ({
          nodeId,
          filename: ref.filename,
          subfolder: ref.subfolder,
          type: ref.type,
          data: await this.fetchImage(ref),
        })),
      );
    } catch (err) {
      this.settle(run, { error: err });
      return;
    }
    const start = timestampOf(messages, 'execution_start');
    const end = timestampOf(messages, 'execution_success');
    this.settle(run, {
      result: {
        promptId: run.promptId,
        images,
        cached: outputNodes.length > 0 && outputNodes.every((n) => run.cachedNodes.has(n)),
        timings: {
          totalMs: Date.now() - run.startedAtLocal,
          executionMs: start !== undefined && end !== undefined ? end - start : undefined,
        },
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // HTTP endpoints
  // -------------------------------------------------------------------------------------------

  /** GET /view: the bytes of one output (or input/temp) image. */
  async fetchImage(ref: { filename: string; subfolder?: string; type?: string }): Promise<Buffer> {
    const query = new URLSearchParams({
      filename: ref.filename,
      subfolder: ref.subfolder ?? '',
      type: ref.type ?? 'output',
    });
    const res = await this.request('GET', `/view?${query.toString()}`);
    if (!res.ok)
      throw this.httpError(`GET /view ${ref.subfolder ?? ''}/${ref.filename}`, res.status, await res.text());
    return Buffer.from(await res.arrayBuffer());
  }

  /** POST /upload/image. Always use the returned name: ComfyUI renames on collision. */
  async uploadImage(
    data: Buffer | Uint8Array,
    name: string,
    options: { subfolder?: string; overwrite?: boolean; type?: 'input' | 'temp' | 'output' } = {},
  ): Promise<UploadResponse> {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(data)]), name);
    if (options.subfolder) form.append('subfolder', options.subfolder);
    if (options.overwrite) form.append('overwrite', 'true');
    if (options.type) form.append('type', options.type);
    const res = await this.request('POST', '/upload/image', { form });
    const json = await this.readJson(res, 'POST /upload/image');
    if (!res.ok) throw this.httpError('POST /upload/image', res.status, json);
    return this.parse(uploadResponseSchema, json, 'POST /upload/image');
  }

  /** POST /interrupt {prompt_id}: only interrupts if that prompt is the one running. */
  async interrupt(promptId?: string): Promise<void> {
    const res = await this.request('POST', '/interrupt', { json: promptId ? { prompt_id: promptId } : {} });
    if (!res.ok) throw this.httpError('POST /interrupt', res.status, await res.text());
  }

  async getQueue(): Promise<QueueState> {
    const json = await this.getJson('/queue');
    const parsed = this.parse(queueSchema, json, 'GET /queue');
    const item = (q: unknown[]): QueuedPrompt => ({ number: Number(q[0]), promptId: String(q[1]) });
    return { running: parsed.queue_running.map(item), pending: parsed.queue_pending.map(item) };
  }

  /** POST /queue {delete}: removes pending prompts only. */
  async deleteFromQueue(promptIds: string[]): Promise<void> {
    const res = await this.request('POST', '/queue', { json: { delete: promptIds } });
    if (!res.ok) throw this.httpError('POST /queue', res.status, await res.text());
  }

  /** The history entry, or undefined while the prompt is unknown or not finished. */
  async getHistory(promptId: string): Promise<HistoryEntry | undefined> {
    const json = await this.getJson(`/history/${encodeURIComponent(promptId)}`);
    return this.parse(historySchema, json, 'GET /history')[promptId];
  }

  /** POST /free: applied by ComfyUI between prompts. */
  async free(options: { unloadModels?: boolean; freeMemory?: boolean }): Promise<void> {
    const res = await this.request('POST', '/free', {
      json: { unload_models: options.unloadModels ?? false, free_memory: options.freeMemory ?? false },
    });
    if (!res.ok) throw this.httpError('POST /free', res.status, await res.text());
  }

  /** GET /object_info, raw; src/gpu/object-info.ts interprets it. */
  async getObjectInfo(): Promise<Record<string, unknown>> {
    const json = await this.getJson('/object_info');
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new UpstreamError('comfyui', 'ComfyUI sent an unreadable node list.', {
        operatorMessage: 'GET /object_info is not an object',
      });
    }
    return json as Record<string, unknown>;
  }

  async getSystemStats(): Promise<SystemStats> {
    const stats = this.parse(systemStatsSchema, await this.getJson('/system_stats'), 'GET /system_stats');
    const devices = stats.devices.map((d) => ({
      name: gpuNameFromDevice(d.name),
      type: d.type,
      vramTotal: d.vram_total,
      vramFree: d.vram_free,
    }));
    const gpu = devices.find((d) => d.type !== 'cpu') ?? devices[0];
    return {
      gpuName: gpu?.name,
      vramTotal: gpu?.vramTotal,
      vramFree: gpu?.vramFree,
      comfyuiVersion: stats.system?.comfyui_version,
      devices,
    };
  }

  /** GET /models/{folder}: relative paths with forward slashes (ComfyUI on Windows sends backslashes). */
  async getModels(folder: string): Promise<string[]> {
    const list = this.parse(
      modelListSchema,
      await this.getJson(`/models/${encodeURIComponent(folder)}`),
      `GET /models/${folder}`,
    );
    return list.map((p) => p.replaceAll('\\', '/'));
  }

  /** GET /prompt: prompts pending plus running. */
  async queueRemaining(): Promise<number> {
    return this.parse(promptInfoSchema, await this.getJson('/prompt'), 'GET /prompt').exec_info
      .queue_remaining;
  }

  // -------------------------------------------------------------------------------------------
  // HTTP plumbing
  // -------------------------------------------------------------------------------------------

  private async request(
    method: 'GET' | 'POST',
    path: string,
    body: { json?: unknown; form?: FormData } = {},
  ): Promise<Response> {
    const init: RequestInit = { method, signal: AbortSignal.timeout(this.requestTimeoutMs) };
    if (body.json !== undefined) {
      init.body = JSON.stringify(body.json);
      init.headers = { 'content-type': 'application/json' };
    } else if (body.form) {
      init.body = body.form;
    }
    try {
      return await fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      throw this.unreachable(err, `${method} ${path.split('?')[0]}`);
    }
  }

  private async getJson(path: string): Promise<unknown> {
    const res = await this.request('GET', path);
    const json = await this.readJson(res, `GET ${path}`);
    if (!res.ok) throw this.httpError(`GET ${path}`, res.status, json);
    return json;
  }

  private async readJson(res: Response, what: string): Promise<unknown> {
    const text = await res.text();
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      if (!res.ok) return text;
      throw new UpstreamError('comfyui', 'ComfyUI sent an answer we could not read.', {
        operatorMessage: `${what}: not JSON: ${text.slice(0, 200)}`,
      });
    }
  }

  private parse<T extends z.ZodType>(schema: T, json: unknown, what: string): z.infer<T> {
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new UpstreamError('comfyui', 'ComfyUI sent an answer we could not read.', {
        operatorMessage: `${what}: unexpected shape: ${parsed.error.message}`,
        retryable: false,
      });
    }
    return parsed.data;
  }

  private httpError(what: string, status: number, body: unknown): UpstreamError {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return new UpstreamError('comfyui', `The GPU box (ComfyUI) answered with an error (HTTP ${status}).`, {
      operatorMessage: `${what} → HTTP ${status}: ${(text ?? '').slice(0, 500)}`,
      retryable: status >= 500 || status === 429,
    });
  }

  private unreachable(err: unknown, what: string): UpstreamError {
    const cause = (err as { cause?: { code?: string } } | undefined)?.cause;
    const code = cause?.code ?? (err as { code?: string } | undefined)?.code;
    const timedOut = (err as { name?: string } | undefined)?.name === 'TimeoutError';
    return new UpstreamError(
      'comfyui',
      timedOut
        ? 'The GPU box (ComfyUI) did not answer in time; the render will be retried.'
        : 'The GPU box (ComfyUI) is not reachable right now; the render will be retried.',
      {
        cause: err,
        operatorMessage: `${what} ${this.baseUrl}: ${timedOut ? 'timed out' : (code ?? String(err))}`,
        retryable: true,
      },
    );
  }
}

function executionErrorFrom(data: ExecutionErrorData): ComfyExecutionError {
  return isOutOfMemory(data) ? new ComfyOutOfMemoryError(data) : new ComfyExecutionError(data);
}

function interruptedErrorFrom(data: ExecutionInterruptedData): ComfyInterruptedError {
  return new ComfyInterruptedError(
    data.prompt_id,
    'The render was interrupted.',
    data.node_type ?? undefined,
  );
}

function timestampOf(messages: [string, Record<string, unknown>][], type: string): number | undefined {
  const found = messages.find(([t]) => t === type)?.[1].timestamp;
  return typeof found === 'number' ? found : undefined;
}
