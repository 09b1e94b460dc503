/**
 * The fake Discord's world: guilds, channels, roles, members, messages, and the JSON shapes Discord
 * sends for them (API v10). Kept apart from the HTTP and gateway code so both render the same objects.
 */
import { PermissionFlagsBits } from 'discord.js';

const DISCORD_EPOCH = 1420070400000n;
let increment = 0n;

/** A real-looking snowflake (timestamp << 22 | counter), so discord.js can derive createdAt from it. */
export function snowflake(): string {
  increment = (increment + 1n) & 0xfffn;
  return (((BigInt(Date.now()) - DISCORD_EPOCH) << 22n) | increment).toString();
}

export const ALL_PERMISSIONS = Object.values(PermissionFlagsBits).reduce((acc, bit) => acc | bit, 0n);

/** What @everyone can do in a fresh guild (Discord's defaults for a text community). */
export const DEFAULT_EVERYONE_PERMISSIONS =
  PermissionFlagsBits.ViewChannel |
  PermissionFlagsBits.SendMessages |
  PermissionFlagsBits.EmbedLinks |
  PermissionFlagsBits.AttachFiles |
  PermissionFlagsBits.AddReactions |
  PermissionFlagsBits.ReadMessageHistory |
  PermissionFlagsBits.UseApplicationCommands |
  PermissionFlagsBits.UseExternalEmojis;

export interface FakeUser {
  id: string;
  username: string;
  global_name: string | null;
  discriminator: string;
  avatar: string | null;
  bot?: boolean;
}

export interface FakeRole {
  id: string;
  name: string;
  permissions: bigint;
  position: number;
}

export interface FakeOverwrite {
  id: string;
  /** 0 = role, 1 = member (as in the API). */
  type: 0 | 1;
  allow: bigint;
  deny: bigint;
}

export interface FakeChannel {
  id: string;
  guildId: string;
  name: string;
  /** 0 = GUILD_TEXT. */
  type: number;
  nsfw: boolean;
  position: number;
  overwrites: FakeOverwrite[];
  lastMessageId: string | null;
}

export interface FakeMember {
  user: FakeUser;
  roles: string[];
  joinedAt: string;
}

export interface FakeGuild {
  id: string;
  name: string;
  ownerId: string;
  roles: FakeRole[];
  channels: FakeChannel[];
  members: FakeMember[];
}

export interface FakeAttachment {
  id: string;
  filename: string;
  size: number;
  contentType: string | undefined;
  bytes: Buffer;
}

export interface FakeReaction {
  emoji: { id: string | null; name: string };
  userIds: string[];
}

export interface FakeMessage {
  id: string;
  channelId: string;
  guildId: string | null;
  author: FakeUser;
  content: string;
  embeds: unknown[];
  components: unknown[];
  attachments: FakeAttachment[];
  reactions: FakeReaction[];
  flags: number;
  /** Set on interaction responses: the application that sent it through the interaction webhook. */
  webhookId: string | null;
  interactionId: string | null;
  createdAt: Date;
  editedAt: Date | null;
  /** How many times the message was edited (PATCH), for assertions. */
  edits: number;
}

export const MessageFlagBits = { Ephemeral: 1 << 6, Loading: 1 << 7 } as const;

// ---- JSON renderers (the wire shapes discord.js parses) ----

export function userJson(user: FakeUser): Record<string, unknown> {
  return {
    id: user.id,
    username: user.username,
    global_name: user.global_name,
    discriminator: user.discriminator,
    avatar: user.avatar,
    bot: user.bot ?? false,
    public_flags: 0,
  };
}

export function memberJson(member: FakeMember, withUser = true): Record<string, unknown> {
  return {
    ...(withUser ? { user: userJson(member.user) } : {}),
    nick: null,
    avatar: null,
    roles: member.roles,
    joined_at: member.joinedAt,
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0,
    pending: false,
    communication_disabled_until: null,
  };
}

export function roleJson(role: FakeRole): Record<string, unknown> {
  return {
    id: role.id,
    name: role.name,
    color: 0,
    colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position: role.position,
    permissions: role.permissions.toString(),
    managed: false,
    mentionable: false,
    flags: 0,
  };
}

export function channelJson(channel: FakeChannel): Record<string, unknown> {
  return {
    id: channel.id,
    type: channel.type,
    guild_id: channel.guildId,
    name: channel.name,
    position: channel.position,
    parent_id: null,
    topic: null,
    nsfw: channel.nsfw,
    rate_limit_per_user: 0,
    last_message_id: channel.lastMessageId,
    flags: 0,
    permission_overwrites: channel.overwrites.map((o) => ({
      id: o.id,
      type: o.type,
      allow: o.allow.toString(),
      deny: o.deny.toString(),
    })),
  };
}

/** The guild object of GET /guilds/{id} (no channels or members, as Discord). */
export function guildJson(guild: FakeGuild): Record<string, unknown> {
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    owner_id: guild.ownerId,
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    roles: guild.roles.map(roleJson),
    emojis: [],
    stickers: [],
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    vanity_url_code: null,
    description: null,
    banner: null,
    premium_tier: 0,
    premium_subscription_count: 0,
    preferred_locale: 'en-US',
    public_updates_channel_id: null,
    nsfw_level: 0,
    premium_progress_bar_enabled: false,
  };
}

/** The GUILD_CREATE dispatch: the guild plus channels, members (incl. the bot's own) and counts. */
export function guildCreateJson(guild: FakeGuild): Record<string, unknown> {
  return {
    ...guildJson(guild),
    joined_at: new Date().toISOString(),
    large: false,
    unavailable: false,
    member_count: guild.members.length,
    voice_states: [],
    members: guild.members.map((m) => memberJson(m)),
    channels: guild.channels.map((c) => {
      const { guild_id: _omit, ...rest } = channelJson(c);
      return rest;
    }),
    threads: [],
    presences: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

export function attachmentJson(
  baseUrl: string,
  message: FakeMessage,
  a: FakeAttachment,
): Record<string, unknown> {
  const url = `${baseUrl}/attachments/${message.channelId}/${a.id}/${encodeURIComponent(a.filename)}`;
  return {
    id: a.id,
    filename: a.filename,
    size: a.size,
    url,
    proxy_url: url,
    ...(a.contentType ? { content_type: a.contentType } : {}),
  };
}

export function messageJson(
  baseUrl: string,
  message: FakeMessage,
  viewerId?: string,
): Record<string, unknown> {
  return {
    id: message.id,
    channel_id: message.channelId,
    ...(message.guildId ? { guild_id: message.guildId } : {}),
    author: userJson(message.author),
    content: message.content,
    timestamp: message.createdAt.toISOString(),
    edited_timestamp: message.editedAt ? message.editedAt.toISOString() : null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: message.attachments.map((a) => attachmentJson(baseUrl, message, a)),
    embeds: message.embeds,
    components: message.components,
    pinned: false,
    type: message.interactionId ? 20 : 0,
    flags: message.flags,
    ...(message.webhookId ? { webhook_id: message.webhookId, application_id: message.webhookId } : {}),
    ...(message.reactions.length
      ? {
          reactions: message.reactions.map((r) => ({
            count: r.userIds.length,
            count_details: { burst: 0, normal: r.userIds.length },
            me: viewerId ? r.userIds.includes(viewerId) : false,
            me_burst: false,
            burst_colors: [],
            emoji: r.emoji,
          })),
        }
      : {}),
  };
}

// ---- Permissions: Discord's algorithm (topics/permissions.mdx, "Permission Overwrites") ----

export function basePermissions(guild: FakeGuild, member: FakeMember): bigint {
  if (member.user.id === guild.ownerId) return ALL_PERMISSIONS;
  const everyone = guild.roles.find((r) => r.id === guild.id);
  let perms = everyone?.permissions ?? 0n;
  for (const roleId of member.roles) {
    perms |= guild.roles.find((r) => r.id === roleId)?.permissions ?? 0n;
  }
  if (perms & PermissionFlagsBits.Administrator) return ALL_PERMISSIONS;
  return perms;
}

export function channelPermissions(guild: FakeGuild, channel: FakeChannel, member: FakeMember): bigint {
  let perms = basePermissions(guild, member);
  if (perms === ALL_PERMISSIONS) return perms;
  const everyone = channel.overwrites.find((o) => o.id === guild.id);
  if (everyone) perms = (perms & ~everyone.deny) | everyone.allow;
  let allow = 0n;
  let deny = 0n;
  for (const o of channel.overwrites) {
    if (o.type === 0 && o.id !== guild.id && member.roles.includes(o.id)) {
      allow |= o.allow;
      deny |= o.deny;
    }
  }
  perms = (perms & ~deny) | allow;
  const own = channel.overwrites.find((o) => o.type === 1 && o.id === member.user.id);
  if (own) perms = (perms & ~own.deny) | own.allow;
  // Implicit permissions: no View Channel means nothing; no Send Messages drops what depends on it.
  if (!(perms & PermissionFlagsBits.ViewChannel)) return 0n;
  if (!(perms & PermissionFlagsBits.SendMessages)) {
    perms &= ~(
      PermissionFlagsBits.AttachFiles |
      PermissionFlagsBits.EmbedLinks |
      PermissionFlagsBits.MentionEveryone |
      PermissionFlagsBits.SendTTSMessages
    );
  }
  return perms;
}
