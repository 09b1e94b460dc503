/**
 * PanelRenderer over a real ComfyUI: recipe → graph → checked against the server's /object_info →
 * missing LoRAs installed from the artifact store → run with progress and previews → PNGs with the
 * recipe embedded.
 *
 * Start-up reads /object_info and /system_stats once and caches them; they are read again after a
 * LoRA is installed and after ComfyUI comes back from a restart. If ComfyUI is down at start-up the
 * renderer still starts (reported offline); the first render tries again.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RenderRecipe } from '../comic/recipe.ts';
import type { AppConfig } from '../config/env.ts';
import { UpstreamError, userMessageOf } from '../errors.ts';
import { log } from '../log.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';
import { createArtifactStore } from '../store/local-store.ts';
import type { ApiGraph as ProtocolGraph } from './comfy-protocol.ts';
import {
  ComfyClient,
  ComfyPromptLostError,
  type ComfyClientOptions,
  type SystemStats,
} from './comfy-client.ts';
import { installLora } from './lora-installer.ts';
import {
  capabilitiesFrom,
  ipAdapterNodeOf,
  parseObjectInfo,
  validateWorkflow,
  WorkflowInvalidError,
  type ComfyCapabilities,
  type ObjectInfo,
} from './object-info.ts';
import { embedRecipe } from './png-metadata.ts';
import type { PanelRenderer, RenderedImage, RenderProgress } from './renderer.ts';
import { buildWorkflow } from './workflow.ts';

export interface ComfyRendererDeps {
  store?: ArtifactStore;
  logger?: Logger;
  /** Shown in messages ("not installed on runner gpu-1"); RUNNER_ID, else the host name. */
  runnerId?: string;
  /** Client tuning (tests and benchmarks shorten the polls). */
  client?: Partial<Omit<ComfyClientOptions, 'baseUrl' | 'logger'>>;
  /** How many times a prompt ComfyUI lost (restart) is submitted again before the job's own retry. */
  lostPromptRetries?: number;
}

/** What the runner's presence heartbeat reports about this ComfyUI. */
export interface ComfySnapshot {
  online: boolean;
  offlineReason: string | null;
  gpu: string | null;
  vramTotal: number | null;
  vramFree: number | null;
  checkpoints: string[];
  loras: string[];
}

const GIB = 1024 ** 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** PNG width and height from the IHDR chunk, without decoding the image. */
function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.toString('latin1', 12, 16) !== 'IHDR') return { width: 0, height: 0 };
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

export class ComfyRenderer implements PanelRenderer {
  readonly kind = 'comfyui' as const;
  readonly runnerId: string;
  private readonly logger: Logger;
  private objectInfo: ObjectInfo | undefined;
  private capabilities: ComfyCapabilities | undefined;
  private stats: SystemStats | undefined;
  private offlineReason: string | null = null;
  /** One install per LoRA name at a time, shared by concurrent renders. */
  private readonly installing = new Map<string, Promise<void>>();

  private constructor(
    readonly client: ComfyClient,
    private readonly baseUrl: string,
    private readonly store: ArtifactStore,
    private readonly loraDir: string | undefined,
    deps: ComfyRendererDeps,
    private readonly lostPromptRetries: number,
  ) {
    this.runnerId = deps.runnerId ?? 'gpu-1';
    this.logger = (deps.logger ?? log()).child({ component: 'comfy-renderer', runner: this.runnerId });
  }

  static async connect(
    config: Pick<AppConfig, 'COMFYUI_URL' | 'COMFYUI_LORA_DIR' | 'RUNNER_ID' | 'dataDir'>,
    deps: ComfyRendererDeps = {},
  ): Promise<ComfyRenderer> {
    if (!config.COMFYUI_URL) throw new Error('ComfyRenderer needs COMFYUI_URL');
    const logger = deps.logger ?? log();
    const client = new ComfyClient({ baseUrl: config.COMFYUI_URL, logger, ...deps.client });
    const renderer = new ComfyRenderer(
      client,
      config.COMFYUI_URL.replace(/\/+$/, ''),
      deps.store ?? createArtifactStore(config),
      config.COMFYUI_LORA_DIR,
      { ...deps, runnerId: deps.runnerId ?? config.RUNNER_ID },
      deps.lostPromptRetries ?? 3,
    );
    try {
      await client.connect();
      await renderer.refresh();
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      renderer.markOffline(err);
      renderer.logger.warn(
        { err },
        'ComfyUI is not reachable at start-up; will try again on the first render',
      );
    }
    return renderer;
  }

  describe(): string {
    const gpu = this.stats?.gpuName;
    if (!gpu) return `ComfyUI at ${this.baseUrl}`;
    const vram = this.stats?.vramTotal ? `, ${Math.round(this.stats.vramTotal / GIB)} GB` : '';
    return `ComfyUI at ${this.baseUrl} (${gpu}${vram})`;
  }

  get online(): boolean {
    return this.offlineReason === null;
  }

  /** Read /object_info and /system_stats again (after installing a LoRA, or after a restart). */
  async refresh(): Promise<void> {
    const [raw, stats] = await Promise.all([this.client.getObjectInfo(), this.client.getSystemStats()]);
    this.objectInfo = parseObjectInfo(raw);
    this.capabilities = capabilitiesFrom(this.objectInfo);
    this.stats = stats;
    this.markOnline();
  }

  /** For the presence heartbeat: a fresh /system_stats (VRAM free), cached model lists. */
  async snapshot(): Promise<ComfySnapshot> {
    try {
      if (!this.objectInfo) await this.refresh();
      else {
        this.stats = await this.client.getSystemStats();
        this.markOnline();
      }
    } catch (err) {
      this.markOffline(err);
    }
    return {
      online: this.online,
      offlineReason: this.offlineReason,
      gpu: this.stats?.gpuName ?? null,
      vramTotal: this.stats?.vramTotal ?? null,
      vramFree: this.stats?.vramFree ?? null,
      checkpoints: this.capabilities ? [...this.capabilities.checkpoints, ...this.capabilities.unets] : [],
      loras: this.capabilities?.loras ?? [],
    };
  }

  async render(
    recipe: RenderRecipe,
    options: { onProgress?: (p: RenderProgress) => void; signal?: AbortSignal } = {},
  ): Promise<RenderedImage[]> {
    try {
      const { graph, referencesApplied } = await this.prepare(recipe);
      const result = await this.runWithLostRetry(graph, options);
      this.markOnline();
      // The embedded copy says whether the character references were used (see RenderRecipe).
      const embedded = recipe.references?.length ? { ...recipe, referencesApplied } : recipe;
      return result.images.map((image) => {
        const png = embedRecipe(image.data, embedded);
        return { png, ...pngSize(png) };
      });
    } catch (err) {
      if (err instanceof UpstreamError && err.retryable && !(err instanceof ComfyPromptLostError))
        this.markOffline(err);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  // -------------------------------------------------------------------------------------------

  private markOnline(): void {
    if (this.offlineReason !== null) this.logger.info('ComfyUI is reachable again');
    this.offlineReason = null;
  }

  private markOffline(err: unknown): void {
    this.offlineReason = userMessageOf(err);
  }

  /** Build the graph and make it acceptable to this ComfyUI, installing missing LoRAs on the way. */
  private async prepare(
    recipe: RenderRecipe,
  ): Promise<{ graph: ReturnType<typeof buildWorkflow>; referencesApplied: boolean }> {
    if (!this.objectInfo) await this.refresh();
    const controlImageName = recipe.controlNet
      ? await this.uploadControlImage(recipe.controlNet.imageKey)
      : undefined;
    // Character references: FLUX.2 graphs take them natively; SDXL-family graphs need the IPAdapter
    // node pack. Without it the panel is drawn from text and LoRAs, and the embedded recipe says so.
    const references = recipe.references ?? [];
    const ipAdapterNode =
      recipe.models.kind === 'checkpoint'
        ? ipAdapterNodeOf(new Set(Object.keys(this.objectInfoOrThrow())))
        : null;
    const useReferences = references.length > 0 && (recipe.models.kind === 'flux2' || ipAdapterNode !== null);
    if (references.length > 0 && !useReferences) {
      this.logger.warn(
        { comicId: recipe.panel.comicId, page: recipe.panel.page, panel: recipe.panel.panel },
        'ComfyUI has no IPAdapter node pack (ComfyUI_IPAdapter_plus): drawing this panel from text and LoRAs only',
      );
    }
    const referenceImageNames = useReferences
      ? await Promise.all(references.map((ref) => this.uploadControlImage(ref.imageKey)))
      : undefined;
    const { comicId, page, panel, attempt } = recipe.panel;
    const pad = (n: number) => String(n).padStart(2, '0');
    const graph = buildWorkflow(recipe, {
      filenamePrefix: `comicmaster/${comicId}/p${pad(page)}-${pad(panel)}-a${attempt}`,
      ...(controlImageName ? { controlImageName } : {}),
      ...(referenceImageNames ? { referenceImageNames } : {}),
      ...(ipAdapterNode && useReferences ? { ipAdapterNode } : {}),
    });

    let problems = validateWorkflow(graph, this.objectInfoOrThrow(), this.runnerId);
    const missing = problems.filter((p) => p.code === 'not_installed' && p.input === 'lora_name');
    const installable = missing
      .map((p) => recipe.loras.find((l) => l.name === graph[p.nodeId]?.inputs.lora_name))
      .filter((l): l is RenderRecipe['loras'][number] => l !== undefined && l.artifactKey !== null);
    if (installable.length > 0 && this.loraDir) {
      await Promise.all(installable.map((lora) => this.install(lora)));
      await this.refresh();
      problems = validateWorkflow(graph, this.objectInfoOrThrow(), this.runnerId);
    }
    if (problems.length > 0) throw new WorkflowInvalidError(this.runnerId, problems);
    return { graph, referencesApplied: useReferences };
  }

  private objectInfoOrThrow(): ObjectInfo {
    if (!this.objectInfo)
      throw new UpstreamError(
        'comfyui',
        'The GPU box (ComfyUI) is not reachable right now; the render will be retried.',
      );
    return this.objectInfo;
  }

  private install(lora: RenderRecipe['loras'][number]): Promise<void> {
    const loraDir = this.loraDir;
    if (!loraDir) return Promise.resolve();
    let pending = this.installing.get(lora.name);
    if (!pending) {
      pending = installLora(this.store, loraDir, lora, this.logger)
        .then(() => undefined)
        .finally(() => this.installing.delete(lora.name));
      this.installing.set(lora.name, pending);
    }
    return pending;
  }

  /** Upload a control or reference image; ComfyUI dedupes same-content uploads, and renames on a clash. */
  private async uploadControlImage(key: string): Promise<string> {
    const data = await this.store.getBuffer(key);
    const name = `${createHash('sha256').update(data).digest('hex').slice(0, 24)}.png`;
    const uploaded = await this.client.uploadImage(data, name, { subfolder: 'comicmaster' });
    return uploaded.subfolder ? `${uploaded.subfolder}/${uploaded.name}` : uploaded.name;
  }

  /**
   * ComfyUI restarting loses its queue. A lost prompt is submitted again (with a new prompt id) once
   * ComfyUI answers, a few times, before the error goes to the job's own retry and backoff.
   */
  private async runWithLostRetry(
    graph: ReturnType<typeof buildWorkflow>,
    options: { onProgress?: (p: RenderProgress) => void; signal?: AbortSignal },
  ) {
    let last = { step: 0, of: 0 };
    for (let attempt = 0; ; attempt++) {
      try {
        // The builder's node type is the protocol's node without its passthrough index signature.
        return await this.client.run(graph as ProtocolGraph, {
          promptId: randomUUID(),
          signal: options.signal,
          onProgress: (value, max) => {
            last = { step: value, of: max };
            options.onProgress?.({ step: value, of: max });
          },
          onPreview: (data, mime) => options.onProgress?.({ ...last, preview: { data, mime } }),
        });
      } catch (err) {
        if (
          !(err instanceof ComfyPromptLostError) ||
          attempt >= this.lostPromptRetries ||
          options.signal?.aborted
        )
          throw err;
        this.logger.warn(
          { err, attempt: attempt + 1 },
          'ComfyUI lost the prompt (restart?); submitting it again',
        );
        await this.waitUntilReachable(options.signal);
      }
    }
  }

  private async waitUntilReachable(signal?: AbortSignal): Promise<void> {
    let delay = 50;
    for (let i = 0; i < 20 && !signal?.aborted; i++) {
      try {
        await this.refresh();
        return;
      } catch {
        await sleep(delay);
        delay = Math.min(delay * 2, 2_000);
      }
    }
  }
}
