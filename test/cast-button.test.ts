/**
 * "Save to cast" through the real bot against the fake Discord, with real PostgreSQL and Redis: the
 * storyboard message carries one button per character the script invented (not for guild characters
 * already in the cast); a click creates the guild character with the script's appearance, owned by the
 * member who clicked; a second click changes nothing and says so. The buttons' ids carry the comic and
 * the cast index only, so they work for whoever clicks them after a restart.
 */
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComicScript } from '../src/agents/script-schema.ts';
import type { BotHandle } from '../src/bot/bot.ts';
import { createCharacter, findCharacter, listCharacters } from '../src/characters/repository.ts';
import type { Database } from '../src/db/client.ts';
import { createComic, setComicScript } from '../src/db/comics.ts';
import { comics } from '../src/db/schema.ts';
import type { ArtifactStore } from '../src/store/index.ts';
import { artifactKeys } from '../src/store/keys.ts';
import type { FakeDiscord } from './fakes/discord.ts';
import { scriptFor, type ChatRequest } from './fakes/openai.ts';
import { startBotHarness, type BotHarness } from './helpers/bot.ts';

let harness: BotHarness;
let database: Database;
let fake: FakeDiscord;
let store: ArtifactStore;
let bot: BotHandle;

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'cast-button',
    discord: { guilds: [{ members: [{ username: 'owner' }, { username: 'alice' }, { username: 'bob' }] }] },
    bot: { statusIntervalMs: 200, cpuWorkers: false },
  });
  ({ database, fake, store, bot } = harness);
}, 120_000);

afterAll(async () => {
  await harness?.close();
});

const CAST = [
  {
    name: 'Mira',
    role: 'recurring character from the server cast',
    appearance: ['short red hair', 'yellow raincoat'],
  },
  { name: 'Captain Oru', role: 'the harbour master', appearance: ['Grey Beard', 'navy peacoat', 'pipe'] },
  { name: 'Pell', role: 'a cat', appearance: ['ginger cat', 'torn ear'] },
];

/** A comic whose script has Mira (a guild character) and two characters the script agent invented. */
async function comicWithStoryboard(): Promise<string> {
  const request = {
    model: 'fake',
    messages: [
      { role: 'system', content: 'Write exactly 1 page with exactly 2 panels.' },
      { role: 'user', content: `<cast>${JSON.stringify(CAST)}</cast>` },
    ],
  } as unknown as ChatRequest;
  const script = ComicScript.parse(scriptFor(request, { title: 'Harbour Night' }));
  const comic = await createComic(database.db, {
    guildId: fake.guild.id,
    channelId: fake.channelId,
    userId: fake.user('owner').id,
    prompt: 'Mira meets the harbour master and his cat.',
    options: { pages: 1, panelsPerPage: 2, style: null, modelFamily: 'illustrious', rtl: false },
  });
  await setComicScript(database.db, comic.id, script, 'llm');
  const page = await sharp({ create: { width: 60, height: 90, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  await store.put(artifactKeys.storyboardPage(comic.id, 1), page);
  await bot.deps.producer.enqueue('post', { kind: 'storyboard', comicId: comic.id });
  return comic.id;
}

interface PostedButton {
  custom_id: string;
  label: string;
}

/** Clicks a button and resolves with the bot's (ephemeral) answer. */
async function click(
  messageId: string,
  customId: string,
  user: string,
): Promise<{ content: string; ephemeral: boolean }> {
  const { id } = fake.clickButton({ messageId, customId, userId: fake.user(user).id });
  return fake.waitFor(() => {
    const callback = fake.interaction(id)?.callback;
    if (callback?.type !== 4) return undefined;
    const data = callback.data as { content?: string; flags?: number };
    return { content: data.content ?? '', ephemeral: ((data.flags ?? 0) & 64) === 64 };
  }, 30_000);
}

describe('Save to cast', () => {
  it('offers a button per invented character and saves it once, owned by the member who clicked', async () => {
    await createCharacter(database.db, {
      guildId: fake.guild.id,
      name: 'Mira',
      appearance: ['short red hair', 'yellow raincoat'],
      ownerId: 'someone',
    });
    const comicId = await comicWithStoryboard();
    const message = await fake.waitFor(
      () => fake.messages().find((m) => m.content.includes('Harbour Night') && m.components.length > 0),
      30_000,
    );
    const buttons = (message.components as { components: PostedButton[] }[]).flatMap((row) => row.components);
    // Mira is already in the cast: buttons only for Captain Oru (cast index 1) and Pell (2).
    expect(buttons.map((b) => b.label)).toEqual(['Save Captain Oru to cast', 'Save Pell to cast']);
    expect(buttons.map((b) => b.custom_id)).toEqual([`cast:${comicId}:1`, `cast:${comicId}:2`]);
    for (const b of buttons) expect(b.custom_id.length).toBeLessThanOrEqual(100);

    const first = await click(message.id, `cast:${comicId}:1`, 'alice');
    expect(first.ephemeral).toBe(true);
    expect(first.content).toContain('**Captain Oru** is in the cast now');
    const oru = await findCharacter(database.db, fake.guild.id, 'captain oru');
    expect(oru).toMatchObject({
      name: 'Captain Oru',
      appearance: ['grey beard', 'navy peacoat', 'pipe'],
      ownerId: fake.user('alice').id,
    });

    const second = await click(message.id, `cast:${comicId}:1`, 'bob');
    expect(second.ephemeral).toBe(true);
    expect(second.content).toContain('**Captain Oru** is already in this server');
    const cast = await listCharacters(database.db, fake.guild.id);
    expect(cast.map((c) => c.name)).toEqual(['Captain Oru', 'Mira']);
    expect(cast.find((c) => c.name === 'Captain Oru')?.ownerId).toBe(fake.user('alice').id);
  });

  it('answers a button of a comic that no longer exists without creating anything', async () => {
    const message = fake.messages().find((m) => m.components.length > 0)!;
    const buttons = (message.components as { components: PostedButton[] }[]).flatMap((row) => row.components);
    const comicId = buttons[0]!.custom_id.split(':')[1]!;
    await database.db.delete(comics).where(eq(comics.id, comicId));
    const reply = await click(message.id, buttons[1]!.custom_id, 'bob');
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('That comic is gone');
    expect(await findCharacter(database.db, fake.guild.id, 'Pell')).toBeNull();
  });
});
