/**
 * `/train character` through the real bot against the fake Discord, with real PostgreSQL and Redis:
 * the character presets (8 pictures at least, "N more" below; a warning under 20), the character's
 * token as the trigger, captions (fake WD14 tagger) without the character's appearance tags, the
 * trainings row of kind character and its `train` job. Then the vote close attaches the winning
 * checkpoint to the character, and a comic naming the character carries that LoRA in its recipes.
 * No runner consumes the queues here: jobs are asserted where they wait.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBot, type BotHandle } from '../src/bot/bot.ts';
import { registerCommands } from '../src/bot/register-commands.ts';
import { createCharacter, findCharacter } from '../src/characters/repository.ts';
import { characterToken } from '../src/characters/token.ts';
import { startComic } from '../src/comic/flow/index.ts';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import { parseConfig } from '../src/config/env.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { getGuildSettings } from '../src/db/guild-settings.ts';
import { rendersOfComic } from '../src/db/renders.ts';
import { checkpoints, guildSettings, styles, trainings, type Character, type Training } from '../src/db/schema.ts';
import { closeVote } from '../src/evaluation/vote.ts';
import { createLogger } from '../src/log.ts';
import type { QueueConnection } from '../src/queue/index.ts';
import { createArtifactStore, type ArtifactStore } from '../src/store/index.ts';
import { artifactKeys } from '../src/store/keys.ts';
import { evalLoraName } from '../src/evaluation/plan.ts';
import { snowflake, startFakeDiscord, type FakeDiscord, type FakeUpload, type SlashCommandInput } from './fakes/discord.ts';
import { createTestDatabase } from './helpers/database.ts';
import { TEST_GEOMETRY } from './helpers/pipeline.ts';
import { cleanupQueues, testQueueConnection } from './helpers/redis.ts';

const silent = createLogger({ level: 'silent' });
const TRAINER_ROLE = snowflake();
/** The fake tagger writes 1girl, solo, short_hair, smile, looking_at_viewer (and style tags). */
const MIRA_APPEARANCE = ['1girl', 'short hair', 'green eyes', 'yellow raincoat'];
let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;
let database: Database;
let fake: FakeDiscord;
let connection: QueueConnection;
let store: ArtifactStore;
let bot: BotHandle;
let mira: Character;

/** A copy of the fake sd-scripts checkout with the tagger's model folder, so WD14 captions run offline. */
async function fakeSdScripts(root: string): Promise<string> {
  const sdScripts = join(root, 'sd-scripts');
  await mkdir(join(sdScripts, 'finetune'), { recursive: true });
  const tagger = join(import.meta.dirname, 'fakes', 'wd14-tagger', 'finetune', 'tag_images_by_wd14_tagger.py');
  await writeFile(join(sdScripts, 'finetune', 'tag_images_by_wd14_tagger.py'), await readFile(tagger));
  const model = join(sdScripts, 'wd14_tagger_model', 'SmilingWolf_wd-v1-4-convnext-tagger-v2');
  await mkdir(model, { recursive: true });
  await writeFile(join(model, 'model.onnx'), 'fake');
  await writeFile(join(model, 'selected_tags.csv'), 'tag_id,name,category,count\n');
  return sdScripts;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'cm-character-train-'));
  database = await openDatabase({ databaseUrl: testDb.url, dataDir });
  connection = testQueueConnection('character-train');
  fake = await startFakeDiscord({
    guilds: [
      {
        roles: [{ id: TRAINER_ROLE, name: 'trainers', permissions: 0n }],
        members: [{ username: 'owner' }, { username: 'alice', roles: [TRAINER_ROLE] }, { username: 'bob' }],
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
    SD_SCRIPTS_DIR: await fakeSdScripts(dataDir),
    TRAINER_PYTHON: 'python3',
  });
  await registerCommands(config, silent);
  store = createArtifactStore({ dataDir });
  bot = await runBot(config, {
    logger: silent,
    connection,
    store,
    handleSignals: false,
    statusIntervalMs: 200,
    cpuWorkers: false,
    pipeline: { geometry: TEST_GEOMETRY },
  });
  await getGuildSettings(database.db, fake.guild.id);
  await database.db.update(guildSettings).set({ trainerRoleId: TRAINER_ROLE }).where(eq(guildSettings.guildId, fake.guild.id));
  mira = await createCharacter(database.db, { guildId: fake.guild.id, name: 'Mira', appearance: MIRA_APPEARANCE, ownerId: fake.user('bob').id });
}, 120_000);

afterAll(async () => {
  await bot?.stop();
  if (connection) await cleanupQueues(connection);
  await fake?.close();
  await database?.close();
  await testDb?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** A small picture of its own: shapes placed by `seed`, so no two are near-duplicates. */
async function picture(seed: number): Promise<Buffer> {
  const shapes: string[] = [];
  let s = seed * 7919 + 17;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 6; i++) {
    const hue = Math.floor(next() * 360);
    shapes.push(
      `<rect x="${Math.floor(next() * 220)}" y="${Math.floor(next() * 220)}" width="${40 + Math.floor(next() * 120)}" height="${40 + Math.floor(next() * 120)}" fill="hsl(${hue},70%,${30 + Math.floor(next() * 40)}%)"/>`,
    );
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="288" height="320"><rect width="288" height="320" fill="hsl(${(seed * 47) % 360},40%,85%)"/>${shapes.join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function uploads(from: number, count: number): Promise<Record<string, FakeUpload>> {
  const images = await Promise.all(Array.from({ length: count }, (_, i) => picture(from + i)));
  return Object.fromEntries(images.map((bytes, i) => [`image${i + 1}`, { filename: `mira-${i}.png`, bytes, contentType: 'image/png' }]));
}

/** Runs a command and resolves with what the member finally sees (a deferred reply's last edit). */
async function run(input: SlashCommandInput): Promise<{ content: string; ephemeral: boolean }> {
  const { id } = fake.sendSlashCommand(input);
  const settled = (content: string) => content !== '' && !content.startsWith('📥') && !content.startsWith('🔎');
  return fake.waitFor(() => {
    const interaction = fake.interaction(id);
    const callback = interaction?.callback;
    if (!callback) return undefined;
    if (callback.type === 4) {
      const data = callback.data as { content?: string; flags?: number };
      return { content: data.content ?? '', ephemeral: ((data.flags ?? 0) & 64) === 64 };
    }
    const original = interaction.original;
    if (!original || !settled(original.content)) return undefined;
    return { content: original.content, ephemeral: (original.flags & 64) === 64 };
  }, 60_000);
}

const trainCharacter = (name: string, attachments: Record<string, FakeUpload>): SlashCommandInput => ({
  name: 'train',
  subcommand: 'character',
  userId: fake.user('alice').id,
  options: { name, base: 'illustrious' },
  attachments,
});

async function trainingRows(): Promise<Training[]> {
  return database.db.select().from(trainings);
}

describe('/train character', () => {
  it('refuses a name that is not in the cast, privately, with nothing queued', async () => {
    const reply = await run(trainCharacter('Nobody', await uploads(1, 1)));
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('no character called “Nobody”');
    expect(await trainingRows()).toHaveLength(0);
  });

  it('refuses fewer than 8 pictures, saying how many more are needed', async () => {
    const reply = await run(trainCharacter('mira', await uploads(10, 5)));
    expect(reply.content).toContain('Not queued');
    expect(reply.content).toContain('a character needs at least 8');
    expect(reply.content).toContain('Add 3 more');
    expect(await trainingRows()).toHaveLength(0);
    expect(await bot.deps.producer.queue('train').getJobs(['waiting', 'prioritized', 'delayed'])).toHaveLength(0);
  });

  it("queues a training under the character's token, with captions that leave out the character's constant look", async () => {
    const token = characterToken(mira);
    expect(token).toMatch(/^mira_[0-9a-f]{4}$/);
    const reply = await run(trainCharacter('mira', await uploads(100, 9)));
    expect(reply.ephemeral).toBe(false);
    expect(reply.content).toContain(`Character LoRA for **Mira** (trigger \`${token}\`) is queued for training`);
    expect(reply.content).toContain('9 images prepared');
    // Under the recommended 20: a warning, not a refusal.
    expect(reply.content).toContain('20 or more');

    const [training] = await trainingRows();
    expect(training).toMatchObject({ kind: 'character', name: 'Mira', trigger: token, status: 'queued' });
    expect(training!.config).toMatchObject({ characterId: mira.id, dataset: { images: 9, captionMode: 'wd14' } });

    const captionKeys = (await store.list(training!.datasetKey!)).filter((k) => k.endsWith('.txt'));
    expect(captionKeys).toHaveLength(9);
    for (const key of captionKeys) {
      const caption = (await store.getBuffer(key)).toString('utf8').trim();
      const tags = caption.split(', ');
      expect(tags[0]).toBe(token);
      // What changes from picture to picture stays; what Mira always looks like goes to the token.
      expect(tags).toContain('smile');
      for (const constant of ['1girl', 'short hair', 'short_hair']) expect(tags).not.toContain(constant);
    }

    const jobs = await bot.deps.producer.queue('train').getJobs(['waiting', 'prioritized', 'delayed']);
    expect(jobs.map((j) => j.data)).toEqual([{ trainingId: training!.id }]);
  });

  it('attaches the winning checkpoint to the character when the vote closes, and comics naming her carry it', async () => {
    const [training] = await trainingRows();
    const token = training!.trigger;
    // What the runner and the evaluation would have left: two checkpoints, the vote open.
    const rows = [];
    for (const epoch of [2, 4]) {
      const key = `trainings/${training!.id}/checkpoints/e${epoch}.safetensors`;
      await store.put(key, Buffer.from(`fake lora epoch ${epoch}`));
      rows.push({ trainingId: training!.id, epoch, step: epoch * 100, artifactKey: key });
    }
    await database.db.insert(checkpoints).values(rows);
    await database.db.update(trainings).set({ status: 'voting' }).where(eq(trainings.id, training!.id));

    const result = await closeVote(database.db, store, { trainingId: training!.id, closedBy: 'test' });
    expect(result.style).toBeNull();
    expect(result.character?.name).toBe('Mira');
    const loraKey = artifactKeys.lora(evalLoraName(training!.id, 2));
    const after = await findCharacter(database.db, fake.guild.id, 'Mira');
    expect(after).toMatchObject({ loraArtifactKey: loraKey, loraTrigger: token, loraStrength: 0.6, appearance: MIRA_APPEARANCE });
    expect((await store.getBuffer(loraKey)).toString()).toBe('fake lora epoch 2');
    // No style appears under the character's name.
    expect(await database.db.select().from(styles).where(eq(styles.guildId, fake.guild.id))).toHaveLength(0);
    expect((await trainingRows())[0]!.status).toBe('done');

    const started = await startComic(bot.deps, {
      guildId: fake.guild.id,
      channelId: fake.channelId,
      userId: fake.user('alice').id,
      prompt: 'Mira chases a paper boat down the flooded street and catches it at the harbour.',
      options: { pages: 1, panelsPerPage: 3, style: null, model: 'illustrious', rtl: false, safe: true },
      limits: { perUser: 5, perGuild: 5 },
    });
    if (!started.ok) throw new Error(started.reason);
    await processScriptJob(bot.deps, { comicId: started.comic.id });
    const renders = await rendersOfComic(database.db, started.comic.id);
    const withMira = renders.filter(({ render }) => render.recipe.panel.characters.some((c) => c.name === 'Mira'));
    expect(withMira.length).toBeGreaterThan(0);
    const file = loraKey.split('/').pop();
    for (const { render } of withMira) {
      expect(render.recipe.loras).toContainEqual(expect.objectContaining({ name: file, trigger: token, strength: 0.6, artifactKey: loraKey }));
      expect(render.recipe.positive).toContain(token);
    }
  });
});
