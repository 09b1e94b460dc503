/**
 * The bot's other commands and its one error path, through the real bot against the fake Discord:
 * style autocomplete, /comic show, /comic cancel (owner or Manage Messages), /queue, /runner status,
 * bad input answered ephemerally. No runner draws here, so comics stay in the making.
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.ts';
import { updateGuildSettings } from '../src/db/guild-settings.ts';
import { comics, styles, type Comic } from '../src/db/schema.ts';
import { startPresence, type PresenceHandle } from '../src/gpu/presence.ts';
import { createLogger } from '../src/log.ts';
import { createRedisClient, type QueueConnection } from '../src/queue/index.ts';
import type { FakeDiscord, SlashCommandInput } from './fakes/discord.ts';
import { commandReply, startBotHarness, type BotHarness } from './helpers/bot.ts';

const silent = createLogger({ level: 'silent' });
let harness: BotHarness;
let database: Database;
let fake: FakeDiscord;
let connection: QueueConnection;

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'bot-commands',
    discord: {
      guilds: [
        {
          roles: [{ name: 'mods', permissions: 1n << 13n }],
          members: [{ username: 'owner' }, { username: 'alice' }, { username: 'bob' }],
        },
      ],
    },
    bot: { statusIntervalMs: 300 },
  });
  ({ database, fake, connection } = harness);
  await updateGuildSettings(database.db, fake.guild.id, { maxInFlightPerUser: 5 });
}, 120_000);

afterAll(async () => {
  await harness?.close();
});

/** Runs a command and resolves with what the member sees: the reply's text and whether it is ephemeral. */
const run = (input: SlashCommandInput) => commandReply(fake, input);

async function newComic(username: string, prompt: string): Promise<Comic> {
  const reply = await run({
    name: 'comic',
    subcommand: 'new',
    userId: fake.user(username).id,
    options: { prompt, pages: 1, panels: 1 },
  });
  const id = /`([0-9a-f-]{36})`/.exec(reply.content)?.[1];
  if (!id) throw new Error(`no comic id in: ${reply.content}`);
  const [comic] = await database.db.select().from(comics).where(eq(comics.id, id));
  return comic!;
}

describe('the bot’s commands', () => {
  it('autocompletes style from the guild’s ready styles, filtered by what was typed', async () => {
    const base = {
      guildId: fake.guild.id,
      modelFamily: 'illustrious' as const,
      createdBy: 'x',
      trigger: 't',
    };
    await database.db.insert(styles).values([
      { ...base, name: 'Ink Wash', status: 'ready', loraArtifactKey: 'loras/ink.safetensors' },
      { ...base, name: 'Inky Noir', status: 'ready', loraArtifactKey: 'loras/noir.safetensors' },
      { ...base, name: 'Ink Draft', status: 'training' },
      { ...base, name: 'Pastel', status: 'ready', loraArtifactKey: 'loras/pastel.safetensors' },
    ]);
    const { id } = fake.sendAutocomplete({
      name: 'comic',
      subcommand: 'new',
      options: { prompt: 'x', style: 'ink' },
      focused: 'style',
    });
    const callback = await fake.waitFor(() => fake.interaction(id)?.callback);
    expect(callback.type).toBe(8);
    expect((callback.data as { choices: { name: string }[] }).choices.map((c) => c.name)).toEqual([
      'Ink Wash',
      'Inky Noir',
    ]);
  });

  it('answers bad input ephemerally, naming the problem, and queues nothing', async () => {
    const before = await database.db.select().from(comics);
    const reply = await run({ name: 'comic', subcommand: 'new', options: { prompt: '   ' } });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('prompt');
    expect(await database.db.select().from(comics)).toHaveLength(before.length);
  });

  it('shows a comic of this server, and only of this server', async () => {
    const comic = await newComic('alice', 'A heron who collects keys');
    const shown = await run({ name: 'comic', subcommand: 'show', options: { id: comic.id } });
    expect(shown.ephemeral).toBe(true);
    expect(shown.content).toContain(comic.id);
    const missing = await run({
      name: 'comic',
      subcommand: 'show',
      options: { id: '00000000-0000-4000-8000-000000000000' },
    });
    expect(missing.ephemeral).toBe(true);
    expect(missing.content).toContain('no comic');
  });

  it('lists your comics in /queue', async () => {
    const reply = await run({ name: 'queue', userId: fake.user('alice').id });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toMatch(/Render queue: \d+ waiting/);
    expect(reply.content).toContain('Your comics');
  });

  it('lets only the owner or a member with Manage Messages cancel a comic', async () => {
    const comic = await newComic('bob', 'A bakery on the moon');
    const refused = await run({
      name: 'comic',
      subcommand: 'cancel',
      userId: fake.user('alice').id,
      options: { id: comic.id },
    });
    expect(refused.ephemeral).toBe(true);
    expect(refused.content).toContain('Manage Messages');
    const cancelled = await run({
      name: 'comic',
      subcommand: 'cancel',
      userId: fake.user('bob').id,
      options: { id: comic.id },
    });
    expect(cancelled.content).toContain('cancelled');
    const [row] = await database.db.select().from(comics).where(eq(comics.id, comic.id));
    expect(row!.status).toBe('cancelled');
  });

  it('reports no runner, then a runner once its heartbeat is in Redis', async () => {
    const none = await run({ name: 'runner', subcommand: 'status' });
    expect(none.content).toContain('No runner is online');
    const redis = createRedisClient(connection, 'worker');
    let presence: PresenceHandle | undefined;
    try {
      presence = await startPresence({
        redis,
        prefix: connection.prefix,
        runnerId: 'gpu-test',
        intervalMs: 60_000,
        logger: silent,
        snapshot: async () => ({
          renderer: 'comfyui',
          description: 'ComfyUI at http://gpu:8188',
          gpu: 'NVIDIA GeForce RTX 3090',
          vramTotal: 24 * 1024 ** 3,
          vramFree: 20 * 1024 ** 3,
          checkpoints: [],
          loras: [],
          currentJobs: [],
          online: true,
          offlineReason: null,
        }),
      });
      const one = await run({ name: 'runner', subcommand: 'status' });
      expect(one.content).toContain('gpu-test');
      expect(one.content).toContain('RTX 3090');
      expect(one.content).toContain('24.0 GB');
    } finally {
      await presence?.stop();
      await redis.quit();
    }
  });
});
