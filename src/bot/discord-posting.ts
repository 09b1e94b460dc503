/**
 * What the three posters (comics, trainings, evaluations) share when they talk to Discord with the
 * bot's own token: finding the channel, telling a refusal for good from a retryable failure, noticing
 * a message someone deleted, attaching an artifact under the upload limit, and throttling the edits
 * of one status message.
 */
import {
  DiscordAPIError,
  RESTJSONErrorCodes,
  type AttachmentPayload,
  type Client,
  type GuildTextBasedChannel,
} from 'discord.js';
import type { Logger } from 'pino';
import { encodeUnderLimit, type ImageFormat } from '../comic/encode.ts';
import { UpstreamError } from '../errors.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';

/** What the member reads when Discord refuses for good: on a 403, and on any other 4xx. */
export interface RefusalMessages {
  forbidden: string;
  refused: string;
}

/**
 * Discord refusing for good (403 missing permissions, 404 unknown channel…) becomes a non-retryable
 * UpstreamError; anything else (5xx, network, 429) is returned as it is and retried by the job's
 * attempts. 429s seldom get here: discord.js REST waits them out.
 */
export function discordRefusal(error: unknown, messages: RefusalMessages, what?: string): unknown {
  if (error instanceof DiscordAPIError && error.status >= 400 && error.status < 500 && error.status !== 429) {
    const detail = `Discord ${error.status} ${error.code}: ${error.message}`;
    return new UpstreamError('discord', error.status === 403 ? messages.forbidden : messages.refused, {
      cause: error,
      retryable: false,
      operatorMessage: what ? `${what}: ${detail}` : detail,
    });
  }
  return error;
}

/** The message to edit is gone (someone deleted it): post it again. */
export function isUnknownMessage(error: unknown): boolean {
  return error instanceof DiscordAPIError && error.code === RESTJSONErrorCodes.UnknownMessage;
}

/** A guild text channel by id, or an UpstreamError saying `goneMessage` (not retried: it will not come back). */
export async function fetchGuildTextChannel(
  client: Client,
  channelId: string,
  options: { goneMessage: string; refusal: (error: unknown, what: string) => unknown },
): Promise<GuildTextBasedChannel> {
  let channel;
  try {
    channel = await client.channels.fetch(channelId);
  } catch (error) {
    throw options.refusal(error, `fetching channel ${channelId}`);
  }
  if (!channel?.isTextBased() || channel.isDMBased()) {
    throw new UpstreamError('discord', options.goneMessage, {
      retryable: false,
      operatorMessage: `channel ${channelId} is not a guild text channel`,
    });
  }
  return channel;
}

/** The extension of an artifact key ("png" when it has none). */
export function extensionOf(key: string): string {
  const match = /\.([a-z0-9]+)$/i.exec(key);
  return match?.[1]?.toLowerCase() ?? 'png';
}

/** The artifact as an attachment that fits the channel's upload limit (re-encoded when too big). */
export async function artifactAttachment(
  store: ArtifactStore,
  key: string,
  name: string,
  limit: number,
  options: { prefer?: ImageFormat; logger?: Logger } = {},
): Promise<AttachmentPayload> {
  const data = await store.getBuffer(key);
  if (data.length <= limit) return { attachment: data, name: `${name}.${extensionOf(key)}` };
  // A little headroom for the multipart framing.
  const encoded = await encodeUnderLimit(data, {
    maxBytes: limit - 1024,
    ...(options.prefer ? { prefer: options.prefer } : {}),
  });
  options.logger?.info(
    { key, bytes: data.length, encodedBytes: encoded.data.length, limit },
    're-encoded to fit the upload limit',
  );
  return { attachment: encoded.data, name: `${name}.${encoded.format === 'jpeg' ? 'jpg' : encoded.format}` };
}

/**
 * At most one edit per status message per window. An update that comes too soon is deferred: the
 * poster enqueues one delayed job for the end of the window (its job id carries `due`, so every
 * update in the window lands in that one job), and that delayed job is never deferred again.
 */
export class EditThrottle {
  private readonly lastEdit = new Map<string, number>();

  constructor(private readonly intervalMs: number) {}

  /** When the edit must wait: the time it is due and the delay until then; undefined to edit now. */
  deferral(
    id: string,
    opts: { hasMessage: boolean; coalesced: boolean },
  ): { due: number; delay: number } | undefined {
    const last = this.lastEdit.get(id);
    const now = Date.now();
    if (!opts.hasMessage || opts.coalesced || last === undefined || now - last >= this.intervalMs)
      return undefined;
    const due = last + this.intervalMs;
    return { due, delay: Math.max(1, due - now) };
  }

  edited(id: string): void {
    this.lastEdit.set(id, Date.now());
  }

  /** Once the subject is settled, no more edits are coming: drop its entry. */
  forget(id: string): void {
    this.lastEdit.delete(id);
  }
}
