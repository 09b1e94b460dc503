import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComicScript, Panel as ScriptPanel } from '../src/agents/script-schema.ts';
import type { RenderRecipe } from '../src/comic/recipe.ts';
import { type Database, type Db, openDatabase } from '../src/db/client.ts';
import {
  comicsInFlight,
  createComic,
  createComicWithinLimits,
  getComic,
  setComicScript,
  setComicStatus,
} from '../src/db/comics.ts';
import { getGuildSettings, updateGuildSettings } from '../src/db/guild-settings.ts';
import { MIGRATIONS_FOLDER, runMigrations } from '../src/db/migrate.ts';
import {
  characters,
  checkpoints,
  comics,
  guildSettings,
  pages,
  panels,
  renders,
  styles,
  trainings,
  votes,
} from '../src/db/schema.ts';
import {
  createRender,
  failRender,
  finishRender,
  markRenderRunning,
  requestReroll,
} from '../src/db/renders.ts';
import { castVote, tally } from '../src/db/votes.ts';
import { InputError } from '../src/errors.ts';
import { createTestDatabase } from './helpers/database.ts';

const GUILD = '123456789012345678';
const CHANNEL = '223456789012345678';
const USER = '323456789012345678';

async function migrationsInJournal(): Promise<number> {
  const journal = JSON.parse(await readFile(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as {
    entries: unknown[];
  };
  return journal.entries.length;
}

const scriptPanel: ScriptPanel = {
  shot: 'medium',
  angle: 'eye-level',
  setting: 'a rainy rooftop at night',
  time: 'night',
  lighting: 'neon',
  action: 'Mira looks over the city',
  characters: [{ name: 'Mira', pose: 'leaning on the rail', expression: 'thoughtful', position: 'centre' }],
  balloons: [{ speaker: 'Mira', text: 'The city never sleeps.', kind: 'speech' }],
  caption: null,
  sfx: null,
};

const script: ComicScript = {
  title: 'Rooftops',
  logline: 'Mira watches the city.',
  cast: [{ name: 'Mira', role: 'courier', appearance: ['short black hair', 'red jacket'] }],
  pages: [{ panels: [scriptPanel] }],
};

function recipe(seed: number): RenderRecipe {
  return {
    version: 1,
    family: 'illustrious',
    vPrediction: false,
    models: { kind: 'checkpoint', checkpoint: 'illustrious-xl.safetensors' },
    positive: 'masterpiece, 1girl, short black hair, red jacket, rooftop, night, neon',
    negative: 'lowres, bad anatomy',
    loras: [],
    width: 1024,
    height: 1024,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: 28,
    cfg: 5.5,
    guidance: null,
    seed,
    candidates: 1,
    controlNet: null,
    panel: {
      comicId: 'c',
      page: 1,
      panel: 1,
      attempt: 0,
      shot: 'medium',
      angle: 'eye-level',
      setting: 'rooftop',
      action: 'looks',
      characters: [{ name: 'Mira', position: 'centre' }],
    },
  };
}

const options = { pages: 1, panelsPerPage: 1, style: null, modelFamily: 'illustrious', rtl: false } as const;

/** Writes one row into every table through the flows' own paths, then reads each back. */
async function roundTripEveryTable(db: Db): Promise<void> {
  const settings = await updateGuildSettings(db, GUILD, {
    maxInFlightPerUser: 2,
    testPrompts: ['a cat on a wall'],
  });
  expect(settings).toMatchObject({
    guildId: GUILD,
    maxInFlightPerUser: 2,
    maxInFlightPerGuild: 3,
    testPrompts: ['a cat on a wall'],
  });
  expect((await getGuildSettings(db, GUILD)).testPrompts).toEqual(['a cat on a wall']);

  const comic = await createComic(db, {
    guildId: GUILD,
    channelId: CHANNEL,
    userId: USER,
    prompt: 'Mira on the rooftops',
    options,
  });
  await setComicScript(db, comic.id, script, 'template');
  const [page] = await db
    .insert(pages)
    .values({ comicId: comic.id, number: 1, layout: { template: 'single' } })
    .returning();
  const [panel] = await db
    .insert(panels)
    .values({
      comicId: comic.id,
      pageNumber: 1,
      panelNumber: 1,
      scriptPanel,
      discordMessageId: '423456789012345678',
    })
    .returning();
  const [render] = await db
    .insert(renders)
    .values({ panelId: panel!.id, attempt: 0, recipe: recipe(42) })
    .returning();
  await db.update(panels).set({ currentRenderId: render!.id }).where(eq(panels.id, panel!.id));

  const stored = await getComic(db, comic.id);
  expect(stored?.script?.title).toBe('Rooftops');
  expect(stored?.writer).toBe('template');
  expect(stored?.options).toEqual(options);
  expect(stored?.status).toBe('scripting');
  expect((await db.select().from(pages).where(eq(pages.id, page!.id)))[0]?.layout).toEqual({
    template: 'single',
  });
  const [readPanel] = await db.select().from(panels).where(eq(panels.discordMessageId, '423456789012345678'));
  expect(readPanel?.scriptPanel).toEqual(scriptPanel);
  expect(readPanel?.currentRenderId).toBe(render!.id);
  const [readRender] = await db.select().from(renders).where(eq(renders.id, render!.id));
  expect(readRender?.recipe).toEqual(recipe(42));
  expect(readRender?.status).toBe('queued');
  expect(readRender?.queuedAt).toBeInstanceOf(Date);

  await db
    .insert(characters)
    .values({ guildId: GUILD, name: 'Mira', appearance: ['short black hair'], ownerId: USER });
  expect((await db.select().from(characters).where(eq(characters.guildId, GUILD)))[0]?.appearance).toEqual([
    'short black hair',
  ]);

  const [training] = await db
    .insert(trainings)
    .values({
      guildId: GUILD,
      channelId: CHANNEL,
      userId: USER,
      kind: 'style',
      name: 'inkwash',
      trigger: 'inkwash style',
      modelFamily: 'illustrious',
      baseModel: 'illustrious-xl.safetensors',
      config: { epochs: 10, repeats: 5 },
      status: 'voting',
      progress: { step: 100, totalSteps: 100, epoch: 10, totalEpochs: 10, loss: 0.08, etaSeconds: 0 },
    })
    .returning();
  const [checkpoint] = await db
    .insert(checkpoints)
    .values({
      trainingId: training!.id,
      epoch: 10,
      step: 100,
      artifactKey: 'loras/inkwash-e10.safetensors',
      metadata: { ss_epoch: '10' },
    })
    .returning();
  await castVote(db, { trainingId: training!.id, memberId: USER, checkpointId: checkpoint!.id });
  await db.insert(styles).values({
    guildId: GUILD,
    name: 'inkwash',
    trigger: 'inkwash style',
    modelFamily: 'illustrious',
    loraArtifactKey: 'loras/inkwash-e10.safetensors',
    checkpointId: checkpoint!.id,
    status: 'ready',
    createdBy: USER,
  });

  expect((await db.select().from(trainings).where(eq(trainings.id, training!.id)))[0]?.progress?.loss).toBe(
    0.08,
  );
  expect(
    (await db.select().from(checkpoints).where(eq(checkpoints.id, checkpoint!.id)))[0]?.metadata,
  ).toEqual({ ss_epoch: '10' });
  expect(
    await db.select({ member: votes.memberId }).from(votes).where(eq(votes.trainingId, training!.id)),
  ).toEqual([{ member: USER }]);
  expect((await db.select().from(styles).where(eq(styles.guildId, GUILD)))[0]).toMatchObject({
    name: 'inkwash',
    checkpointId: checkpoint!.id,
  });
  expect((await db.select().from(guildSettings).where(eq(guildSettings.guildId, GUILD)))[0]?.nsfwPolicy).toBe(
    'block',
  );
}

describe('PostgreSQL', { timeout: 90_000 }, () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  let database: Database;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'cm-db-'));
    testDb = await createTestDatabase();
    database = await openDatabase({ databaseUrl: testDb.url, dataDir });
  });

  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('applies every migration to an empty database, then a second run applies nothing', async () => {
    expect(database.kind).toBe('postgres');
    expect(await runMigrations(database)).toEqual({ applied: await migrationsInJournal() });
    expect(await runMigrations(database)).toEqual({ applied: 0 });
  });

  it('lets a bot and a runner migrate the same empty database at once, applying each migration once', async () => {
    const other = await createTestDatabase();
    const bot = await openDatabase({ databaseUrl: other.url, dataDir });
    const runner = await openDatabase({ databaseUrl: other.url, dataDir });
    try {
      const results = await Promise.all([runMigrations(bot), runMigrations(runner)]);
      expect(results.map((r) => r.applied).sort()).toEqual([0, await migrationsInJournal()]);
    } finally {
      await bot.close();
      await runner.close();
      await other.drop();
    }
  });

  it('round-trips a row through every table', async () => {
    await roundTripEveryTable(database.db);
  });

  it('keeps one vote per member per training under 20 concurrent votes from separate connections', async () => {
    const db = database.db;
    const [training] = await db
      .insert(trainings)
      .values({
        guildId: GUILD,
        channelId: CHANNEL,
        userId: USER,
        kind: 'style',
        name: 'crowd',
        trigger: 'crowd style',
        modelFamily: 'illustrious',
        baseModel: 'illustrious-xl.safetensors',
        config: {},
        status: 'voting',
      })
      .returning();
    const cps = await db
      .insert(checkpoints)
      .values(
        [2, 4, 6, 8].map((epoch) => ({
          trainingId: training!.id,
          epoch,
          step: epoch * 10,
          artifactKey: `loras/crowd-e${epoch}.safetensors`,
        })),
      )
      .returning();
    const member = '999999999999999999';

    const handles = await Promise.all(
      Array.from({ length: 20 }, () => openDatabase({ databaseUrl: testDb.url, dataDir, maxConnections: 2 })),
    );
    try {
      const cast = await Promise.all(
        handles.map((h, i) =>
          castVote(h.db, {
            trainingId: training!.id,
            memberId: member,
            checkpointId: cps[i % cps.length]!.id,
          }),
        ),
      );
      expect(cast).toHaveLength(20);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }

    const rows = await db.select().from(votes).where(eq(votes.trainingId, training!.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.memberId).toBe(member);
    expect(cps.map((c) => c.id)).toContain(rows[0]!.checkpointId);
    const counted = await tally(db, training!.id);
    expect(counted).toHaveLength(4);
    expect(counted.reduce((n, line) => n + line.votes, 0)).toBe(1);
    expect(counted[0]).toMatchObject({ checkpointId: rows[0]!.checkpointId, votes: 1 });

    // Voting again changes the vote: the last one counts.
    await castVote(db, { trainingId: training!.id, memberId: member, checkpointId: cps[0]!.id });
    await castVote(db, { trainingId: training!.id, memberId: member, checkpointId: cps[3]!.id });
    await castVote(db, { trainingId: training!.id, memberId: 'another-member', checkpointId: cps[3]!.id });
    expect(await tally(db, training!.id)).toEqual([
      { checkpointId: cps[3]!.id, epoch: 8, votes: 2 },
      { checkpointId: cps[0]!.id, epoch: 2, votes: 0 },
      { checkpointId: cps[1]!.id, epoch: 4, votes: 0 },
      { checkpointId: cps[2]!.id, epoch: 6, votes: 0 },
    ]);
  });

  it('refuses a vote once voting is closed, and a vote for another training’s checkpoint', async () => {
    const db = database.db;
    const make = async (name: string) => {
      const [t] = await db
        .insert(trainings)
        .values({
          guildId: GUILD,
          channelId: CHANNEL,
          userId: USER,
          kind: 'style',
          name,
          trigger: name,
          modelFamily: 'flux',
          baseModel: 'flux1-dev.safetensors',
          config: {},
          status: 'voting',
        })
        .returning();
      const [c] = await db
        .insert(checkpoints)
        .values({ trainingId: t!.id, epoch: 1, step: 10, artifactKey: `loras/${name}.safetensors` })
        .returning();
      return { training: t!, checkpoint: c! };
    };
    const a = await make('alpha');
    const b = await make('beta');

    await expect(
      castVote(db, { trainingId: a.training.id, memberId: USER, checkpointId: b.checkpoint.id }),
    ).rejects.toThrow('That checkpoint is not part of this training.');
    await db.update(trainings).set({ status: 'done' }).where(eq(trainings.id, a.training.id));
    const closed = castVote(db, { trainingId: a.training.id, memberId: USER, checkpointId: a.checkpoint.id });
    await expect(closed).rejects.toBeInstanceOf(InputError);
    await expect(closed).rejects.toThrow('Voting on this training is closed.');
    expect(await db.select().from(votes).where(eq(votes.trainingId, a.training.id))).toEqual([]);
  });

  it('deleting a comic removes its pages, panels and renders; deleting a training its checkpoints and votes', async () => {
    const db = database.db;
    const comic = await createComic(db, {
      guildId: GUILD,
      channelId: CHANNEL,
      userId: USER,
      prompt: 'to be deleted',
      options: { ...options, pages: 2 },
    });
    await db.insert(pages).values([1, 2].map((number) => ({ comicId: comic.id, number })));
    const ps = await db
      .insert(panels)
      .values([1, 2].map((pageNumber) => ({ comicId: comic.id, pageNumber, panelNumber: 1, scriptPanel })))
      .returning();
    const rs = await db
      .insert(renders)
      .values(
        ps.flatMap((p) =>
          [0, 1].map((attempt) => ({
            panelId: p.id,
            attempt,
            recipe: recipe(attempt),
            status: 'done' as const,
            artifactKey: `renders/${p.id}/${attempt}.png`,
          })),
        ),
      )
      .returning();
    await db.update(panels).set({ currentRenderId: rs[0]!.id }).where(eq(panels.id, ps[0]!.id));
    const keeper = await createComic(db, {
      guildId: GUILD,
      channelId: CHANNEL,
      userId: USER,
      prompt: 'to be kept',
      options,
    });
    await db.insert(pages).values({ comicId: keeper.id, number: 1 });

    await db.delete(comics).where(eq(comics.id, comic.id));

    expect(await getComic(db, comic.id)).toBeUndefined();
    expect(await db.select().from(pages).where(eq(pages.comicId, comic.id))).toEqual([]);
    expect(await db.select().from(panels).where(eq(panels.comicId, comic.id))).toEqual([]);
    expect(
      await db
        .select()
        .from(renders)
        .where(
          inArray(
            renders.id,
            rs.map((r) => r.id),
          ),
        ),
    ).toEqual([]);
    expect(await db.select().from(pages).where(eq(pages.comicId, keeper.id))).toHaveLength(1);

    const [training] = await db
      .insert(trainings)
      .values({
        guildId: GUILD,
        channelId: CHANNEL,
        userId: USER,
        kind: 'style',
        name: 'gone',
        trigger: 'gone',
        modelFamily: 'noobai',
        baseModel: 'noobai.safetensors',
        config: {},
        status: 'voting',
      })
      .returning();
    const [cp] = await db
      .insert(checkpoints)
      .values({ trainingId: training!.id, epoch: 1, step: 1, artifactKey: 'loras/gone.safetensors' })
      .returning();
    await castVote(db, { trainingId: training!.id, memberId: USER, checkpointId: cp!.id });
    const [style] = await db
      .insert(styles)
      .values({
        guildId: GUILD,
        name: 'gone',
        trigger: 'gone',
        modelFamily: 'noobai',
        loraArtifactKey: 'loras/gone.safetensors',
        checkpointId: cp!.id,
        status: 'ready',
        createdBy: USER,
      })
      .returning();

    await db.delete(trainings).where(eq(trainings.id, training!.id));

    expect(await db.select().from(checkpoints).where(eq(checkpoints.trainingId, training!.id))).toEqual([]);
    expect(await db.select().from(votes).where(eq(votes.trainingId, training!.id))).toEqual([]);
    // The style keeps its LoRA file; it only forgets which checkpoint it came from.
    expect((await db.select().from(styles).where(eq(styles.id, style!.id)))[0]).toMatchObject({
      checkpointId: null,
      status: 'ready',
    });
  });

  it('refuses rows that break the domain rules', async () => {
    const db = database.db;
    const comic = await createComic(db, {
      guildId: GUILD,
      channelId: CHANNEL,
      userId: USER,
      prompt: 'rules',
      options,
    });
    // A panel on a page that does not exist.
    await expect(
      db.insert(panels).values({ comicId: comic.id, pageNumber: 3, panelNumber: 1, scriptPanel }),
    ).rejects.toThrow();
    await db.insert(pages).values({ comicId: comic.id, number: 1 });
    await expect(db.insert(pages).values({ comicId: comic.id, number: 1 })).rejects.toThrow();
    // Character names are unique per guild whatever their case.
    await db.insert(characters).values({ guildId: '1', name: 'Rook', ownerId: USER });
    await expect(
      db.insert(characters).values({ guildId: '1', name: 'rook', ownerId: USER }),
    ).rejects.toThrow();
    await db.insert(characters).values({ guildId: '2', name: 'rook', ownerId: USER });
    // Out-of-range settings never reach the table.
    await expect(updateGuildSettings(db, '1', { maxInFlightPerUser: 0 })).rejects.toBeInstanceOf(InputError);
    await expect(db.execute(sql`update guild_settings set max_in_flight_per_user = 0`)).rejects.toThrow();
    await expect(
      createComic(db, { guildId: GUILD, channelId: CHANNEL, userId: USER, prompt: '   ', options }),
    ).rejects.toBeInstanceOf(InputError);
  });

  it('counts comics in flight and holds the per-member limit when requests race', async () => {
    const db = database.db;
    const guild = '555555555555555555';
    const input = (userId: string) => ({
      guildId: guild,
      channelId: CHANNEL,
      userId,
      prompt: 'a race',
      options,
    });

    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        createComicWithinLimits(db, input('racer'), { perUser: 1, perGuild: 3 }),
      ),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.limit === 'user')).toHaveLength(5);

    await createComic(db, input('other'));
    expect(await comicsInFlight(db, guild, 'racer')).toEqual({ user: 1, guild: 2 });
    const third = await createComicWithinLimits(db, input('third'), { perUser: 1, perGuild: 2 });
    expect(third).toMatchObject({ ok: false, limit: 'guild', inFlight: { user: 0, guild: 2 } });

    // A finished comic frees its slot, and stays finished when a late job reports in.
    const done = results.find((r) => r.ok);
    if (!done?.ok) throw new Error('expected one comic to be created');
    expect((await setComicStatus(db, done.comic.id, 'done'))?.status).toBe('done');
    expect(await setComicStatus(db, done.comic.id, 'rendering')).toBeUndefined();
    expect((await getComic(db, done.comic.id))?.status).toBe('done');
    expect(await comicsInFlight(db, guild, 'racer')).toEqual({ user: 0, guild: 1 });
    expect(await getComic(db, 'not-a-uuid')).toBeUndefined();
  });

  it('takes one 🔁 per panel at a time, and the finished reroll becomes the panel’s image', async () => {
    const db = database.db;
    const comic = await createComic(db, {
      guildId: GUILD,
      channelId: CHANNEL,
      userId: USER,
      prompt: 'reroll me',
      options,
    });
    await db.insert(pages).values({ comicId: comic.id, number: 1 });
    const messageId = '777777777777777777';
    const [panel] = await db
      .insert(panels)
      .values({ comicId: comic.id, pageNumber: 1, panelNumber: 1, scriptPanel, discordMessageId: messageId })
      .returning();
    const first = await createRender(db, { panelId: panel!.id, attempt: 0, recipe: recipe(1) });
    expect((await markRenderRunning(db, first.id, 'gpu-0'))?.runnerId).toBe('gpu-0');
    expect(await markRenderRunning(db, first.id, 'gpu-1')).toBeUndefined();
    await finishRender(db, first.id, 'renders/first.png');

    // Five members react at once: one reroll is queued, the rest change nothing.
    const asked = await Promise.all(Array.from({ length: 5 }, () => requestReroll(db, messageId)));
    const granted = asked.filter((a) => a !== undefined);
    expect(granted).toHaveLength(1);
    expect(granted[0]!.attempt).toBe(1);
    expect(await requestReroll(db, '000000000000000000')).toBeUndefined();

    const second = await createRender(db, {
      panelId: panel!.id,
      attempt: granted[0]!.attempt,
      recipe: recipe(2),
    });
    expect(await finishRender(db, second.id, 'renders/second.png')).toMatchObject({ status: 'done' });
    expect(await finishRender(db, second.id, 'renders/duplicate.png')).toBeUndefined();
    const [after] = await db.select().from(panels).where(eq(panels.id, panel!.id));
    expect(after).toMatchObject({ currentRenderId: second.id, rerollPending: false, rerollCount: 1 });
    expect((await db.select().from(renders).where(eq(renders.id, second.id)))[0]?.artifactKey).toBe(
      'renders/second.png',
    );

    // A failed reroll keeps the old image and lets members try again.
    const third = await requestReroll(db, messageId);
    expect(third?.attempt).toBe(2);
    const failing = await createRender(db, { panelId: panel!.id, attempt: 2, recipe: recipe(3) });
    expect((await failRender(db, failing.id, 'ComfyUI ran out of memory'))?.error).toBe(
      'ComfyUI ran out of memory',
    );
    expect((await db.select().from(panels).where(eq(panels.id, panel!.id)))[0]).toMatchObject({
      currentRenderId: second.id,
      rerollPending: false,
    });
    expect((await requestReroll(db, messageId))?.attempt).toBe(3);
  });
});

// PGlite boots a WebAssembly PostgreSQL twice here; on a busy 2-core machine that alone can take 20 s.
describe('PGlite (embedded, no DATABASE_URL)', { timeout: 180_000 }, () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'cm-pglite-'));
  });

  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('applies the same migrations from empty, a second run is a no-op, and data survives a reopen', async () => {
    const first = await openDatabase({ dataDir });
    let comicId: string;
    try {
      expect(first.kind).toBe('pglite');
      expect(await runMigrations(first)).toEqual({ applied: await migrationsInJournal() });
      expect(await runMigrations(first)).toEqual({ applied: 0 });
      await roundTripEveryTable(first.db);
      comicId = (
        await createComic(first.db, {
          guildId: null,
          channelId: null,
          userId: 'cli',
          prompt: 'a local comic',
          options,
        })
      ).id;
    } finally {
      await first.close();
    }

    const again = await openDatabase({ dataDir });
    try {
      expect(await runMigrations(again)).toEqual({ applied: 0 });
      expect((await getComic(again.db, comicId))?.prompt).toBe('a local comic');
      expect(await comicsInFlight(again.db, null, 'cli')).toEqual({ user: 1, guild: 1 });
    } finally {
      await again.close();
    }
  });
});
