import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { RenderRecipe, type LoraRef } from '../../src/comic/recipe.ts';
import { parseConfig } from '../../src/config/env.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import { runMigrations } from '../../src/db/migrate.ts';
import { panels, renders, trainings } from '../../src/db/schema.ts';
import { runRunner, type RunnerHandle, type RunRunnerOptions } from '../../src/gpu/runner.ts';
import type { QueueConnection } from '../../src/queue/connection.ts';
import type { RenderJob } from '../../src/queue/payloads.ts';
import { JobProducer } from '../../src/queue/producer.ts';
import type { ArtifactStore } from '../../src/store/artifact-store.ts';
import { createArtifactStore } from '../../src/store/local-store.ts';
import { startFakeComfyUI, type FakeComfyUI, type FakeComfyUIOptions } from '../fakes/comfyui.ts';
import { createTestDatabase } from './database.ts';
import { cleanupQueues, testQueueConnection } from './redis.ts';

/**
 * The GPU runner (runRunner) for tests and benches, in the spirit of helpers/bot.ts: a migrated
 * database and a temporary folder per file (openRunnerDatabase), and per test a Redis prefix, a
 * producer, an artifact store, fake ComfyUIs and runners that close() takes down in reverse order.
 * Test files get both through useRunnerHarness; benches call the two directly.
 */

export const silentLogger = pino({ level: 'silent' });

/** A fresh database with the migrations applied, and the temporary folder runners use as DATA_DIR. */
export interface RunnerDatabase {
  /** The PostgreSQL URL, or undefined when the bench fell back to the embedded PGlite. */
  readonly url: string | undefined;
  readonly database: Database;
  readonly dir: string;
  close(): Promise<void>;
}

export async function openRunnerDatabase(
  label: string,
  options: { pgliteFallback?: (error: unknown) => void } = {},
): Promise<RunnerDatabase> {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  try {
    testDb = await createTestDatabase();
  } catch (error) {
    // Only the bench may run without PostgreSQL; tests must fail loudly instead.
    if (!options.pgliteFallback) throw error;
    options.pgliteFallback(error);
  }
  const dir = await mkdtemp(join(tmpdir(), `${label}-`));
  const database = await openDatabase({ databaseUrl: testDb?.url, dataDir: dir });
  const close = async () => {
    await database.close();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await runMigrations(database);
  } catch (error) {
    await close();
    throw error;
  }
  return { url: testDb?.url, database, dir, close };
}

/** One test's queues, store, fakes and runners; close() releases them last acquired, first released. */
export interface RunnerHarness {
  readonly connection: QueueConnection;
  readonly producer: JobProducer;
  readonly store: ArtifactStore;
  /** This test's own folder (the store lives in its `data/`); removed with the database's folder. */
  readonly dir: string;
  readonly storeDir: string;
  /** A fake ComfyUI (no object_info file, so its model lists come from the options), closed by close(). */
  startFakeComfyUI(options?: FakeComfyUIOptions): Promise<FakeComfyUI>;
  /**
   * runRunner with the file's database, DATA_DIR and a silent log, plus this test's connection and
   * store; `env` adds RUNNER_ID, COMFYUI_URL and the like, `options` the file's timings.
   */
  startRunner(env: Record<string, string>, options?: RunRunnerOptions): Promise<RunnerHandle>;
  /** Something else to release on close() (a child process, a proxy…). */
  defer(cleanup: () => unknown): void;
  close(): Promise<void>;
}

export async function startRunnerHarness(
  db: RunnerDatabase,
  label: string,
  options: {
    /**
     * Where the store lives; default this test's own `data/`. A runner in another process, which
     * keeps its store in DATA_DIR, needs the database's folder (db.dir) here.
     */
    storeDir?: string;
  } = {},
): Promise<RunnerHarness> {
  const cleanups: (() => unknown)[] = [];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  };
  const dir = await mkdtemp(join(db.dir, 't-'));
  const storeDir = options.storeDir ?? join(dir, 'data');
  const store = createArtifactStore({ dataDir: storeDir });
  const connection = testQueueConnection(label);
  cleanups.push(() => cleanupQueues(connection));
  const producer = new JobProducer(connection, { logger: silentLogger });
  cleanups.push(() => producer.close());
  return {
    connection,
    producer,
    store,
    dir,
    storeDir,
    async startFakeComfyUI(options = {}) {
      const fake = await startFakeComfyUI({ objectInfoPath: false, ...options });
      cleanups.push(() => fake.close());
      return fake;
    },
    async startRunner(env, options = {}) {
      const config = parseConfig({
        ...(db.url ? { DATABASE_URL: db.url } : {}),
        DATA_DIR: db.dir,
        LOG_LEVEL: 'silent',
        ...env,
      });
      const runner = await runRunner(config, {
        logger: silentLogger,
        handleSignals: false,
        ...options,
        connection,
        store,
      });
      // stop() is safe to call twice, so a runner a test already stopped is fine here.
      cleanups.push(() => runner.stop());
      return runner;
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
    close,
  };
}

/**
 * A test file's hooks: its database is opened before all tests and dropped after them, and the
 * harness a test started with setup() is closed after that test, whatever happened in it.
 */
export function useRunnerHarness(label: string) {
  let db: RunnerDatabase | undefined;
  let harness: RunnerHarness | undefined;
  beforeAll(async () => {
    db = await openRunnerDatabase(`${label}-test`);
  }, 60_000);
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });
  afterAll(async () => {
    await db?.close();
  });
  const context = {
    get db(): RunnerDatabase {
      if (!db) throw new Error('the runner test database is not open');
      return db;
    },
    async setup(): Promise<RunnerHarness> {
      harness = await startRunnerHarness(context.db, label);
      return harness;
    },
  };
  return context;
}

/** An SDXL-family (Illustrious checkpoint) recipe for one panel; the rest is what every runner test draws. */
export function checkpointRecipe(o: {
  comicId: string;
  panel: number;
  seed: number;
  steps: number;
  checkpoint?: string;
  negative?: string;
  height?: number;
  loras?: LoraRef[];
}): RenderRecipe {
  return RenderRecipe.parse({
    version: 1,
    family: 'illustrious',
    vPrediction: false,
    models: { kind: 'checkpoint', checkpoint: o.checkpoint ?? 'illustriousXL_v01.safetensors' },
    positive: 'masterpiece, 1girl, rooftop, night',
    negative: o.negative ?? 'lowres',
    loras: o.loras ?? [],
    width: 256,
    height: o.height ?? 256,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: o.steps,
    cfg: 5.5,
    guidance: null,
    seed: o.seed,
    candidates: 1,
    controlNet: null,
    panel: panelBrief(o.comicId, o.panel),
  });
}

/** The recipe's panel brief for panel `panel` of page 1, attempt 0. */
export function panelBrief(comicId: string, panel: number) {
  return {
    comicId,
    page: 1,
    panel,
    attempt: 0,
    shot: 'wide',
    angle: 'eye',
    setting: 'rooftop',
    action: 'stands',
    characters: [],
  };
}

/** A panel row with a plain script panel (the page row must exist). */
export async function insertPanel(
  db: Database['db'],
  at: { comicId: string; pageNumber: number; panelNumber: number },
) {
  const [panel] = await db
    .insert(panels)
    .values({
      ...at,
      scriptPanel: {
        shot: 'wide',
        angle: 'eye-level',
        setting: 'rooftop',
        time: 'night',
        lighting: 'neon',
        action: 'stands',
        characters: [],
        balloons: [],
        caption: null,
        sfx: null,
      },
    })
    .returning();
  return panel!;
}

/** A queued render row for a panel, and the render job that asks for it. */
export async function insertRender(
  db: Database['db'],
  panelId: string,
  job: Omit<RenderJob, 'renderId'>,
): Promise<RenderJob> {
  const [row] = await db
    .insert(renders)
    .values({ panelId, attempt: job.attempt, recipe: job.recipe })
    .returning();
  return { renderId: row!.id, ...job };
}

export async function renderRow(database: Database, id: string) {
  const [row] = await database.db.select().from(renders).where(eq(renders.id, id));
  return row!;
}

/**
 * A queued style training's row, as /train leaves it before the dataset is stored; the caller puts
 * the dataset under `trainings/<id>/dataset` and sets datasetKey.
 */
export async function insertQueuedTraining(
  db: Database['db'],
  o: {
    config: Record<string, unknown>;
    base?: 'illustrious' | 'noobai' | 'flux';
    datasetKey?: string;
  },
): Promise<string> {
  const [row] = await db
    .insert(trainings)
    .values({
      guildId: '1',
      channelId: '2',
      userId: '3',
      kind: 'style',
      name: 'Ink',
      trigger: 'ohwx',
      modelFamily: o.base ?? 'illustrious',
      baseModel: o.base === 'flux' ? 'black-forest-labs/FLUX.1-dev' : 'illustriousXL_v01.safetensors',
      config: o.config,
      status: 'queued',
      ...(o.datasetKey === undefined ? {} : { datasetKey: o.datasetKey }),
    })
    .returning();
  if (!row) throw new Error('no row');
  return row.id;
}
