/**
 * The real discord.js client against the fake Discord (test/fakes/discord.ts): login, slash commands,
 * interaction replies, uploads, reactions with partials, 429 retries, permissions, registration.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import {
  ChannelType,
  DiscordAPIError,
  Events,
  PermissionFlagsBits,
  type ChatInputCommandInteraction,
  type Client,
  type ClientEvents,
  type Interaction,
  type TextChannel,
} from 'discord.js';
import { startFakeDiscord, type FakeDiscord } from './fakes/discord.ts';
import { connectDiscordClient, createDiscordClient } from '../src/bot/client.ts';
import { missingChannelPermissions, missingFromPermissions } from '../src/bot/permissions.ts';
import { registerCommands } from '../src/bot/register-commands.ts';
import { createLogger } from '../src/log.ts';
import { UpstreamError } from '../src/errors.ts';
import { ComicNewOptions, commandBodies, optionValues, parseOptions } from '../src/commands/index.ts';

const silent = createLogger({ level: 'silent' });

let fake: FakeDiscord;
let client: Client<true>;

/** Resolves with the first emission of `event` whose arguments pass `accept`. */
function nextEvent<E extends keyof ClientEvents>(
  event: E,
  accept: (...args: ClientEvents[E]) => boolean = () => true,
): Promise<ClientEvents[E]> {
  return new Promise((resolve) => {
    const listener = (...args: ClientEvents[E]) => {
      if (!accept(...args)) return;
      client.off(event, listener);
      resolve(args);
    };
    client.on(event, listener);
  });
}

function textChannel(name: string): TextChannel {
  const id = fake.guild.channels.find((c) => c.name === name)!.id;
  const channel = client.channels.cache.get(id);
  if (channel?.type !== ChannelType.GuildText) throw new Error(`channel ${name} not cached as text`);
  return channel;
}

async function receiveCommand(send: () => { id: string }): Promise<ChatInputCommandInteraction> {
  const arrived = nextEvent(Events.InteractionCreate);
  const { id } = send();
  const [interaction] = (await arrived) as [Interaction];
  expect(interaction.id).toBe(id);
  if (!interaction.isChatInputCommand()) throw new Error('expected a chat input command');
  return interaction;
}

beforeAll(async () => {
  fake = await startFakeDiscord({
    guilds: [{ channels: [{ name: 'comics' }, { name: 'mature', nsfw: true }, { name: 'no-files' }] }],
  });
  const c = createDiscordClient({ DISCORD_API_URL: fake.restUrl }, silent);
  client = await connectDiscordClient(c, { DISCORD_TOKEN: fake.token });
});

afterAll(async () => {
  await client?.destroy();
  await fake?.close();
});

describe('logging in to the fake Discord', () => {
  it('becomes ready as the bot user with the guild, its channels and the bot member cached', () => {
    expect(client.user.id).toBe(fake.botUser.id);
    expect(client.application.id).toBe(fake.applicationId);
    const guild = client.guilds.cache.get(fake.guild.id);
    expect(guild?.name).toBe('Comic Club');
    expect(guild?.channels.cache.map((c) => c.name).sort()).toEqual(['comics', 'mature', 'no-files']);
    expect(guild?.members.me?.id).toBe(fake.botUser.id);
    expect(textChannel('mature').nsfw).toBe(true);
  });

  it('identifies with only the Guilds and GuildMessageReactions intents and no compression', () => {
    expect(fake.identifies).toHaveLength(1);
    expect(fake.identifies[0]).toMatchObject({ intents: (1 << 0) | (1 << 10), compress: false });
  });

  it('refuses a wrong token with a typed error', async () => {
    const other = createDiscordClient({ DISCORD_API_URL: fake.restUrl }, silent);
    try {
      await expect(connectDiscordClient(other, { DISCORD_TOKEN: 'not-the-token' })).rejects.toBeInstanceOf(
        UpstreamError,
      );
    } finally {
      await other.destroy();
    }
  });
});

describe('slash commands', () => {
  it('arrive as ChatInputCommandInteraction with their subcommand and typed options', async () => {
    await registerCommands(
      { DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.restUrl, DISCORD_GUILD_ID: fake.guild.id },
      silent,
    );
    const interaction = await receiveCommand(() =>
      fake.sendSlashCommand({
        name: 'comic',
        subcommand: 'new',
        userId: fake.user('alice').id,
        options: { prompt: 'a cat', pages: 2, rtl: true },
      }),
    );
    expect(interaction.commandName).toBe('comic');
    expect(interaction.options.getSubcommand()).toBe('new');
    expect(interaction.options.getString('prompt')).toBe('a cat');
    expect(interaction.options.getInteger('pages')).toBe(2);
    expect(interaction.options.getBoolean('rtl')).toBe(true);
    expect(interaction.user.username).toBe('alice');
    expect(interaction.channelId).toBe(fake.channelId);
    expect(interaction.attachmentSizeLimit).toBe(10 * 1024 * 1024);
    expect(parseOptions(ComicNewOptions, optionValues(interaction), 'comic new')).toEqual({
      prompt: 'a cat',
      pages: 2,
      rtl: true,
    });
    await interaction.reply({ content: 'ok', flags: 64 });
  });

  it('deferReply then editReply reach the fake as the deferred callback and the edited original', async () => {
    const interaction = await receiveCommand(() => fake.sendSlashCommand({ name: 'queue' }));
    await interaction.deferReply();
    expect(fake.interaction(interaction.id)?.callback?.type).toBe(5);
    expect(fake.interaction(interaction.id)?.original?.flags).toBe(1 << 7); // "thinking…"

    const edited = await interaction.editReply('Storyboard is on its way');
    expect(edited.content).toBe('Storyboard is on its way');
    const state = fake.interaction(interaction.id);
    expect(state?.original?.content).toBe('Storyboard is on its way');
    expect(state?.original?.flags).toBe(0);
    expect(fake.messages().at(-1)?.id).toBe(state?.original?.id);
    expect(
      fake.requests({
        method: 'PATCH',
        path: `/webhooks/${fake.applicationId}/${interaction.token}/messages/@original`,
      }),
    ).toHaveLength(1);
  });

  it('a second callback for one interaction is refused like Discord does (40060)', async () => {
    const { id, token } = fake.sendSlashCommand({ name: 'queue' });
    const callback = (type: number) =>
      fetch(`${fake.restUrl}/v10/interactions/${id}/${token}/callback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type, data: { content: 'hi' } }),
      });
    expect((await callback(4)).status).toBe(204);
    const second = await callback(4);
    expect(second.status).toBe(400);
    expect(await second.json()).toMatchObject({ code: 40060 });
  });

  it('autocomplete arrives with the focused option and the bot answers with choices', async () => {
    const arrived = nextEvent(Events.InteractionCreate);
    const { id } = fake.sendAutocomplete({
      name: 'comic',
      subcommand: 'new',
      options: { prompt: 'x', style: 'noi' },
      focused: 'style',
    });
    const [interaction] = (await arrived) as [Interaction];
    if (!interaction.isAutocomplete()) throw new Error('expected autocomplete');
    expect(interaction.options.getFocused(true)).toMatchObject({ name: 'style', value: 'noi' });
    await interaction.respond([{ name: 'Noir', value: 'noir' }]);
    expect(fake.interaction(id)?.callback).toEqual({
      type: 8,
      data: { choices: [{ name: 'Noir', value: 'noir' }] },
    });
  });
});

describe('interaction lifetime', () => {
  it('ephemeral replies and follow-ups belong to the interaction, not to the channel history', async () => {
    const before = fake.messages().length;
    const interaction = await receiveCommand(() => fake.sendSlashCommand({ name: 'queue' }));
    await interaction.reply({ content: 'only you can see this', flags: 64 });
    await interaction.followUp({ content: 'a public follow-up' });
    const state = fake.interaction(interaction.id);
    expect(state?.original?.content).toBe('only you can see this');
    expect(state?.followups.map((m) => m.content)).toEqual(['a public follow-up']);
    expect(
      fake
        .messages()
        .slice(before)
        .map((m) => m.content),
    ).toEqual(['a public follow-up']);
  });

  it('a reply with a file goes to the callback as multipart and is stored with the original', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#0000ff' } })
      .png()
      .toBuffer();
    const interaction = await receiveCommand(() => fake.sendSlashCommand({ name: 'queue' }));
    await interaction.reply({ content: 'storyboard', files: [{ attachment: png, name: 'storyboard.png' }] });
    const original = fake.interaction(interaction.id)?.original;
    expect(original?.attachments.map((a) => a.bytes.equals(png))).toEqual([true]);
    expect(
      fake.requests({
        method: 'POST',
        path: `/interactions/${interaction.id}/${interaction.token}/callback`,
      })[0]?.files,
    ).toHaveLength(1);
  });

  it('a callback after the 3 s deadline is an unknown interaction (10062)', async () => {
    const strict = await startFakeDiscord({ interactionDeadlineMs: 20 });
    try {
      const { id, token } = strict.sendSlashCommand({ name: 'queue' });
      await new Promise((resolve) => setTimeout(resolve, 60));
      const response = await fetch(`${strict.restUrl}/v10/interactions/${id}/${token}/callback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 5 }),
      });
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ code: 10062 });
    } finally {
      await strict.close();
    }
  });

  it('after the token expires, editReply fails with 50027 while channel messages still work', async () => {
    const interaction = await receiveCommand(() => fake.sendSlashCommand({ name: 'queue' }));
    await interaction.deferReply();
    fake.expireInteraction(interaction.id);
    const error = await interaction.editReply('too late').catch((e: unknown) => e);
    expect((error as DiscordAPIError).code).toBe(50027);
    await textChannel('comics').send('posted with the bot token');
    expect(fake.messages().at(-1)?.content).toBe('posted with the bot token');
  });

  it('events sent while the gateway connection is down are replayed on RESUME', async () => {
    const channel = textChannel('comics');
    const message = await channel.send('Panel 4');
    const arrived = nextEvent(Events.MessageReactionAdd, (reaction) => reaction.message.id === message.id);
    const resumesBefore = fake.resumes.length;
    fake.dropGatewayConnections();
    fake.addReaction({ messageId: message.id, userId: fake.user('carol').id, emoji: '🔁' });
    const [, user] = await arrived;
    expect(user.id).toBe(fake.user('carol').id);
    expect(fake.resumes.length).toBe(resumesBefore + 1);
    expect(fake.identifies).toHaveLength(1); // resumed, not re-identified (the wrong token never got past GET /gateway/bot)
  });
});

describe('channel messages', () => {
  it('a PNG sent as multipart is stored with its bytes and size', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#ff0000' } })
      .png()
      .toBuffer();
    const sent = await textChannel('comics').send({
      content: 'Panel 1',
      files: [{ attachment: png, name: 'panel-1.png' }],
    });
    const stored = fake.message(sent.id);
    expect(stored?.content).toBe('Panel 1');
    expect(stored?.attachments).toHaveLength(1);
    expect(stored?.attachments[0]?.filename).toBe('panel-1.png');
    expect(stored?.attachments[0]?.bytes.equals(png)).toBe(true);
    expect(sent.attachments.first()?.size).toBe(png.length);
    const request = fake.requests({ method: 'POST', path: `/channels/${fake.channelId}/messages` }).at(-1);
    expect(request?.files.map((f) => f.field)).toEqual(['files[0]']);

    // Editing with a new file replaces the image, as a re-roll does.
    const replacement = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#00ff00' } })
      .png()
      .toBuffer();
    await sent.edit({ files: [{ attachment: replacement, name: 'panel-1.png' }] });
    expect(fake.message(sent.id)?.attachments.map((a) => a.size)).toEqual([replacement.length]);

    // Listing an existing attachment keeps it next to a new upload. (force: without the GuildMessages
    // intent the cached message is stale after an edit, and Discord refuses a replaced attachment id.)
    const edited = await textChannel('comics').messages.fetch({ message: sent.id, force: true });
    await edited.edit({
      attachments: [...edited.attachments.values()],
      files: [{ attachment: png, name: 'panel-1b.png' }],
    });
    expect(
      fake
        .message(sent.id)
        ?.attachments.map((a) => a.filename)
        .sort(),
    ).toEqual(['panel-1.png', 'panel-1b.png']);
  });

  it('a file over the upload limit is refused with 413 / 40005', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1);
    const error = await textChannel('comics')
      .send({ files: [{ attachment: big, name: 'big.png' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect((error as DiscordAPIError).code).toBe(40005);
    expect((error as DiscordAPIError).status).toBe(413);
  });

  it('a 429 with retry-after is waited out and the message is posted exactly once', async () => {
    fake.rateLimit(
      { method: 'POST', path: `/channels/${fake.channelId}/messages` },
      { times: 1, retryAfterSeconds: 0.2 },
    );
    await textChannel('comics').send('after the rate limit');
    expect(fake.messages().filter((m) => m.content === 'after the rate limit')).toHaveLength(1);
    const attempts = fake
      .requests({ method: 'POST', path: `/channels/${fake.channelId}/messages` })
      .slice(-2);
    expect(attempts.map((r) => r.status)).toEqual([429, 200]);
  });
});

describe('reactions', () => {
  it("the bot's own reaction comes back as messageReactionAdd from the bot user", async () => {
    const message = await textChannel('comics').send('Panel 2');
    const own = nextEvent(Events.MessageReactionAdd, (reaction) => reaction.message.id === message.id);
    await message.react('🔁');
    const [, user] = await own;
    expect(user.id).toBe(client.user.id);
    expect(fake.message(message.id)?.reactions).toEqual([
      { emoji: { id: null, name: '🔁' }, userIds: [fake.botUser.id] },
    ]);
  });

  it("a member's reaction on an uncached message arrives as a partial", async () => {
    const channel = textChannel('comics');
    const message = await channel.send('Panel 3');
    channel.messages.cache.delete(message.id);
    const arrived = nextEvent(Events.MessageReactionAdd, (reaction) => reaction.message.id === message.id);
    fake.addReaction({ messageId: message.id, userId: fake.user('bob').id, emoji: '🔁' });
    const [reaction, user] = await arrived;
    expect(reaction.message.partial).toBe(true);
    expect(reaction.emoji.name).toBe('🔁');
    expect(user.id).toBe(fake.user('bob').id);
    const fetched = await reaction.message.fetch();
    expect(fetched.content).toBe('Panel 3');
  });
});

describe('permissions', () => {
  it('missing Attach Files in a channel is named, and the fake refuses uploads there with 50013', async () => {
    const channel = textChannel('no-files');
    const updated = nextEvent(Events.ChannelUpdate, (_old, now) => now.id === channel.id);
    fake.denyBot(channel.id, PermissionFlagsBits.AttachFiles);
    await updated;
    const me = channel.guild.members.me!;
    expect(missingChannelPermissions(channel, me)).toEqual(['Attach Files']);
    expect(missingChannelPermissions(textChannel('comics'), me)).toEqual([]);

    const interaction = await receiveCommand(() =>
      fake.sendSlashCommand({
        name: 'comic',
        subcommand: 'new',
        channelId: channel.id,
        options: { prompt: 'a dog' },
      }),
    );
    expect(missingFromPermissions(interaction.appPermissions)).toEqual(['Attach Files']);
    await interaction.reply({ content: 'no', flags: 64 });

    const error = await channel
      .send({ files: [{ attachment: Buffer.from('x'), name: 'x.png' }] })
      .catch((e: unknown) => e);
    expect((error as DiscordAPIError).code).toBe(50013);
  });
});

describe('registerCommands', () => {
  it('the fake refuses command bodies Discord would refuse (Invalid Form Body)', async () => {
    const response = await fetch(
      `${fake.restUrl}/v10/applications/${fake.applicationId}/guilds/${fake.guild.id}/commands`,
      {
        method: 'PUT',
        headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' },
        body: JSON.stringify([{ name: 'Comic', description: 'x'.repeat(101) }]),
      },
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      code: 50035,
      errors: { '0': { name: {}, description: {} } },
    });
  });

  it('bulk-overwrites the guild commands when DISCORD_GUILD_ID is set', async () => {
    const result = await registerCommands(
      { DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.restUrl, DISCORD_GUILD_ID: fake.guild.id },
      silent,
    );
    expect(result).toMatchObject({ scope: 'guild', applicationId: fake.applicationId });
    expect(fake.commands(fake.guild.id).map((c) => c.name)).toEqual(commandBodies().map((c) => c.name));
    expect(result.names).toEqual(commandBodies().map((c) => c.name));
    expect(
      fake
        .requests({
          method: 'PUT',
          path: `/applications/${fake.applicationId}/guilds/${fake.guild.id}/commands`,
        })
        .at(-1)?.status,
    ).toBe(200);
    expect(fake.commands()).toEqual([]);
  });

  it('registers globally when no guild is configured', async () => {
    const result = await registerCommands(
      { DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.restUrl, DISCORD_GUILD_ID: undefined },
      silent,
    );
    expect(result.scope).toBe('global');
    expect(fake.commands().map((c) => c.name)).toEqual(commandBodies().map((c) => c.name));
  });
});
