/**
 * `/train character` through the real bot against the fake Discord, with real PostgreSQL and Redis:
 * the character presets (8 pictures at least, "N more" below; a warning under 20), the character's
 * token as the trigger, captions (fake WD14 tagger) without the character's appearance tags, the
 * trainings row of kind character and its `train` job. Then the vote close attaches the winning
 * checkpoint to the character, and a comic naming the character carries that LoRA in its recipes.
 * No runner consumes the queues here: jobs are asserted where they wait.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BotHandle } from '../src/bot/bot.ts';
import { createCharacter, findCharacter } from '../src/characters/repository.ts';
import { characterToken } from '../src/characters/token.ts';
import { startComic } from '../src/comic/flow/index.ts';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import type { Database } from '../src/db/client.ts';
import { getGuildSettings } from '../src/db/guild-settings.ts';
import { rendersOfComic } from '../src/db/renders.ts';
import {
  checkpoints,
  guildSettings,
  styles,
  trainings,
  type Character,
  type Training,
} from '../src/db/schema.ts';
import { voteMessageContent } from '../src/bot/vote-poster.ts';
import { closeVote, voteView } from '../src/evaluation/vote.ts';
import type { ArtifactStore } from '../src/store/index.ts';
import { artifactKeys } from '../src/store/keys.ts';
import { evalLoraName } from '../src/evaluation/plan.ts';
import { snowflake, type FakeDiscord, type FakeUpload, type SlashCommandInput } from './fakes/discord.ts';
import { trainingPicture } from './fixtures/dataset/build.ts';
import { commandReply, startBotHarness, type BotHarness } from './helpers/bot.ts';

const TRAINER_ROLE = snowflake();
/** The fake tagger writes 1girl, solo, short_hair, smile, looking_at_viewer (and style tags). */
const MIRA_APPEARANCE = ['1girl', 'short hair', 'green eyes', 'yellow raincoat'];
let harness: BotHarness;
let database: Database;
let fake: FakeDiscord;
let store: ArtifactStore;
let bot: BotHandle;
let mira: Character;

/** A copy of the fake sd-scripts checkout with the tagger's model folder, so WD14 captions run offline. */
async function fakeSdScripts(root: string): Promise<string> {
  const sdScripts = join(root, 'sd-scripts');
  await mkdir(join(sdScripts, 'finetune'), { recursive: true });
  const tagger = join(
    import.meta.dirname,
    'fakes',
    'wd14-tagger',
    'finetune',
    'tag_images_by_wd14_tagger.py',
  );
  await writeFile(join(sdScripts, 'finetune', 'tag_images_by_wd14_tagger.py'), await readFile(tagger));
  const model = join(sdScripts, 'wd14_tagger_model', 'SmilingWolf_wd-v1-4-convnext-tagger-v2');
  await mkdir(model, { recursive: true });
  await writeFile(join(model, 'model.onnx'), 'fake');
  await writeFile(join(model, 'selected_tags.csv'), 'tag_id,name,category,count\n');
  return sdScripts;
}

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'character-train',
    discord: {
      guilds: [
        {
          roles: [{ id: TRAINER_ROLE, name: 'trainers', permissions: 0n }],
          members: [{ username: 'owner' }, { username: 'alice', roles: [TRAINER_ROLE] }, { username: 'bob' }],
        },
      ],
    },
    env: async (dataDir) => ({ SD_SCRIPTS_DIR: await fakeSdScripts(dataDir), TRAINER_PYTHON: 'python3' }),
    bot: { statusIntervalMs: 200, cpuWorkers: false },
  });
  ({ database, fake, store, bot } = harness);
  await getGuildSettings(database.db, fake.guild.id);
  await database.db
    .update(guildSettings)
    .set({ trainerRoleId: TRAINER_ROLE })
    .where(eq(guildSettings.guildId, fake.guild.id));
  mira = await createCharacter(database.db, {
    guildId: fake.guild.id,
    name: 'Mira',
    appearance: MIRA_APPEARANCE,
    ownerId: fake.user('bob').id,
  });
}, 120_000);

afterAll(async () => {
  await harness?.close();
});

async function uploads(from: number, count: number): Promise<Record<string, FakeUpload>> {
  const images = await Promise.all(Array.from({ length: count }, (_, i) => trainingPicture(from + i)));
  return Object.fromEntries(
    images.map((bytes, i) => [
      `image${i + 1}`,
      { filename: `mira-${i}.png`, bytes, contentType: 'image/png' },
    ]),
  );
}

/** Runs a command and resolves with what the member finally sees (a deferred reply's last edit). */
function run(input: SlashCommandInput): Promise<{ content: string; ephemeral: boolean }> {
  const settled = (content: string) =>
    content !== '' && !content.startsWith('📥') && !content.startsWith('🔎');
  return commandReply(fake, input, { settled, timeoutMs: 60_000 });
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

  it('refuses a member without the trainer role in the words of a character LoRA', async () => {
    const reply = await run({ ...trainCharacter('mira', await uploads(1, 1)), userId: fake.user('bob').id });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('Training a character LoRA holds the GPU');
    expect(reply.content).not.toContain('style');
    expect(await trainingRows()).toHaveLength(0);
  });

  it('refuses fewer than 8 pictures, saying how many more are needed', async () => {
    const reply = await run(trainCharacter('mira', await uploads(10, 5)));
    expect(reply.content).toContain('Not queued');
    expect(reply.content).toContain('a character needs at least 8');
    expect(reply.content).toContain('Add 3 more');
    expect(await trainingRows()).toHaveLength(0);
    expect(
      await bot.deps.producer.queue('train').getJobs(['waiting', 'prioritized', 'delayed']),
    ).toHaveLength(0);
  });

  it("queues a training under the character's token, with captions that leave out the character's constant look", async () => {
    const token = characterToken(mira);
    expect(token).toMatch(/^mira_[0-9a-f]{4}$/);
    const reply = await run(trainCharacter('mira', await uploads(100, 9)));
    expect(reply.ephemeral).toBe(false);
    expect(reply.content).toContain(
      `Character LoRA for **Mira** (trigger \`${token}\`) is queued for training`,
    );
    expect(reply.content).toContain('9 images prepared');
    // Under the recommended 20: a warning, not a refusal.
    expect(reply.content).toContain('20 or more');

    const [training] = await trainingRows();
    expect(training).toMatchObject({ kind: 'character', name: 'Mira', trigger: token, status: 'queued' });
    expect(training!.config).toMatchObject({
      characterId: mira.id,
      dataset: { images: 9, captionMode: 'wd14' },
    });

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

    // The status message in the channel and /train status speak of the character LoRA, not a style.
    const status = await fake.waitFor(
      () => fake.messages().find((m) => m.content.includes(`training \`${training!.id}\``)),
      30_000,
    );
    expect(status.content).toContain('Character LoRA for **Mira**');
    expect(status.content).not.toContain('Style');
    const statusReply = await run({
      name: 'train',
      subcommand: 'status',
      userId: fake.user('bob').id,
      options: {},
    });
    expect(statusReply.content).toContain('Character LoRA for **Mira**');
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

    // The vote message asks for the character LoRA.
    expect(voteMessageContent(await voteView(database.db, training!.id))).toContain(
      'Which checkpoint becomes the character LoRA for “Mira”?',
    );

    const result = await closeVote(database.db, store, { trainingId: training!.id, closedBy: 'test' });
    expect(result.style).toBeNull();
    expect(result.character?.name).toBe('Mira');
    const loraKey = artifactKeys.lora(evalLoraName(training!.id, 2));
    const after = await findCharacter(database.db, fake.guild.id, 'Mira');
    expect(after).toMatchObject({
      loraArtifactKey: loraKey,
      loraTrigger: token,
      loraStrength: 0.6,
      appearance: MIRA_APPEARANCE,
    });
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
    const withMira = renders.filter(({ render }) =>
      render.recipe.panel.characters.some((c) => c.name === 'Mira'),
    );
    expect(withMira.length).toBeGreaterThan(0);
    const file = loraKey.split('/').pop();
    for (const { render } of withMira) {
      expect(render.recipe.loras).toContainEqual(
        expect.objectContaining({ name: file, trigger: token, strength: 0.6, artifactKey: loraKey }),
      );
      expect(render.recipe.positive).toContain(token);
    }
  });
});
