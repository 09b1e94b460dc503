/**
 * What the bot must be allowed to do in a channel before it queues a comic there
 * (topics/permissions.mdx; reactions need Read Message History, and Add Reactions for a new emoji).
 * Checked up front so a refusal can say exactly what to grant instead of failing halfway.
 */
import {
  PermissionFlagsBits,
  PermissionsBitField,
  type GuildMember,
  type GuildBasedChannel,
} from 'discord.js';

export interface RequiredPermission {
  flag: bigint;
  /** As the Discord client shows it in the channel settings, so admins find it. */
  name: string;
}

/** Posting panels with files and the 🔁 reaction; Send Messages in Threads replaces Send Messages in threads. */
export function requiredPermissions(inThread: boolean): RequiredPermission[] {
  return [
    { flag: PermissionFlagsBits.ViewChannel, name: 'View Channel' },
    inThread
      ? { flag: PermissionFlagsBits.SendMessagesInThreads, name: 'Send Messages in Threads' }
      : { flag: PermissionFlagsBits.SendMessages, name: 'Send Messages' },
    { flag: PermissionFlagsBits.AttachFiles, name: 'Attach Files' },
    { flag: PermissionFlagsBits.AddReactions, name: 'Add Reactions' },
    { flag: PermissionFlagsBits.ReadMessageHistory, name: 'Read Message History' },
  ];
}

/** The names of the required permissions missing from a resolved permission set (e.g. interaction.appPermissions). */
export function missingFromPermissions(
  permissions: PermissionsBitField | bigint | null | undefined,
  inThread = false,
): string[] {
  const resolved =
    permissions instanceof PermissionsBitField ? permissions : new PermissionsBitField(permissions ?? 0n);
  return requiredPermissions(inThread)
    .filter((p) => !resolved.has(p.flag, true))
    .map((p) => p.name);
}

/**
 * The names of the permissions the bot lacks in `channel`, computed by discord.js from the cached
 * guild roles and channel overwrites. Every name is listed when nothing can be computed.
 */
export function missingChannelPermissions(channel: GuildBasedChannel, botMember: GuildMember): string[] {
  const inThread = channel.isThread();
  return missingFromPermissions(channel.permissionsFor(botMember), inThread);
}

/** A sentence for the person who ran the command. */
export function describeMissingPermissions(missing: string[]): string {
  return `I can't make comics in this channel: I'm missing ${missing.map((m) => `**${m}**`).join(', ')}. Ask a server admin to grant ${missing.length === 1 ? 'it' : 'them'} to me here, or use another channel.`;
}
