/**
 * `/settings` through the real bot against the fake Discord, real PostgreSQL and Redis: anyone may
 * look, only Manage Server may change, and every setting changes what members then see —
 * `/comic new`'s limits, default model and safe-output note, the vote's duration and labels, and the
 * scenes a training is evaluated on. No CPU workers run, so comics stay "in the making" and count
 * against the limits. The evaluation is run in-process with the storyboard renderer; the bot's poster
 * posts its grids and vote.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBot, type BotHandle } from '../src/bot/bot.ts';
import { registerCommands } from '../src/bot/register-commands.ts';
import { parseConfig } from '../src/config/env.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { getGuildSettings } from '../src/db/guild-settings.ts';
import { checkpoints, comics, trainings, type Comic } from '../src/db/schema.ts';
import { evaluateTraining } from '../src/evaluation/evaluate-worker.ts';
import { DEFAULT_TEST_PROMPTS } from '../src/evaluation/plan.ts';
import { StoryboardRenderer } from '../src/gpu/storyboard-renderer.ts';
import { readEmbeddedRecipe } from '../src/gpu/png-metadata.ts';
import { createLogger } from '../src/log.ts';
import type { QueueConnection } from '../src/queue/index.ts';
import { createArtifactStore, type ArtifactStore } from '../src/store/index.ts';
import { startFakeDiscord, type FakeDiscord, type SlashCommandInput } from './fakes/discord.ts';
import { createTestDatabase } from './helpers/database.ts';
import { TEST_GEOMETRY } from './helpers/pipeline.ts';
import { cleanupQueues, testQueueConnection } from './helpers/redis.ts';

const silent = createLogger({ level: 'silent' });
let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;
let database: Database;
let fake: FakeDiscord;
let connection: QueueConnection;
let store: ArtifactStore;
let bot: BotHandle;

beforeAll(async () => {
  testDb = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'cm-settings-'));
  database = await openDatabase({ databaseUrl: testDb.url, dataDir });
  connection = testQueueConnection('settings');
  fake = await startFakeDiscord({
    guilds: [
      {
        members: [
          { username: 'owner' },
          { username: 'alice' },
          { username: 'bob' },
          { username: 'carol' },
          { username: 'dave' },
        ],
      },
    ],
  });
  const config = parseConfig({
    DISCORD_TOKEN: fake.token,
    DISCORD_API_URL: fake.restUrl,
    DISCORD_GUILD_ID: fake.guild.id,
    DATABASE_URL: testDb.url,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
  });
  await registerCommands(config, silent);
  store = createArtifactStore({ dataDir });
  bot = await runBot(config, {
    logger: silent,
    connection,
    store,
    handleSignals: false,
    statusIntervalMs: 300,
    cpuWorkers: false,
    pipeline: { geometry: TEST_GEOMETRY },
  });
}, 120_000);

afterAll(async () => {
  await bot?.stop();
  if (connection) await cleanupQueues(connection);
  await fake?.close();
  await database?.close();
  await testDb?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const member = (name: string) => fake.user(name).id;
const channelId = (name: string) => fake.guild.channels.find((c) => c.name === name)!.id;

/** Runs a command and resolves with what the member finally sees (a deferred reply's last edit). */
async function run(input: SlashCommandInput): Promise<{ content: string; ephemeral: boolean }> {
  const { id } = fake.sendSlashCommand(input);
  return fake.waitFor(() => {
    const interaction = fake.interaction(id);
    const callback = interaction?.callback;
    if (!callback) return undefined;
    if (callback.type === 4) {
      const data = callback.data as { content?: string; flags?: number };
      return { content: data.content ?? '', ephemeral: ((data.flags ?? 0) & 64) === 64 };
    }
    const original = interaction.original;
    if (!original || original.content === '') return undefined;
    return { content: original.content, ephemeral: (original.flags & 64) === 64 };
  }, 30_000);
}

const settings = (user: string, subcommand: string, options: SlashCommandInput['options'] = {}) =>
  run({ name: 'settings', subcommand, userId: member(user), options });

const comicNew = (user: string, options: SlashCommandInput['options'] = {}, channel = 'comics') =>
  run({
    name: 'comic',
    subcommand: 'new',
    userId: member(user),
    channelId: channelId(channel),
    options: { prompt: 'A lighthouse keeper finds a message in a bottle.', pages: 1, panels: 1, ...options },
  });

async function comicsOf(user: string): Promise<Comic[]> {
  return database.db
    .select()
    .from(comics)
    .where(eq(comics.userId, member(user)));
}

/** Forgets every comic, so the next limit test starts with nothing in the making. */
async function clearComics(): Promise<void> {
  await database.db.delete(comics);
}

describe('/settings show and who may change', () => {
  it('shows the current values to anyone, privately', async () => {
    const reply = await settings('alice', 'show');
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('Comics in the making per member: **1**');
    expect(reply.content).toContain('Comics in the making for the whole server: **3**');
    expect(reply.content).toContain('Illustrious XL (illustrious)');
    expect(reply.content).toContain('every render is kept safe for work');
    expect(reply.content).toContain('stay open **24 hours**');
    expect(reply.content).toContain('**blind**');
    expect(reply.content).toContain('the built-in ones');
    expect(reply.content).toContain(DEFAULT_TEST_PROMPTS[0]);
  });

  it('refuses changes from a member without Manage Server, and changes nothing', async () => {
    const reply = await settings('alice', 'set', { comics_per_member: 5 });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('Only members with Manage Server');
    const prompts = await settings('alice', 'test-prompts', { prompt1: 'a cat on a wall' });
    expect(prompts.content).toContain('Only members with Manage Server');
    const stored = await getGuildSettings(database.db, fake.guild.id);
    expect(stored.maxInFlightPerUser).toBe(1);
    expect(stored.testPrompts).toEqual([]);
  });

  it('asks for at least one setting, and refuses prompts together with reset', async () => {
    const empty = await settings('owner', 'set');
    expect(empty.ephemeral).toBe(true);
    expect(empty.content).toContain('give at least one setting');
    const both = await settings('owner', 'test-prompts', { prompt1: 'a dog', reset: true });
    expect(both.content).toContain('either give prompts or reset');
  });
});

describe('/comic new follows the settings', () => {
  it('comics_per_member: a second comic is refused at 1 and accepted at 2', async () => {
    await clearComics();
    const set = await settings('owner', 'set', { comics_per_member: 1, comics_per_server: 10 });
    expect(set.ephemeral).toBe(true);
    expect(set.content).toContain('Each member may have **1** comic in the making');
    expect(set.content).toContain('The whole server may have **10** comics');

    expect((await comicNew('alice')).content).toContain('is on its way');
    const refused = await comicNew('alice');
    expect(refused.content).toContain('You already have 1 comic in the making (the limit is 1)');
    expect(await comicsOf('alice')).toHaveLength(1);

    await settings('owner', 'set', { comics_per_member: 2 });
    expect((await comicNew('alice')).content).toContain('is on its way');
    expect(await comicsOf('alice')).toHaveLength(2);
  });

  it('comics_per_server: the comic past the server limit is refused with the limit', async () => {
    await clearComics();
    const set = await settings('owner', 'set', { comics_per_server: 2, comics_per_member: 5 });
    expect(set.content).toContain('The whole server may have **2** comics');
    expect((await comicNew('alice')).content).toContain('is on its way');
    expect((await comicNew('bob')).content).toContain('is on its way');
    const refused = await comicNew('carol');
    expect(refused.content).toContain('This server already has 2 comics in the making (the limit is 2)');
    expect(await comicsOf('carol')).toHaveLength(0);
  });

  it('default_model: /comic new without a model draws with the server default; a given model still wins', async () => {
    await clearComics();
    await settings('owner', 'set', { comics_per_server: 50, comics_per_member: 10 });
    const set = await settings('owner', 'set', { default_model: 'sdxl' });
    expect(set.content).toContain('now draws with **SDXL');
    expect((await settings('bob', 'show')).content).toContain('(sdxl)');

    await comicNew('dave');
    await comicNew('dave', { model: 'noobai' });
    const models = (await comicsOf('dave')).map((c) => c.options.modelFamily).sort();
    expect(models).toEqual(['noobai', 'sdxl']);
  });

  it('mature_content: the safe-output note goes away in age-restricted channels only when allowed', async () => {
    await clearComics();
    expect((await comicNew('carol', {}, 'mature')).content).toContain('kept safe for work');

    const set = await settings('owner', 'set', { mature_content: 'nsfw_channels_only' });
    expect(set.content).toContain('only in age-restricted channels');
    expect(set.content).toContain('Age-Restricted Channel');

    expect((await comicNew('carol', {}, 'mature')).content).not.toContain('kept safe');
    expect((await comicNew('carol', {}, 'comics')).content).toContain('kept safe for work');
    const bySafety = (await comicsOf('carol'))
      .map(
        (c) =>
          `${c.channelId === channelId('mature') ? 'mature' : 'comics'}:${(c.options as { safe?: boolean }).safe ?? true}`,
      )
      .sort();
    expect(bySafety).toEqual(['comics:true', 'mature:false', 'mature:true']);

    await settings('owner', 'set', { mature_content: 'block' });
    expect((await comicNew('carol', {}, 'mature')).content).toContain('kept safe for work');
  });
});

describe('trainings follow the settings', () => {
  it('test prompts, vote_hours and blind_votes: the evaluation renders the server scenes led by the trigger, and the vote shows epochs and closes when set', async () => {
    const prompts = await settings('owner', 'test-prompts', {
      prompt1: 'a cat asleep on a windowsill',
      prompt2: 'a robot watering flowers',
    });
    expect(prompts.ephemeral).toBe(true);
    expect(prompts.content).toContain('these 2 test prompts');
    expect(prompts.content).toContain('1. a cat asleep on a windowsill');
    const set = await settings('owner', 'set', { vote_hours: 2, blind_votes: false });
    expect(set.content).toContain('stay open **2 hours**');
    expect(set.content).toContain('**not blind**');

    const channel = channelId('comics');
    const [training] = await database.db
      .insert(trainings)
      .values({
        guildId: fake.guild.id,
        channelId: channel,
        userId: member('owner'),
        kind: 'style',
        name: 'pencil',
        trigger: 'pencilstyle',
        modelFamily: 'illustrious',
        baseModel: 'illustriousXL_v01.safetensors',
        config: {},
        status: 'training',
      })
      .returning();
    const trainingId = training!.id;
    for (const epoch of [1, 2]) {
      const key = `trainings/${trainingId}/checkpoints/e${epoch}.safetensors`;
      await store.put(key, Buffer.from(`lora ${epoch}`));
      await database.db.insert(checkpoints).values({ trainingId, epoch, step: epoch * 10, artifactKey: key });
    }

    const before = Date.now();
    const outcome = await evaluateTraining(
      {
        db: database.db,
        store,
        renderer: new StoryboardRenderer(),
        producer: bot.deps.producer,
        logger: silent,
        renderSize: 256,
        gridCellSize: 64,
        overviewCellSize: 32,
      },
      trainingId,
    );
    // Two scenes, not the four built-in ones; every cell's prompt is the scene led by the trigger.
    expect(outcome!.record.gridKeys).toHaveLength(2);
    const cellKeys = (await store.list(`evaluations/${trainingId}/cells/`)).sort();
    expect(cellKeys).toHaveLength(2 * (1 + 2 * 4));
    const positives = await Promise.all(
      cellKeys.map(async (key) => readEmbeddedRecipe(await store.getBuffer(key))?.positive ?? ''),
    );
    expect(positives.filter((p) => p.startsWith('pencilstyle, a cat asleep on a windowsill'))).toHaveLength(
      9,
    );
    expect(positives.filter((p) => p.startsWith('pencilstyle, a robot watering flowers'))).toHaveLength(9);

    // What the channel sees: two grids, then a vote labelled by epoch that closes in two hours.
    const vote = await fake.waitFor(
      () => fake.messages(channel).find((m) => m.content.includes('Which checkpoint becomes')),
      30_000,
    );
    const grids = fake.messages(channel).filter((m) => m.content.includes('evaluation grid'));
    expect(grids.map((g) => /test prompt (\d)/.exec(g.content)?.[1]).sort()).toEqual(['1', '2']);
    expect(vote.content).toContain('**epoch 1**');
    expect(vote.content).toContain('**epoch 2**');
    expect(vote.content).not.toContain('shuffled');
    const closesAt = Number(/<t:(\d+):R>/.exec(vote.content)?.[1]) * 1000;
    expect(closesAt).toBeGreaterThanOrEqual(before + 2 * 3600_000 - 1000);
    expect(closesAt).toBeLessThanOrEqual(Date.now() + 2 * 3600_000);

    const reset = await settings('owner', 'test-prompts', { reset: true });
    expect(reset.content).toContain('Back to the four built-in test prompts');
    expect((await getGuildSettings(database.db, fake.guild.id)).testPrompts).toEqual([]);
  }, 120_000);
});
