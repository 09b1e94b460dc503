/**
 * The cast through the real bot against the fake Discord: /character create (with a reference image
 * attached), list, show, edit (owner or moderator only, LoRA with trigger), delete; a name taken in
 * another case is refused; hostile reference images (text named .png, a pixel bomb) are refused with
 * the dataset checks' reasons and leave nothing behind.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.ts';
import { characters } from '../src/db/schema.ts';
import type { ArtifactStore } from '../src/store/artifact-store.ts';
import type { FakeDiscord, SlashCommandInput } from './fakes/discord.ts';
import { pixelBombPng } from './fixtures/dataset/build.ts';
import { commandReply, startBotHarness, type BotHarness } from './helpers/bot.ts';

let harness: BotHarness;
let database: Database;
let fake: FakeDiscord;
let store: ArtifactStore;

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'character-commands',
    discord: {
      guilds: [
        {
          roles: [{ id: '700000000000000001', name: 'mods', permissions: 1n << 13n }],
          members: [
            { username: 'owner' },
            { username: 'alice' },
            { username: 'bob' },
            { username: 'mod', roles: ['700000000000000001'] },
          ],
        },
      ],
    },
    bot: { cpuWorkers: false },
  });
  ({ database, fake, store } = harness);
}, 120_000);

afterAll(async () => {
  await harness?.close();
});

/** Runs a command and resolves with what the member sees: the reply's text and whether it is ephemeral. */
const run = (input: SlashCommandInput) => commandReply(fake, input);

const as = (username: string) => fake.user(username).id;
const photo = () =>
  sharp({ create: { width: 600, height: 800, channels: 3, background: '#2a6fdb' } })
    .jpeg()
    .toBuffer();

describe('/character', () => {
  it('creates, lists, shows, edits and deletes a character', async () => {
    const created = await run({
      name: 'character',
      subcommand: 'create',
      userId: as('alice'),
      options: { name: 'Mira', appearance: 'Short red hair,  green eyes, yellow raincoat, green eyes' },
      attachments: { image1: { filename: 'mira.jpg', bytes: await photo(), contentType: 'image/jpeg' } },
    });
    expect(created.content).toContain(
      '**Mira** joined the cast: short red hair, green eyes, yellow raincoat.',
    );
    expect(created.content).toContain('1 reference image');

    const [row] = await database.db.select().from(characters);
    expect(row).toMatchObject({
      name: 'Mira',
      appearance: ['short red hair', 'green eyes', 'yellow raincoat'],
      ownerId: as('alice'),
    });
    expect(row!.referenceImageKeys).toHaveLength(1);
    // Stored upright as a PNG no larger than the IPAdapter needs.
    const stored = await sharp(await store.getBuffer(row!.referenceImageKeys[0]!)).metadata();
    expect(stored).toMatchObject({ format: 'png', width: 600, height: 800 });

    const taken = await run({
      name: 'character',
      subcommand: 'create',
      userId: as('bob'),
      options: { name: 'MIRA', appearance: 'tall' },
    });
    expect(taken.ephemeral).toBe(true);
    expect(taken.content).toContain('already a character called “MIRA”');

    await run({
      name: 'character',
      subcommand: 'create',
      userId: as('bob'),
      options: { name: 'Oskar', appearance: 'old man, grey beard' },
    });
    const list = await run({ name: 'character', subcommand: 'list' });
    expect(list.ephemeral).toBe(true);
    expect(list.content).toMatch(
      /The cast \(2\):\n• \*\*Mira\*\* — short red hair, green eyes, yellow raincoat · 1 🖼️\n• \*\*Oskar\*\* — old man, grey beard/,
    );

    const shown = await run({ name: 'character', subcommand: 'show', options: { name: 'mira' } });
    expect(shown.content).toContain('Appearance: short red hair, green eyes, yellow raincoat');
    expect(shown.content).toContain('LoRA: none');

    const notYours = await run({
      name: 'character',
      subcommand: 'edit',
      userId: as('bob'),
      options: { name: 'Mira', appearance: 'blue hair' },
    });
    expect(notYours.ephemeral).toBe(true);
    expect(notYours.content).toContain('Only the member who created Mira');

    const noTrigger = await run({
      name: 'character',
      subcommand: 'edit',
      userId: as('alice'),
      options: { name: 'Mira', lora: 'mira_v1.safetensors' },
    });
    expect(noTrigger.content).toContain('`trigger`');

    const edited = await run({
      name: 'character',
      subcommand: 'edit',
      userId: as('alice'),
      options: { name: 'Mira', lora: 'mira_v1.safetensors', trigger: 'mira_rr', strength: 0.7 },
    });
    expect(edited.content).toContain('LoRA: `mira_v1.safetensors` (trigger “mira_rr”, strength 0.7)');

    const byMod = await run({
      name: 'character',
      subcommand: 'edit',
      userId: as('mod'),
      options: { name: 'Mira', appearance: 'short red hair, freckles' },
    });
    expect(byMod.content).toContain('**Mira** is updated: short red hair, freckles.');

    const refused = await run({
      name: 'character',
      subcommand: 'delete',
      userId: as('bob'),
      options: { name: 'Mira' },
    });
    expect(refused.content).toContain('Only the member who created Mira');
    const deleted = await run({
      name: 'character',
      subcommand: 'delete',
      userId: as('alice'),
      options: { name: 'Mira' },
    });
    expect(deleted.content).toContain('**Mira** left the cast');
    expect((await database.db.select().from(characters)).map((c) => c.name)).toEqual(['Oskar']);
    expect(await store.list(`characters/${fake.guild.id}/${row!.id}/`)).toEqual([]);
  });

  it('refuses hostile reference images with the dataset checks’ reasons, and keeps nothing', async () => {
    const textAsPng = await run({
      name: 'character',
      subcommand: 'create',
      userId: as('bob'),
      options: { name: 'Pip', appearance: 'small round robot' },
      attachments: {
        image1: {
          filename: 'pip.png',
          bytes: Buffer.from('this is a shopping list, not a photo\n'),
          contentType: 'image/png',
        },
      },
    });
    expect(textAsPng.content).toContain("“pip.png” can't be a reference image: not an image (text)");

    const bomb = await run({
      name: 'character',
      subcommand: 'create',
      userId: as('bob'),
      options: { name: 'Pip', appearance: 'small round robot' },
      attachments: {
        image1: { filename: 'ok.jpg', bytes: await photo(), contentType: 'image/jpeg' },
        image2: { filename: 'huge.png', bytes: pixelBombPng(40000, 40000), contentType: 'image/png' },
      },
    });
    expect(bomb.content).toContain(
      "“huge.png” can't be a reference image: 40000×40000 pixels is over the 50 MP limit",
    );

    const rows = await database.db.select().from(characters);
    expect(rows.some((c) => c.name === 'Pip')).toBe(false);
    expect((await store.list('characters/')).filter((k) => !rows.some((r) => k.includes(r.id)))).toEqual([]);
  });

  it('refuses appearance that is not short tags', async () => {
    const reply = await run({
      name: 'character',
      subcommand: 'create',
      options: { name: 'Vex', appearance: Array.from({ length: 13 }, (_, i) => `tag ${i}`).join(', ') },
    });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('at most 12 appearance tags');
  });
});
