/**
 * A protocol-faithful fake Discord on loopback: REST API v10 under /api/v10 and a gateway WebSocket,
 * so the real discord.js client runs against it unchanged (point `rest.api` at `fake.restUrl`).
 *
 * It keeps guilds, channels, messages (with attachment bytes) and reactions; answers like Discord
 * (status codes, JSON error codes, 204 without a content type); checks the bot token and the bot's
 * channel permissions; enforces the upload limit and interaction rules (one callback, 3 s deadline,
 * 15 min token); and records every request. Tests drive it with sendSlashCommand / addReaction and
 * assert on messages(), interaction(), requests().
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { PermissionFlagsBits } from 'discord.js';
import { FakeGateway, type IdentifyRecord } from './discord/gateway.ts';
import { validateCommandBodies } from './discord/command-validation.ts';
import {
  DEFAULT_EVERYONE_PERMISSIONS,
  MessageFlagBits,
  channelJson,
  channelPermissions,
  guildCreateJson,
  guildJson,
  memberJson,
  messageJson,
  roleJson,
  snowflake,
  userJson,
  type FakeAttachment,
  type FakeChannel,
  type FakeGuild,
  type FakeMember,
  type FakeMessage,
  type FakeOverwrite,
  type FakeUser,
} from './discord/model.ts';

export { snowflake } from './discord/model.ts';
export type {
  FakeAttachment,
  FakeChannel,
  FakeGuild,
  FakeMember,
  FakeMessage,
  FakeUser,
} from './discord/model.ts';

const MiB = 1024 * 1024;
const INTENT_GUILDS = 1 << 0;
const INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10;
const INTERACTION_TOKEN_LIFETIME_MS = 15 * 60 * 1000;

// ---------- options ----------

export interface FakeGuildOptions {
  id?: string;
  name?: string;
  /** Permissions of @everyone (default: view, send, embed, attach, react, history, use commands). */
  everyonePermissions?: bigint;
  /** Permissions of the bot's own role (default: the same set as @everyone's default). */
  botPermissions?: bigint;
  /** Text channels (default: `comics`, plus age-restricted `mature`). */
  channels?: { id?: string; name: string; nsfw?: boolean; overwrites?: FakeOverwrite[] }[];
  /** Human members (default: owner, alice, bob, carol). The first one owns the guild. */
  members?: { id?: string; username: string; roles?: string[] }[];
  /** Extra roles. */
  roles?: { id?: string; name: string; permissions: bigint }[];
}

export interface FakeDiscordOptions {
  token?: string;
  botUsername?: string;
  guilds?: FakeGuildOptions[];
  /** Per-file upload limit in bytes; larger files get 413 / 40005 (default 10 MiB, Discord's default). */
  uploadLimitBytes?: number;
  /** Whole-request limit in bytes (default 25 MiB). */
  requestLimitBytes?: number;
  /** HELLO's heartbeat_interval (default 41250 ms, Discord's). */
  heartbeatIntervalMs?: number;
  /** Interactions not answered within this are unknown (10062), as Discord (default 3000; 0 disables). */
  interactionDeadlineMs?: number;
  /** Privileged intents the application is approved for (default none). */
  allowedPrivilegedIntents?: number;
}

// ---------- records and state ----------

export interface RecordedFile {
  field: string;
  filename: string;
  contentType: string | undefined;
  bytes: Buffer;
}

export interface RecordedRequest {
  method: string;
  /** Path after /api/v10, percent-decoded (e.g. `/webhooks/1/tok/messages/@original`). */
  path: string;
  query: URLSearchParams;
  authorized: boolean;
  json: unknown;
  files: RecordedFile[];
  status: number;
}

export interface FakeInteraction {
  id: string;
  token: string;
  applicationId: string;
  /** 2 = application command, 3 = message component (a button click), 4 = autocomplete. */
  type: 2 | 3 | 4;
  guildId: string;
  channelId: string;
  userId: string;
  commandName: string;
  createdAt: number;
  expired: boolean;
  /** The callback the bot sent (type 4 reply, 5 deferred, 8 autocomplete result). */
  callback: { type: number; data: unknown } | null;
  originalMessageId: string | null;
  followupIds: string[];
}

export interface SlashCommandInput {
  guildId?: string;
  channelId?: string;
  userId?: string;
  name: string;
  subcommandGroup?: string;
  subcommand?: string;
  options?: Record<string, string | number | boolean>;
  /**
   * Attachment options (type 11) by option name: the files the member picked. They arrive in
   * `data.resolved.attachments` with a URL the fake serves, as Discord's CDN would.
   */
  attachments?: Record<string, FakeUpload>;
  locale?: string;
}

/** A file a member uploads (with a slash command or in a message of their own). */
export interface FakeUpload {
  filename: string;
  bytes: Buffer;
  contentType?: string;
}

export interface AutocompleteInput extends SlashCommandInput {
  /** The option the user is typing in; its value is the partial text. */
  focused: string;
}

export interface RouteMatcher {
  method?: string;
  /** Matched against the decoded path after /api/v10 (string: exact). */
  path: string | RegExp;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

const notFound = (code: number, message: string) => new HttpError(404, { message, code });

// ---------- the fake ----------

export class FakeDiscord {
  readonly token: string;
  readonly botUser: FakeUser;
  readonly applicationId: string;
  readonly guilds: FakeGuild[] = [];
  readonly uploadLimitBytes: number;
  private readonly requestLimitBytes: number;
  private readonly interactionDeadlineMs: number;
  private readonly server: Server;
  private readonly gateway: FakeGateway;
  private readonly changes = new EventEmitter();
  private readonly recorded: RecordedRequest[] = [];
  private readonly messagesById = new Map<string, FakeMessage>();
  /** Files members attached to slash commands, served under /attachments like message attachments. */
  private readonly commandAttachments = new Map<string, FakeAttachment>();
  private readonly channelMessages = new Map<string, string[]>();
  private readonly interactions = new Map<string, FakeInteraction>();
  private readonly globalCommands: Record<string, unknown>[] = [];
  private readonly guildCommands = new Map<string, Record<string, unknown>[]>();
  private readonly injected: {
    matcher: RouteMatcher;
    remaining: number;
    respond: () => HttpError & { headers?: Record<string, string> };
  }[] = [];
  private port = 0;

  constructor(options: FakeDiscordOptions = {}) {
    this.token =
      options.token ??
      `${Buffer.from(snowflake()).toString('base64url')}.fake.${randomBytes(18).toString('base64url')}`;
    this.applicationId = snowflake();
    this.botUser = {
      id: this.applicationId,
      username: options.botUsername ?? 'ComicMaster',
      global_name: null,
      discriminator: '0',
      avatar: null,
      bot: true,
    };
    this.uploadLimitBytes = options.uploadLimitBytes ?? 10 * MiB;
    this.requestLimitBytes = options.requestLimitBytes ?? 25 * MiB;
    this.interactionDeadlineMs = options.interactionDeadlineMs ?? 3000;
    for (const g of options.guilds ?? [{}]) this.guilds.push(this.buildGuild(g));
    this.changes.setMaxListeners(0);
    this.gateway = new FakeGateway({
      token: this.token,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 41_250,
      allowedPrivilegedIntents: options.allowedPrivilegedIntents ?? 0,
      url: () => this.gatewayUrl,
      onIdentify: () => ({
        ready: {
          v: 10,
          user: { ...userJson(this.botUser), verified: true, mfa_enabled: false, flags: 0 },
          guilds: this.guilds.map((g) => ({ id: g.id, unavailable: true })),
          application: { id: this.applicationId, flags: 0 },
          private_channels: [],
          user_settings: {},
          presences: [],
          relationships: [],
        },
        guilds: this.guilds.map(guildCreateJson),
      }),
    });
    this.server = createServer((req, res) => void this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => this.gateway.handleUpgrade(req, socket, head));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** The value for DISCORD_API_URL / `rest.api` (discord.js appends /v10). */
  get restUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}/gateway`;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The first guild, and in it the first text channel and the human members, for short tests. */
  get guild(): FakeGuild {
    return this.guilds[0]!;
  }

  get channelId(): string {
    return this.guild.channels[0]!.id;
  }

  /** A human member of the first guild by username (defaults: owner, alice, bob, carol). */
  user(username: string): FakeUser {
    const member = this.guild.members.find((m) => m.user.username === username);
    if (!member) throw new Error(`fake discord: no member named ${username}`);
    return member.user;
  }

  get identifies(): readonly IdentifyRecord[] {
    return this.gateway.identifies;
  }

  get resumes(): readonly { sessionId: string; seq: number }[] {
    return this.gateway.resumes;
  }

  get connectedSessions(): number {
    return this.gateway.connectedSessions;
  }

  // ---------- world building ----------

  private buildGuild(options: FakeGuildOptions): FakeGuild {
    const id = options.id ?? snowflake();
    const botRoleId = snowflake();
    const humans = (
      options.members ?? [
        { username: 'owner' },
        { username: 'alice' },
        { username: 'bob' },
        { username: 'carol' },
      ]
    ).map((m): FakeMember => ({
      user: {
        id: m.id ?? snowflake(),
        username: m.username,
        global_name: m.username,
        discriminator: '0',
        avatar: null,
      },
      roles: m.roles ?? [],
      joinedAt: new Date().toISOString(),
    }));
    const guild: FakeGuild = {
      id,
      name: options.name ?? 'Comic Club',
      ownerId: humans[0]?.user.id ?? snowflake(),
      roles: [
        {
          id,
          name: '@everyone',
          permissions: options.everyonePermissions ?? DEFAULT_EVERYONE_PERMISSIONS,
          position: 0,
        },
        {
          id: botRoleId,
          name: this.botUser.username,
          permissions: options.botPermissions ?? DEFAULT_EVERYONE_PERMISSIONS,
          position: 1,
        },
        ...(options.roles ?? []).map((r, i) => ({
          id: r.id ?? snowflake(),
          name: r.name,
          permissions: r.permissions,
          position: i + 2,
        })),
      ],
      channels: (options.channels ?? [{ name: 'comics' }, { name: 'mature', nsfw: true }]).map(
        (c, position) => ({
          id: c.id ?? snowflake(),
          guildId: id,
          name: c.name,
          type: 0,
          nsfw: c.nsfw ?? false,
          position,
          overwrites: c.overwrites ?? [],
          lastMessageId: null,
        }),
      ),
      members: [...humans, { user: this.botUser, roles: [botRoleId], joinedAt: new Date().toISOString() }],
    };
    return guild;
  }

  private findGuild(guildId: string): FakeGuild {
    const guild = this.guilds.find((g) => g.id === guildId);
    if (!guild) throw notFound(10004, 'Unknown Guild');
    return guild;
  }

  private findChannel(channelId: string): { guild: FakeGuild; channel: FakeChannel } {
    for (const guild of this.guilds) {
      const channel = guild.channels.find((c) => c.id === channelId);
      if (channel) return { guild, channel };
    }
    throw notFound(10003, 'Unknown Channel');
  }

  private findMember(guild: FakeGuild, userId: string): FakeMember {
    const member = guild.members.find((m) => m.user.id === userId);
    if (!member) throw notFound(10007, 'Unknown Member');
    return member;
  }

  private botMember(guild: FakeGuild): FakeMember {
    return this.findMember(guild, this.botUser.id);
  }

  /** The bot's permissions in a channel, computed from roles and overwrites as Discord does. */
  botPermissionsIn(channelId: string): bigint {
    const { guild, channel } = this.findChannel(channelId);
    return channelPermissions(guild, channel, this.botMember(guild));
  }

  private requireBotPermissions(channelId: string, needed: bigint): void {
    const perms = this.botPermissionsIn(channelId);
    if (!(perms & PermissionFlagsBits.ViewChannel))
      throw new HttpError(403, { message: 'Missing Access', code: 50001 });
    if ((perms & needed) !== needed)
      throw new HttpError(403, { message: 'Missing Permissions', code: 50013 });
  }

  /** Replaces (or adds) one permission overwrite on a channel and tells the gateway (CHANNEL_UPDATE). */
  setChannelOverwrite(channelId: string, overwrite: FakeOverwrite): void {
    const { channel } = this.findChannel(channelId);
    channel.overwrites = [...channel.overwrites.filter((o) => o.id !== overwrite.id), overwrite];
    this.gateway.dispatch('CHANNEL_UPDATE', channelJson(channel), INTENT_GUILDS);
    this.changed();
  }

  /** Denies the bot the given permissions in a channel (a member overwrite), e.g. AttachFiles. */
  denyBot(channelId: string, deny: bigint): void {
    this.setChannelOverwrite(channelId, { id: this.botUser.id, type: 1, allow: 0n, deny });
  }

  /** Changes a role's permissions and tells the gateway (GUILD_ROLE_UPDATE). */
  setRolePermissions(guildId: string, roleId: string, permissions: bigint): void {
    const guild = this.findGuild(guildId);
    const role = guild.roles.find((r) => r.id === roleId);
    if (!role) throw new Error(`fake discord: no role ${roleId}`);
    role.permissions = permissions;
    this.gateway.dispatch('GUILD_ROLE_UPDATE', { guild_id: guild.id, role: roleJson(role) }, INTENT_GUILDS);
    this.changed();
  }

  // ---------- test drivers ----------

  /** A member runs a slash command; the bot receives INTERACTION_CREATE. Returns the interaction's id and token. */
  sendSlashCommand(input: SlashCommandInput): { id: string; token: string } {
    return this.sendInteraction(2, input, undefined);
  }

  /** A member types in an autocomplete option; the bot receives INTERACTION_CREATE type 4. */
  sendAutocomplete(input: AutocompleteInput): { id: string; token: string } {
    return this.sendInteraction(4, input, input.focused);
  }

  private sendInteraction(
    type: 2 | 4,
    input: SlashCommandInput,
    focused: string | undefined,
  ): { id: string; token: string } {
    const guild = input.guildId ? this.findGuild(input.guildId) : this.guild;
    const channelId = input.channelId ?? guild.channels[0]!.id;
    const { channel } = this.findChannel(channelId);
    const member = input.userId
      ? this.findMember(guild, input.userId)
      : guild.members.find((m) => !m.user.bot)!;
    const registered = [...(this.guildCommands.get(guild.id) ?? []), ...this.globalCommands].find(
      (c) => c.name === input.name && (c.type ?? 1) === 1,
    );
    const leafDefinitions = this.leafOptionDefinitions(registered, input);
    const leaf = Object.entries(input.options ?? {}).map(([name, value]) => {
      const declared = leafDefinitions.find((o) => o.name === name)?.type;
      const inferred =
        typeof value === 'boolean' ? 5 : typeof value === 'number' ? (Number.isInteger(value) ? 4 : 10) : 3;
      return {
        type: typeof declared === 'number' ? declared : inferred,
        name,
        value,
        ...(focused === name ? { focused: true } : {}),
      };
    });
    const resolvedAttachments: Record<string, unknown> = {};
    for (const [name, upload] of Object.entries(input.attachments ?? {})) {
      const attachment: FakeAttachment = {
        id: snowflake(),
        filename: upload.filename,
        size: upload.bytes.length,
        contentType: upload.contentType,
        bytes: upload.bytes,
      };
      this.commandAttachments.set(attachment.id, attachment);
      leaf.push({ type: 11, name, value: attachment.id });
      const url = `${this.baseUrl}/attachments/${channelId}/${attachment.id}/${encodeURIComponent(attachment.filename)}`;
      resolvedAttachments[attachment.id] = {
        id: attachment.id,
        filename: attachment.filename,
        size: attachment.size,
        url,
        proxy_url: url,
        ...(attachment.contentType ? { content_type: attachment.contentType } : {}),
        ephemeral: true,
      };
    }
    let options: unknown[] = leaf;
    if (input.subcommand) options = [{ type: 1, name: input.subcommand, options: leaf }];
    if (input.subcommandGroup) options = [{ type: 2, name: input.subcommandGroup, options }];

    const interaction: FakeInteraction = {
      id: snowflake(),
      token: `aW50ZXJhY3Rpb24${randomBytes(24).toString('base64url')}`,
      applicationId: this.applicationId,
      type,
      guildId: guild.id,
      channelId,
      userId: member.user.id,
      commandName: input.name,
      createdAt: Date.now(),
      expired: false,
      callback: null,
      originalMessageId: null,
      followupIds: [],
    };
    this.interactions.set(interaction.id, interaction);
    const memberPermissions = channelPermissions(guild, channel, member);
    this.gateway.dispatch('INTERACTION_CREATE', {
      id: interaction.id,
      application_id: this.applicationId,
      type,
      token: interaction.token,
      version: 1,
      guild_id: guild.id,
      guild: { id: guild.id, locale: 'en-US', features: [] },
      guild_locale: 'en-US',
      channel_id: channelId,
      channel: channelJson(channel),
      member: { ...memberJson(member), permissions: memberPermissions.toString() },
      app_permissions: this.botPermissionsIn(channelId).toString(),
      locale: input.locale ?? 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': guild.id },
      context: 0,
      attachment_size_limit: this.uploadLimitBytes,
      data: {
        id: typeof registered?.id === 'string' ? registered.id : snowflake(),
        name: input.name,
        type: 1,
        ...(registered?.guild_id ? { guild_id: registered.guild_id } : {}),
        ...(options.length ? { options } : {}),
        ...(Object.keys(resolvedAttachments).length
          ? { resolved: { attachments: resolvedAttachments } }
          : {}),
      },
    });
    this.changed();
    return { id: interaction.id, token: interaction.token };
  }

  private leafOptionDefinitions(
    command: Record<string, unknown> | undefined,
    input: SlashCommandInput,
  ): Record<string, unknown>[] {
    let options = (command?.options ?? []) as Record<string, unknown>[];
    for (const name of [input.subcommandGroup, input.subcommand]) {
      if (!name) continue;
      options = ((options.find((o) => o.name === name)?.options ?? []) as Record<string, unknown>[]) ?? [];
    }
    return options;
  }

  /**
   * A member clicks a button on a message; the bot receives INTERACTION_CREATE type 3 (MESSAGE_COMPONENT)
   * with the message and the button's custom_id. As in Discord, only an enabled button that is on the
   * message can be clicked (anything else throws here, in the test).
   */
  clickButton(input: { channelId?: string; messageId: string; customId: string; userId: string }): {
    id: string;
    token: string;
  } {
    const message = this.requireMessage(input.channelId, input.messageId);
    const buttons = (
      message.components as { components?: { type?: number; custom_id?: string; disabled?: boolean }[] }[]
    ).flatMap((row) => row.components ?? []);
    const button = buttons.find((b) => b.type === 2 && b.custom_id === input.customId);
    if (!button) throw new Error(`message ${input.messageId} has no button ${input.customId}`);
    if (button.disabled) throw new Error(`button ${input.customId} is disabled`);
    const { guild, channel } = this.findChannel(message.channelId);
    const member = this.findMember(guild, input.userId);
    const interaction: FakeInteraction = {
      id: snowflake(),
      token: `aW50ZXJhY3Rpb24${randomBytes(24).toString('base64url')}`,
      applicationId: this.applicationId,
      type: 3,
      guildId: guild.id,
      channelId: channel.id,
      userId: member.user.id,
      commandName: '',
      createdAt: Date.now(),
      expired: false,
      callback: null,
      originalMessageId: null,
      followupIds: [],
    };
    this.interactions.set(interaction.id, interaction);
    this.gateway.dispatch('INTERACTION_CREATE', {
      id: interaction.id,
      application_id: this.applicationId,
      type: 3,
      token: interaction.token,
      version: 1,
      guild_id: guild.id,
      guild: { id: guild.id, locale: 'en-US', features: [] },
      guild_locale: 'en-US',
      channel_id: channel.id,
      channel: channelJson(channel),
      member: { ...memberJson(member), permissions: channelPermissions(guild, channel, member).toString() },
      app_permissions: this.botPermissionsIn(channel.id).toString(),
      locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': guild.id },
      context: 0,
      attachment_size_limit: this.uploadLimitBytes,
      message: messageJson(this.baseUrl, message, this.botUser.id),
      data: { custom_id: input.customId, component_type: 2 },
    });
    this.changed();
    return { id: interaction.id, token: interaction.token };
  }

  /** A member adds a reaction to a message; the bot receives MESSAGE_REACTION_ADD (if it has the intent). */
  addReaction(input: { channelId?: string; messageId: string; userId: string; emoji: string }): void {
    const message = this.requireMessage(input.channelId, input.messageId);
    this.applyReaction(message, input.userId, parseEmoji(input.emoji));
  }

  /** A member removes their reaction; the bot receives MESSAGE_REACTION_REMOVE. */
  removeReaction(input: { channelId?: string; messageId: string; userId: string; emoji: string }): void {
    const message = this.requireMessage(input.channelId, input.messageId);
    this.unapplyReaction(message, input.userId, parseEmoji(input.emoji));
  }

  /** Simulates the 15-minute token expiry: later webhook calls get 401 / 50027. */
  expireInteraction(interactionId: string): void {
    const interaction = this.interactions.get(interactionId);
    if (interaction) interaction.expired = true;
  }

  /** Closes every gateway socket with a resumable close code; discord.js resumes and gets what it missed. */
  dropGatewayConnections(code = 4000): void {
    this.gateway.dropConnections(code);
  }

  // ---------- injected failures ----------

  /**
   * The next `times` requests matching answer 429 like Discord's per-route limiter: headers retry-after,
   * x-ratelimit-* and JSON {message, retry_after, global}. discord.js must wait and retry.
   */
  rateLimit(
    matcher: RouteMatcher,
    options: { times?: number; retryAfterSeconds?: number; global?: boolean } = {},
  ): void {
    const retryAfter = options.retryAfterSeconds ?? 1;
    const global = options.global ?? false;
    this.injected.push({
      matcher,
      remaining: options.times ?? 1,
      respond: () =>
        Object.assign(
          new HttpError(429, { message: 'You are being rate limited.', retry_after: retryAfter, global }),
          {
            headers: {
              'retry-after': String(retryAfter),
              'x-ratelimit-limit': '5',
              'x-ratelimit-remaining': '0',
              'x-ratelimit-reset-after': String(retryAfter),
              'x-ratelimit-bucket': 'fake-bucket',
              'x-ratelimit-scope': global ? 'global' : 'user',
              ...(global ? { 'x-ratelimit-global': 'true' } : {}),
            },
          },
        ),
    });
  }

  /** The next `times` requests matching answer with this status and Discord error body. */
  failNext(
    matcher: RouteMatcher,
    error: { status: number; code?: number; message?: string; times?: number },
  ): void {
    this.injected.push({
      matcher,
      remaining: error.times ?? 1,
      respond: () =>
        new HttpError(error.status, {
          message: error.message ?? `${error.status}: injected`,
          code: error.code ?? 0,
        }),
    });
  }

  // ---------- assertions ----------

  /**
   * A member posts a message (with files) in a channel, as the Discord client would. The bot is not
   * told (it has no message intents); it can read it back with GET /channels/{id}/messages.
   */
  postUserMessage(input: {
    channelId?: string;
    userId: string;
    content?: string;
    files?: FakeUpload[];
  }): FakeMessage {
    const { guild, channel } = this.findChannel(input.channelId ?? this.channelId);
    const member = this.findMember(guild, input.userId);
    const message: FakeMessage = {
      id: snowflake(),
      channelId: channel.id,
      guildId: guild.id,
      author: member.user,
      content: input.content ?? '',
      embeds: [],
      components: [],
      attachments: (input.files ?? []).map((file) => ({
        id: snowflake(),
        filename: file.filename,
        size: file.bytes.length,
        contentType: file.contentType,
        bytes: file.bytes,
      })),
      reactions: [],
      flags: 0,
      webhookId: null,
      interactionId: null,
      createdAt: new Date(),
      editedAt: null,
      edits: 0,
    };
    this.messagesById.set(message.id, message);
    const list = this.channelMessages.get(channel.id) ?? [];
    list.push(message.id);
    this.channelMessages.set(channel.id, list);
    channel.lastMessageId = message.id;
    this.changed();
    return message;
  }

  /** The channel's messages, oldest first (ephemeral interaction replies are not channel messages). */
  messages(channelId: string = this.channelId): FakeMessage[] {
    return (this.channelMessages.get(channelId) ?? [])
      .map((id) => this.messagesById.get(id)!)
      .filter(Boolean);
  }

  message(messageId: string): FakeMessage | undefined {
    return this.messagesById.get(messageId);
  }

  /** An interaction's state, with its original response and follow-ups resolved to messages. */
  interaction(
    interactionId: string,
  ): (FakeInteraction & { original: FakeMessage | undefined; followups: FakeMessage[] }) | undefined {
    const interaction = this.interactions.get(interactionId);
    if (!interaction) return undefined;
    return {
      ...interaction,
      original: interaction.originalMessageId
        ? this.messagesById.get(interaction.originalMessageId)
        : undefined,
      followups: interaction.followupIds.map((id) => this.messagesById.get(id)!),
    };
  }

  /** Registered commands: a guild's when guildId is given, else the global ones. */
  commands(guildId?: string): Record<string, unknown>[] {
    return guildId ? (this.guildCommands.get(guildId) ?? []) : this.globalCommands;
  }

  requests(filter: Partial<RouteMatcher> & { status?: number } = {}): RecordedRequest[] {
    return this.recorded.filter(
      (r) =>
        (!filter.method || r.method === filter.method.toUpperCase()) &&
        (filter.path === undefined || matchPath(filter.path, r.path)) &&
        (filter.status === undefined || r.status === filter.status),
    );
  }

  /** Resolves with the predicate's first truthy value, re-checked after every request and dispatch. */
  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        let value: T | undefined | null | false;
        try {
          value = predicate();
        } catch (error) {
          finish();
          reject(error as Error);
          return true;
        }
        if (value) {
          finish();
          resolve(value);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`fake discord: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.changes.off('change', check);
      };
      if (!check()) this.changes.on('change', check);
    });
  }

  async close(): Promise<void> {
    await this.gateway.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private changed(): void {
    this.changes.emit('change');
  }

  // ---------- HTTP ----------

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    if (req.method === 'GET' && url.pathname.startsWith('/attachments/')) {
      this.serveAttachment(url.pathname, res);
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const prefix = '/api/v10';
    const rawPath = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
    const path = rawPath.split('/').map(safeDecode).join('/');
    const authorized = req.headers.authorization === `Bot ${this.token}`;
    const record: RecordedRequest = {
      method,
      path,
      query: url.searchParams,
      authorized,
      json: undefined,
      files: [],
      status: 0,
    };
    this.recorded.push(record);
    let status = 200;
    let body: unknown = undefined;
    let headers: Record<string, string> = {};
    try {
      const raw = await readBody(req);
      if (raw.length > this.requestLimitBytes)
        throw new HttpError(413, { message: 'Request entity too large', code: 40005 });
      const parsed = await parseBody(req.headers['content-type'], raw);
      record.json = parsed.json;
      record.files = parsed.files;
      if (!url.pathname.startsWith(`${prefix}/`)) throw notFound(0, '404: Not Found');
      const injected = this.injected.find(
        (i) =>
          i.remaining > 0 &&
          (!i.matcher.method || i.matcher.method.toUpperCase() === method) &&
          matchPath(i.matcher.path, path),
      );
      if (injected) {
        injected.remaining -= 1;
        const error = injected.respond();
        headers = error.headers ?? {};
        throw error;
      }
      const needsBotAuth = !/^\/(interactions|webhooks)\//.test(path) && path !== '/gateway';
      if (needsBotAuth && !authorized) throw new HttpError(401, { message: '401: Unauthorized', code: 0 });
      const result = this.route(method, path, url.searchParams, parsed);
      status = result.status ?? 200;
      body = result.body;
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        body = error.body;
      } else {
        status = 500;
        body = { message: `fake discord bug: ${String(error)}`, code: 0 };
      }
    }
    record.status = status;
    if (status === 204 || body === undefined) {
      // Discord sends 204 without a content type; discord.js would otherwise try to parse JSON.
      res.writeHead(status === 200 ? 204 : status, headers);
      res.end();
    } else {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    }
    this.changed();
  }

  private serveAttachment(pathname: string, res: ServerResponse): void {
    const [, , channelId, attachmentId] = pathname.split('/');
    const attachment =
      this.messages(channelId)
        .flatMap((m) => m.attachments)
        .find((a) => a.id === attachmentId) ?? this.commandAttachments.get(attachmentId ?? '');
    if (!attachment) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, {
      'content-type': attachment.contentType ?? 'application/octet-stream',
      'content-length': attachment.size,
    });
    res.end(attachment.bytes);
  }

  private route(
    method: string,
    path: string,
    query: URLSearchParams,
    body: ParsedBody,
  ): { status?: number; body?: unknown } {
    const seg = path.split('/').slice(1);
    const is = (m: string, pattern: string): boolean => {
      if (m !== method) return false;
      const parts = pattern.split('/').slice(1);
      return parts.length === seg.length && parts.every((p, i) => p.startsWith(':') || p === seg[i]);
    };
    const s = (i: number): string => seg[i] ?? '';

    if (is('GET', '/gateway')) return { body: { url: this.gatewayUrl } };
    if (is('GET', '/gateway/bot')) {
      return {
        body: {
          url: this.gatewayUrl,
          shards: 1,
          session_start_limit: {
            total: 1000,
            remaining: 1000 - this.gateway.identifies.length,
            reset_after: 86_400_000,
            max_concurrency: 1,
          },
        },
      };
    }
    if (is('GET', '/users/@me'))
      return { body: { ...userJson(this.botUser), verified: true, mfa_enabled: false, flags: 0 } };
    if (is('GET', '/applications/@me')) return { body: this.applicationJson() };
    if (is('GET', '/oauth2/applications/@me')) return { body: this.applicationJson() };

    // Application commands (bulk overwrite and list)
    if (is('PUT', '/applications/:app/commands') || is('PUT', '/applications/:app/guilds/:guild/commands')) {
      this.requireOwnApplication(s(1));
      const guildId = seg.length === 5 ? s(3) : undefined;
      if (guildId) this.findGuild(guildId);
      const errors = validateCommandBodies(body.json, guildId ? 'guild' : 'global');
      if (errors) throw new HttpError(400, { message: 'Invalid Form Body', code: 50035, errors });
      const stored = (body.json as Record<string, unknown>[]).map((c) => this.commandJson(c, guildId));
      if (guildId) this.guildCommands.set(guildId, stored);
      else this.globalCommands.splice(0, this.globalCommands.length, ...stored);
      return { body: stored };
    }
    if (is('GET', '/applications/:app/commands')) {
      this.requireOwnApplication(s(1));
      return { body: this.globalCommands };
    }
    if (is('GET', '/applications/:app/guilds/:guild/commands')) {
      this.requireOwnApplication(s(1));
      return { body: this.guildCommands.get(s(3)) ?? [] };
    }

    // Guilds
    if (is('GET', '/guilds/:guild')) return { body: guildJson(this.findGuild(s(1))) };
    if (is('GET', '/guilds/:guild/channels')) return { body: this.findGuild(s(1)).channels.map(channelJson) };
    if (is('GET', '/guilds/:guild/roles')) return { body: this.findGuild(s(1)).roles.map(roleJson) };
    if (is('GET', '/guilds/:guild/members/:user')) {
      const guild = this.findGuild(s(1));
      return { body: memberJson(this.findMember(guild, s(3) === '@me' ? this.botUser.id : s(3))) };
    }
    if (is('GET', '/users/:user')) {
      const user = this.guilds.flatMap((g) => g.members).find((m) => m.user.id === s(1))?.user;
      if (!user) throw notFound(10013, 'Unknown User');
      return { body: userJson(user) };
    }

    // Channels and messages
    if (is('GET', '/channels/:channel')) {
      const { channel } = this.findChannel(s(1));
      this.requireBotPermissions(channel.id, 0n);
      return { body: channelJson(channel) };
    }
    if (is('POST', '/channels/:channel/messages')) {
      const { guild, channel } = this.findChannel(s(1));
      const payload = asObject(body.json);
      let needed = PermissionFlagsBits.SendMessages;
      if (body.files.length) needed |= PermissionFlagsBits.AttachFiles;
      if (Array.isArray(payload.embeds) && payload.embeds.length) needed |= PermissionFlagsBits.EmbedLinks;
      if (payload.message_reference) needed |= PermissionFlagsBits.ReadMessageHistory;
      this.requireBotPermissions(channel.id, needed);
      const message = this.createMessage({
        channel,
        guildId: guild.id,
        payload,
        files: body.files,
        public: true,
      });
      return { body: messageJson(this.baseUrl, message, this.botUser.id) };
    }
    if (is('GET', '/channels/:channel/messages')) {
      const { channel } = this.findChannel(s(1));
      this.requireBotPermissions(channel.id, PermissionFlagsBits.ReadMessageHistory);
      return {
        body: this.listMessages(channel.id, query).map((m) => messageJson(this.baseUrl, m, this.botUser.id)),
      };
    }
    if (is('GET', '/channels/:channel/messages/:message')) {
      this.requireBotPermissions(s(1), PermissionFlagsBits.ReadMessageHistory);
      return { body: messageJson(this.baseUrl, this.requireMessage(s(1), s(3)), this.botUser.id) };
    }
    if (is('PATCH', '/channels/:channel/messages/:message')) {
      this.requireBotPermissions(s(1), body.files.length ? PermissionFlagsBits.AttachFiles : 0n);
      const message = this.requireMessage(s(1), s(3));
      if (message.author.id !== this.botUser.id) {
        throw new HttpError(403, { message: 'Cannot edit a message authored by another user', code: 50005 });
      }
      this.editMessage(message, asObject(body.json), body.files);
      return { body: messageJson(this.baseUrl, message, this.botUser.id) };
    }
    if (is('DELETE', '/channels/:channel/messages/:message')) {
      const message = this.requireMessage(s(1), s(3));
      if (message.author.id !== this.botUser.id)
        this.requireBotPermissions(s(1), PermissionFlagsBits.ManageMessages);
      this.deleteMessage(message);
      return { status: 204 };
    }
    if (is('PUT', '/channels/:channel/messages/:message/reactions/:emoji/:user')) {
      if (s(6) !== '@me') throw new HttpError(405, { message: '405: Method Not Allowed', code: 0 });
      const message = this.requireMessage(s(1), s(3));
      const emoji = parseEmoji(s(5));
      const exists = message.reactions.some((r) => sameEmoji(r.emoji, emoji));
      this.requireBotPermissions(
        s(1),
        PermissionFlagsBits.ReadMessageHistory | (exists ? 0n : PermissionFlagsBits.AddReactions),
      );
      this.applyReaction(message, this.botUser.id, emoji);
      return { status: 204 };
    }
    if (is('DELETE', '/channels/:channel/messages/:message/reactions/:emoji/:user')) {
      const message = this.requireMessage(s(1), s(3));
      const userId = s(6) === '@me' ? this.botUser.id : s(6);
      if (userId !== this.botUser.id) this.requireBotPermissions(s(1), PermissionFlagsBits.ManageMessages);
      this.unapplyReaction(message, userId, parseEmoji(s(5)));
      return { status: 204 };
    }
    if (is('GET', '/channels/:channel/messages/:message/reactions/:emoji')) {
      this.requireBotPermissions(s(1), PermissionFlagsBits.ReadMessageHistory);
      const message = this.requireMessage(s(1), s(3));
      const reaction = message.reactions.find((r) => sameEmoji(r.emoji, parseEmoji(s(5))));
      if (!reaction) throw notFound(10014, 'Unknown Emoji');
      const users = this.guilds.flatMap((g) => g.members.map((m) => m.user));
      const limit = Number(query.get('limit') ?? 25);
      return {
        body: reaction.userIds.slice(0, limit).map((id) => userJson(users.find((u) => u.id === id)!)),
      };
    }

    // Interactions
    if (is('POST', '/interactions/:id/:token/callback')) {
      const response = this.interactionCallback(s(1), s(2), asObject(body.json), body.files);
      return query.get('with_response') === 'true' ? { body: response } : { status: 204 };
    }
    if (seg[0] === 'webhooks' && seg.length >= 3)
      return this.webhookRoute(method, seg, asObject(body.json), body.files);

    throw notFound(0, '404: Not Found');
  }

  private applicationJson(): Record<string, unknown> {
    return {
      id: this.applicationId,
      name: this.botUser.username,
      icon: null,
      description: '',
      bot_public: true,
      bot_require_code_grant: false,
      verify_key: 'fake',
      flags: 0,
      team: null,
      owner: userJson(this.guild.members[0]!.user),
      bot: userJson(this.botUser),
    };
  }

  private requireOwnApplication(applicationId: string): void {
    if (applicationId !== this.applicationId) {
      throw new HttpError(403, {
        message: 'You are not authorized to perform this action on this application',
        code: 20012,
      });
    }
  }

  private commandJson(
    command: Record<string, unknown>,
    guildId: string | undefined,
  ): Record<string, unknown> {
    const existing = (guildId ? this.guildCommands.get(guildId) : this.globalCommands)?.find(
      (c) => c.name === command.name,
    );
    return {
      id: typeof existing?.id === 'string' ? existing.id : snowflake(),
      application_id: this.applicationId,
      version: snowflake(),
      type: 1,
      default_member_permissions: null,
      nsfw: false,
      contexts: null,
      integration_types: [0],
      ...command,
      ...(guildId ? { guild_id: guildId } : {}),
    };
  }

  // ---------- messages ----------

  private requireMessage(channelId: string | undefined, messageId: string): FakeMessage {
    if (channelId) this.findChannel(channelId);
    const message = this.messagesById.get(messageId);
    const isChannelMessage =
      message &&
      (!channelId || message.channelId === channelId) &&
      !(message.flags & MessageFlagBits.Ephemeral);
    if (!message || !isChannelMessage) throw notFound(10008, 'Unknown Message');
    return message;
  }

  private createMessage(input: {
    channel: FakeChannel;
    guildId: string;
    payload: Record<string, unknown>;
    files: RecordedFile[];
    public: boolean;
    interactionId?: string;
    extraFlags?: number;
  }): FakeMessage {
    const attachments = this.attachmentsFor(input.payload, input.files, []);
    const content = typeof input.payload.content === 'string' ? input.payload.content : '';
    const embeds = Array.isArray(input.payload.embeds) ? input.payload.embeds : [];
    const components = Array.isArray(input.payload.components) ? input.payload.components : [];
    const loading = ((input.extraFlags ?? 0) & MessageFlagBits.Loading) !== 0;
    validateMessageContent(content, embeds);
    if (
      !loading &&
      !content &&
      !embeds.length &&
      !attachments.length &&
      !components.length &&
      !input.payload.sticker_ids &&
      !input.payload.poll
    ) {
      throw new HttpError(400, { message: 'Cannot send an empty message', code: 50006 });
    }
    const message: FakeMessage = {
      id: snowflake(),
      channelId: input.channel.id,
      guildId: input.guildId,
      author: this.botUser,
      content,
      embeds,
      components,
      attachments,
      reactions: [],
      flags:
        (typeof input.payload.flags === 'number' ? input.payload.flags & MessageFlagBits.Ephemeral : 0) |
        (input.extraFlags ?? 0),
      webhookId: input.interactionId ? this.applicationId : null,
      interactionId: input.interactionId ?? null,
      createdAt: new Date(),
      editedAt: null,
      edits: 0,
    };
    this.messagesById.set(message.id, message);
    if (!(message.flags & MessageFlagBits.Ephemeral)) {
      const list = this.channelMessages.get(message.channelId) ?? [];
      list.push(message.id);
      this.channelMessages.set(message.channelId, list);
      input.channel.lastMessageId = message.id;
    }
    return message;
  }

  /**
   * Discord's attachment rules (reference.mdx "Uploading Files"): `attachments[].id` names the
   * `files[n]` part it describes or an existing attachment to keep; without the array every uploaded
   * file is attached (and, on edit, added to those kept).
   */
  private attachmentsFor(
    payload: Record<string, unknown>,
    files: RecordedFile[],
    existing: FakeAttachment[],
  ): FakeAttachment[] {
    for (const file of files) {
      if (file.bytes.length > this.uploadLimitBytes)
        throw new HttpError(413, { message: 'Request entity too large', code: 40005 });
    }
    const fileByIndex = new Map<string, RecordedFile>();
    files.forEach((file, i) =>
      fileByIndex.set(
        /^files\[(\d+)\]$/.exec(file.field)?.[1] ?? (file.field === 'file' ? '0' : String(i)),
        file,
      ),
    );
    const upload = (file: RecordedFile, described?: Record<string, unknown>): FakeAttachment => ({
      id: snowflake(),
      filename: typeof described?.filename === 'string' ? described.filename : file.filename,
      size: file.bytes.length,
      contentType: file.contentType,
      bytes: file.bytes,
    });
    let result: FakeAttachment[];
    if (Array.isArray(payload.attachments)) {
      result = [];
      const used = new Set<string>();
      for (const raw of payload.attachments as Record<string, unknown>[]) {
        const id = String(raw?.id);
        const kept = existing.find((a) => a.id === id);
        const file = fileByIndex.get(id);
        if (kept) result.push(kept);
        else if (file) {
          result.push(upload(file, raw));
          used.add(id);
        } else
          throw new HttpError(400, {
            message: 'Invalid Form Body',
            code: 50035,
            errors: {
              attachments: {
                _errors: [{ code: 'ATTACHMENT_NOT_FOUND', message: `Attachment ${id} not found` }],
              },
            },
          });
      }
    } else {
      result = payload.attachments === undefined ? [...existing] : [];
      for (const file of files) result.push(upload(file));
    }
    if (result.length > 10)
      throw new HttpError(400, {
        message: 'Maximum number of attachments in a message reached (10)',
        code: 30015,
      });
    return result;
  }

  private editMessage(message: FakeMessage, payload: Record<string, unknown>, files: RecordedFile[]): void {
    const content =
      typeof payload.content === 'string' ? payload.content : payload.content === null ? '' : message.content;
    const embeds = Array.isArray(payload.embeds)
      ? payload.embeds
      : payload.embeds === null
        ? []
        : message.embeds;
    validateMessageContent(content, embeds);
    const attachments =
      payload.attachments !== undefined || files.length
        ? this.attachmentsFor(payload, files, message.attachments)
        : message.attachments;
    message.content = content;
    message.embeds = embeds;
    if (Array.isArray(payload.components)) message.components = payload.components;
    message.attachments = attachments;
    message.flags &= ~MessageFlagBits.Loading;
    message.editedAt = new Date();
    message.edits += 1;
  }

  private deleteMessage(message: FakeMessage): void {
    this.messagesById.delete(message.id);
    const list = this.channelMessages.get(message.channelId);
    if (list)
      this.channelMessages.set(
        message.channelId,
        list.filter((id) => id !== message.id),
      );
  }

  private listMessages(channelId: string, query: URLSearchParams): FakeMessage[] {
    const limit = Math.min(Math.max(Number(query.get('limit') ?? 50), 1), 100);
    let all = this.messages(channelId);
    const before = query.get('before');
    const after = query.get('after');
    if (before) all = all.filter((m) => BigInt(m.id) < BigInt(before));
    if (after)
      return all
        .filter((m) => BigInt(m.id) > BigInt(after))
        .slice(0, limit)
        .reverse();
    return all.slice(-limit).reverse();
  }

  private applyReaction(
    message: FakeMessage,
    userId: string,
    emoji: { id: string | null; name: string },
  ): void {
    let reaction = message.reactions.find((r) => sameEmoji(r.emoji, emoji));
    if (reaction?.userIds.includes(userId)) return; // already there: Discord sends no event
    if (!reaction) {
      reaction = { emoji, userIds: [] };
      message.reactions.push(reaction);
    }
    reaction.userIds.push(userId);
    const guild = this.guilds.find((g) => g.id === message.guildId);
    const member = guild?.members.find((m) => m.user.id === userId);
    this.gateway.dispatch(
      'MESSAGE_REACTION_ADD',
      {
        user_id: userId,
        channel_id: message.channelId,
        message_id: message.id,
        guild_id: message.guildId,
        ...(member ? { member: memberJson(member) } : {}),
        emoji,
        message_author_id: message.author.id,
        burst: false,
        burst_colors: [],
        type: 0,
      },
      INTENT_GUILD_MESSAGE_REACTIONS,
    );
    this.changed();
  }

  private unapplyReaction(
    message: FakeMessage,
    userId: string,
    emoji: { id: string | null; name: string },
  ): void {
    const reaction = message.reactions.find((r) => sameEmoji(r.emoji, emoji));
    if (!reaction?.userIds.includes(userId)) return;
    reaction.userIds = reaction.userIds.filter((id) => id !== userId);
    if (!reaction.userIds.length) message.reactions = message.reactions.filter((r) => r !== reaction);
    this.gateway.dispatch(
      'MESSAGE_REACTION_REMOVE',
      {
        user_id: userId,
        channel_id: message.channelId,
        message_id: message.id,
        guild_id: message.guildId,
        emoji,
        burst: false,
        type: 0,
      },
      INTENT_GUILD_MESSAGE_REACTIONS,
    );
    this.changed();
  }

  // ---------- interactions ----------

  private liveInteraction(id: string, token: string): FakeInteraction {
    const interaction = this.interactions.get(id);
    if (!interaction || interaction.token !== token) throw notFound(10062, 'Unknown interaction');
    return interaction;
  }

  private interactionCallback(
    id: string,
    token: string,
    payload: Record<string, unknown>,
    files: RecordedFile[],
  ): unknown {
    const interaction = this.liveInteraction(id, token);
    if (interaction.callback)
      throw new HttpError(400, { message: 'Interaction has already been acknowledged.', code: 40060 });
    const late =
      this.interactionDeadlineMs > 0 && Date.now() - interaction.createdAt > this.interactionDeadlineMs;
    if (late || interaction.expired) throw notFound(10062, 'Unknown interaction');
    const type = payload.type;
    const data = asObject(payload.data);
    // Components may also answer with 6 (deferred update) and 7 (update the message); only 4, 5 and 6
    // are modelled for them here (a 7 is refused as invalid rather than half-applied).
    const allowed = interaction.type === 4 ? [8] : interaction.type === 3 ? [4, 5, 6] : [4, 5, 9];
    if (typeof type !== 'number' || !allowed.includes(type)) {
      throw new HttpError(400, {
        message: 'Invalid Form Body',
        code: 50035,
        errors: {
          type: {
            _errors: [
              { code: 'INTERACTION_RESPONSE_TYPE_INVALID', message: 'Invalid interaction response type' },
            ],
          },
        },
      });
    }
    if (type === 8) {
      const choices = data.choices;
      if (!Array.isArray(choices) || choices.length > 25) {
        throw new HttpError(400, {
          message: 'Invalid Form Body',
          code: 50035,
          errors: {
            data: {
              choices: {
                _errors: [{ code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be 25 or fewer in length.' }],
              },
            },
          },
        });
      }
      interaction.callback = { type, data };
      return { interaction: { id, type: interaction.type } };
    }
    let message: FakeMessage | undefined;
    if (type === 4 || type === 5) {
      const { guild, channel } = this.findChannel(interaction.channelId);
      message = this.createMessage({
        channel,
        guildId: guild.id,
        payload: type === 5 ? { flags: data.flags } : data,
        files: type === 5 ? [] : files,
        public: true,
        interactionId: id,
        extraFlags: type === 5 ? MessageFlagBits.Loading : 0,
      });
      interaction.originalMessageId = message.id;
    }
    interaction.callback = { type, data };
    return {
      interaction: {
        id,
        type: interaction.type,
        activity_instance_id: null,
        response_message_id: message?.id ?? null,
        response_message_loading: type === 5,
        response_message_ephemeral: message ? (message.flags & MessageFlagBits.Ephemeral) !== 0 : false,
      },
      ...(message
        ? { resource: { type, message: messageJson(this.baseUrl, message, this.botUser.id) } }
        : {}),
    };
  }

  private webhookRoute(
    method: string,
    seg: string[],
    payload: Record<string, unknown>,
    files: RecordedFile[],
  ): { status?: number; body?: unknown } {
    const [, applicationId, token, messagesWord, messageRef] = seg;
    const interaction = [...this.interactions.values()].find((i) => i.token === token);
    if (applicationId !== this.applicationId || !interaction) throw notFound(10015, 'Unknown Webhook');
    const expired = interaction.expired || Date.now() - interaction.createdAt > INTERACTION_TOKEN_LIFETIME_MS;
    if (expired) throw new HttpError(401, { message: 'Invalid Webhook Token', code: 50027 });
    if (!interaction.callback) throw notFound(10015, 'Unknown Webhook');

    if (seg.length === 3 && method === 'POST') {
      const { guild, channel } = this.findChannel(interaction.channelId);
      const message = this.createMessage({
        channel,
        guildId: guild.id,
        payload,
        files,
        public: true,
        interactionId: interaction.id,
      });
      interaction.followupIds.push(message.id);
      return { body: messageJson(this.baseUrl, message, this.botUser.id) };
    }
    if (seg.length !== 5 || messagesWord !== 'messages' || !messageRef) throw notFound(0, '404: Not Found');
    const messageId = messageRef === '@original' ? interaction.originalMessageId : messageRef;
    const owned =
      messageId &&
      (messageId === interaction.originalMessageId || interaction.followupIds.includes(messageId));
    const message = owned ? this.messagesById.get(messageId) : undefined;
    if (!message) throw notFound(10008, 'Unknown Message');
    if (method === 'GET') return { body: messageJson(this.baseUrl, message, this.botUser.id) };
    if (method === 'PATCH') {
      this.editMessage(message, payload, files);
      return { body: messageJson(this.baseUrl, message, this.botUser.id) };
    }
    if (method === 'DELETE') {
      this.deleteMessage(message);
      return { status: 204 };
    }
    throw new HttpError(405, { message: '405: Method Not Allowed', code: 0 });
  }
}

/** Starts a fake Discord on 127.0.0.1 with a random port. Close it with `close()`. */
export async function startFakeDiscord(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  const fake = new FakeDiscord(options);
  await fake.listen();
  return fake;
}

// ---------- helpers ----------

interface ParsedBody {
  json: unknown;
  files: RecordedFile[];
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function parseBody(contentType: string | undefined, raw: Buffer): Promise<ParsedBody> {
  if (!raw.length) return { json: undefined, files: [] };
  if (contentType?.startsWith('multipart/form-data')) {
    // The platform's own multipart parser (undici), the same one discord.js builds the body with.
    const form = await new Request('http://fake.invalid/', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: raw,
    }).formData();
    const files: RecordedFile[] = [];
    let json: unknown = {};
    for (const [field, value] of form.entries()) {
      if (typeof value === 'string') {
        if (field === 'payload_json') json = parseJson(value);
      } else {
        files.push({
          field,
          filename: value.name,
          contentType: value.type || undefined,
          bytes: Buffer.from(await value.arrayBuffer()),
        });
      }
    }
    return { json, files };
  }
  return { json: parseJson(raw.toString('utf8')), files: [] };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, { message: '400: Bad Request', code: 50109 });
  }
}

function asObject(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function validateMessageContent(content: string, embeds: unknown[]): void {
  if (content.length > 2000) {
    throw new HttpError(400, {
      message: 'Invalid Form Body',
      code: 50035,
      errors: {
        content: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 2000 or fewer in length.' }] },
      },
    });
  }
  if (embeds.length > 10) {
    throw new HttpError(400, {
      message: 'Invalid Form Body',
      code: 50035,
      errors: {
        embeds: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 10 or fewer in length.' }] },
      },
    });
  }
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function matchPath(pattern: string | RegExp, path: string): boolean {
  return typeof pattern === 'string' ? pattern === path : pattern.test(path);
}

/** `🔁` → {id:null,name:'🔁'}; `name:123` (custom emoji as the route takes it) → {id:'123',name:'name'}. */
function parseEmoji(text: string): { id: string | null; name: string } {
  const custom = /^<?a?:?([\w~]+):(\d+)>?$/.exec(text);
  return custom ? { id: custom[2]!, name: custom[1]! } : { id: null, name: text };
}

function sameEmoji(a: { id: string | null; name: string }, b: { id: string | null; name: string }): boolean {
  return a.id !== null || b.id !== null ? a.id === b.id : a.name === b.name;
}
