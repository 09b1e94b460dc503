/**
 * `/comic new` end to end: the real bot (runBot) and GPU runner (runRunner, storyboard renderer: no
 * ComfyUI configured) against the fake Discord, real PostgreSQL and Redis, the template writer.
 * Every test uses a channel of its own, so "posted once" is a count of that channel's messages.
 */
import { PermissionFlagsBits } from 'discord.js';
import { and, eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BotHandle } from '../src/bot/bot.ts';
import type { Database } from '../src/db/client.ts';
import { updateGuildSettings } from '../src/db/guild-settings.ts';
import { comics, panels, renders, type Comic } from '../src/db/schema.ts';
import { runRunner, type RunnerHandle } from '../src/gpu/runner.ts';
import { JobProducer, QUEUE_NAMES } from '../src/queue/index.ts';
import type { FakeDiscord, FakeMessage } from './fakes/discord.ts';
import { startBotHarness, type BotHarness } from './helpers/bot.ts';
import { TEST_GEOMETRY } from './helpers/pipeline.ts';

const CHANNELS = ['comics', 'mature', 'no-files', 'rate-limited', 'restart', 'expiry'] as const;

let harness: BotHarness;
let database: Database;
let fake: FakeDiscord;
let producer: JobProducer;
let bot: BotHandle | undefined;
let runner: RunnerHandle;

function channelId(name: (typeof CHANNELS)[number]): string {
  return fake.guild.channels.find((c) => c.name === name)!.id;
}

function startBot(): Promise<BotHandle> {
  return harness.startBot();
}

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'e2e',
    discord: { guilds: [{ channels: CHANNELS.map((name) => ({ name, nsfw: name === 'mature' })) }] },
    env: () => ({ RUNNER_ID: 'gpu-e2e' }),
    bot: { statusIntervalMs: 300 },
  });
  ({ database, fake, bot } = harness);
  const { config, connection, store, logger } = harness;
  producer = new JobProducer(connection, { logger });
  runner = await runRunner(config, {
    logger,
    connection,
    store,
    handleSignals: false,
    heartbeatIntervalMs: 500,
  });
}, 120_000);

afterAll(async () => {
  await runner?.stop();
  await producer?.close();
  await harness?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Until no queue holds work that is waiting, running, delayed or waiting for children. */
async function settled(): Promise<void> {
  for (;;) {
    let busy = 0;
    for (const name of QUEUE_NAMES) {
      const counts = await producer
        .queue(name)
        .getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
      busy += Object.values(counts).reduce((a, b) => a + b, 0);
    }
    if (busy === 0) return;
    await sleep(50);
  }
}

async function latestComicIn(channel: string): Promise<Comic | undefined> {
  const rows = await database.db.select().from(comics).where(eq(comics.channelId, channel));
  return rows.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0];
}

/** The channel's newest comic once it is finished (`except`: an earlier comic to wait past). */
async function comicDone(channel: string, except?: string): Promise<Comic> {
  for (;;) {
    const comic = await latestComicIn(channel);
    if (comic && comic.id !== except && ['done', 'failed', 'cancelled'].includes(comic.status)) {
      await settled();
      return (await latestComicIn(channel))!;
    }
    await sleep(50);
  }
}

/** The bot's own channel messages (not the interaction's reply). */
function botMessages(channel: string): FakeMessage[] {
  return fake
    .messages(channel)
    .filter((m) => m.author.id === fake.botUser.id && m.interactionId === null && !m.webhookId);
}

const panelMessages = (channel: string) =>
  botMessages(channel).filter((m) => /^Page \d+ · panel \d+/.test(m.content));
const pageMessages = (channel: string) =>
  botMessages(channel).filter((m) => /— page \d+ of \d+/.test(m.content));
const storyboardMessages = (channel: string) =>
  botMessages(channel).filter((m) => m.content.includes('storyboard'));
const statusMessages = (channel: string) =>
  botMessages(channel).filter((m) => m.content.includes('· comic `'));

/** The finished comic is in the channel exactly once: storyboard, status, every panel with 🔁, every page. */
async function expectCompleteComic(channel: string, comic: Comic, shape: { pages: number; panels: number }) {
  expect(comic.status).toBe('done');
  expect(storyboardMessages(channel)).toHaveLength(1);
  expect(storyboardMessages(channel)[0]!.attachments).toHaveLength(shape.pages);

  const panelsPosted = panelMessages(channel);
  expect(panelsPosted).toHaveLength(shape.pages * shape.panels);
  for (const message of panelsPosted) {
    expect(message.attachments).toHaveLength(1);
    const reroll = message.reactions.find((r) => r.emoji.name === '🔁');
    expect(reroll?.userIds).toContain(fake.botUser.id);
  }
  const rows = await database.db.select().from(panels).where(eq(panels.comicId, comic.id));
  expect(rows.map((r) => r.discordMessageId).sort()).toEqual(panelsPosted.map((m) => m.id).sort());

  const pagesPosted = pageMessages(channel);
  expect(pagesPosted).toHaveLength(shape.pages);
  for (const message of pagesPosted) {
    expect(message.attachments).toHaveLength(1);
    const meta = await sharp(message.attachments[0]!.bytes).metadata();
    expect([meta.width, meta.height]).toEqual([TEST_GEOMETRY.width, TEST_GEOMETRY.height]);
  }

  const status = statusMessages(channel);
  expect(status).toHaveLength(1);
  expect(status[0]!.content).toContain('✅ Done');
  expect(comic.statusMessageId).toBe(status[0]!.id);
  expect(botMessages(channel)).toHaveLength(1 + 1 + shape.pages * shape.panels + shape.pages);
}

describe('/comic new end to end', () => {
  it('defers, posts the storyboard, edits one status message, posts every panel with 🔁 and every page', async () => {
    const channel = channelId('comics');
    const { id } = fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('alice').id,
      options: { prompt: 'A cat who runs a lighthouse', pages: 1, panels: 2 },
    });
    const comic = await comicDone(channel);
    const interaction = fake.interaction(id)!;
    expect(interaction.callback?.type).toBe(5);
    expect(interaction.original?.content).toContain(comic.id);
    expect(interaction.original?.content).toContain('kept safe');
    await expectCompleteComic(channel, comic, { pages: 1, panels: 2 });
    expect(statusMessages(channel)[0]!.edits).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('keeps renders safe in an age-restricted channel unless the guild allows mature output there', async () => {
    const channel = channelId('mature');
    const first = fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('carol').id,
      options: { prompt: 'A quiet library', pages: 1, panels: 1 },
    });
    const safeComic = await comicDone(channel);
    expect((safeComic.options as { safe?: boolean }).safe ?? true).toBe(true);
    // The guild's default policy blocks unrestricted output everywhere.
    expect(fake.interaction(first.id)!.original?.content).toContain('kept safe');

    await updateGuildSettings(database.db, fake.guild.id, { nsfwPolicy: 'nsfw_channels_only' });
    const { id } = fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('carol').id,
      options: { prompt: 'A night market', pages: 1, panels: 1 },
    });
    const comic = await comicDone(channel, safeComic.id);
    expect(comic.status).toBe('done');
    expect(fake.interaction(id)!.original?.content).not.toContain('kept safe');
    expect((comic.options as { safe?: boolean }).safe).toBe(false);
    await updateGuildSettings(database.db, fake.guild.id, { nsfwPolicy: 'block' });
  }, 120_000);

  it('re-rolls a panel once when three members react 🔁 five times quickly', async () => {
    const channel = channelId('comics');
    const [panelMessage] = panelMessages(channel);
    const pageMessage = pageMessages(channel)[0]!;
    const before = { panel: panelMessage!.edits, page: pageMessage.edits };
    const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((u) => fake.user(u).id);
    const react = (userId: string) =>
      fake.addReaction({ channelId: channel, messageId: panelMessage!.id, userId, emoji: '🔁' });
    react(alice!);
    react(bob!);
    react(carol!);
    fake.removeReaction({ channelId: channel, messageId: panelMessage!.id, userId: alice!, emoji: '🔁' });
    react(alice!);
    fake.removeReaction({ channelId: channel, messageId: panelMessage!.id, userId: bob!, emoji: '🔁' });
    react(bob!);

    await fake.waitFor(() => fake.message(pageMessage.id)!.edits > before.page, 60_000);
    await settled();
    expect(fake.message(panelMessage!.id)!.edits).toBe(before.panel + 1);
    expect(fake.message(pageMessage.id)!.edits).toBe(before.page + 1);
    expect(fake.message(panelMessage!.id)!.content).toContain('take 2');
    const [panel] = await database.db
      .select()
      .from(panels)
      .where(eq(panels.discordMessageId, panelMessage!.id));
    const panelRenders = await database.db.select().from(renders).where(eq(renders.panelId, panel!.id));
    expect(panelRenders.map((r) => r.attempt).sort()).toEqual([0, 1]);
    // Nothing new was posted: the re-roll edits the messages it replaces.
    expect(panelMessages(channel)).toHaveLength(2);
    expect(pageMessages(channel)).toHaveLength(1);
  }, 120_000);

  it('refuses with a clear ephemeral reply and queues nothing when the bot cannot attach files', async () => {
    const channel = channelId('no-files');
    fake.denyBot(channel, PermissionFlagsBits.AttachFiles);
    const { id } = fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('bob').id,
      options: { prompt: 'A dragon at the dentist' },
    });
    const callback = await fake.waitFor(() => fake.interaction(id)?.callback);
    expect(callback.type).toBe(4);
    const data = callback.data as { content: string; flags: number };
    expect(data.content).toContain('Attach Files');
    expect(data.flags & 64).toBe(64);
    await settled();
    expect(await latestComicIn(channel)).toBeUndefined();
    expect(fake.messages(channel)).toHaveLength(0);
  }, 60_000);

  it('retries channel posts Discord answers with 429, losing and doubling nothing', async () => {
    const channel = channelId('rate-limited');
    fake.rateLimit(
      { method: 'POST', path: `/channels/${channel}/messages` },
      { times: 2, retryAfterSeconds: 0.3 },
    );
    fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('owner').id,
      options: { prompt: 'Two robots learn to dance', pages: 1, panels: 2 },
    });
    const comic = await comicDone(channel);
    expect(
      fake.requests({ method: 'POST', path: `/channels/${channel}/messages`, status: 429 }),
    ).toHaveLength(2);
    await expectCompleteComic(channel, comic, { pages: 1, panels: 2 });
  }, 120_000);

  it('finishes a comic after the bot is stopped mid-comic and started again, each message posted once', async () => {
    const channel = channelId('restart');
    fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('bob').id,
      options: { prompt: 'A snail enters a race', pages: 2, panels: 2 },
    });
    await fake.waitFor(() => storyboardMessages(channel).length > 0, 60_000);
    await bot!.stop();
    bot = undefined;
    // The runner keeps drawing while the bot is away; its post jobs wait in the queue.
    await sleep(300);
    bot = await startBot();
    const comic = await comicDone(channel);
    await expectCompleteComic(channel, comic, { pages: 2, panels: 2 });
  }, 180_000);

  it('finishes through channel messages after the interaction token expired', async () => {
    const channel = channelId('expiry');
    const { id } = fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId: channel,
      userId: fake.user('carol').id,
      options: { prompt: 'A lighthouse keeper’s last night', pages: 1, panels: 2 },
    });
    await fake.waitFor(() => fake.interaction(id)?.original?.content.includes('on its way'), 60_000);
    fake.expireInteraction(id);
    const comic = await comicDone(channel);
    await expectCompleteComic(channel, comic, { pages: 1, panels: 2 });
    const token = fake.interaction(id)!.token;
    expect(fake.requests({ path: new RegExp(token), status: 401 })).toHaveLength(0);
    const done = await database.db
      .select()
      .from(comics)
      .where(and(eq(comics.id, comic.id), eq(comics.status, 'done')));
    expect(done).toHaveLength(1);
  }, 120_000);
});
