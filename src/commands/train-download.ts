/**
 * Fetching the files of a `/train style`: attachments of the command and images of the channel's
 * recent messages. Only from Discord's CDN (or the configured DISCORD_API_URL's host, where a
 * self-hosted or test Discord serves them); no redirects; each download streamed to disk and cut off
 * as soon as it passes its limit, whatever size the attachment claimed. What the files are is decided
 * later by their bytes (src/dataset ingest), never by their names or content types.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Attachment, GuildTextBasedChannel } from 'discord.js';
import type { AppConfig } from '../config/env.ts';

export const MiB = 1024 * 1024;

export interface DownloadLimits {
  /** An image attachment, at most. */
  maxImageBytes: number;
  /** A zip attachment, at most (its entries are limited again while inflating). */
  maxZipBytes: number;
  /** Everything downloaded for one training, at most. */
  maxTotalBytes: number;
  /** One download, at most. */
  timeoutMs: number;
}

export const DEFAULT_DOWNLOAD_LIMITS: DownloadLimits = {
  maxImageBytes: 50 * MiB,
  maxZipBytes: 500 * MiB,
  maxTotalBytes: 1024 * MiB,
  timeoutMs: 120_000,
};

/** Discord's attachment hosts. */
export const DISCORD_CDN_HOSTS = ['cdn.discordapp.com', 'media.discordapp.net'];

export interface AttachmentSource {
  url: string;
  /** As the member named it: shown in the report, never used as a path. */
  filename: string;
  /** As Discord declared it; checked before downloading, then enforced while streaming. */
  size: number;
  kind: 'image' | 'zip';
}

export interface DownloadRefusal {
  source: string;
  reason: string;
}

export interface DownloadResult {
  /** Paths on disk, in the order given. */
  files: { path: string; filename: string }[];
  refused: DownloadRefusal[];
}

/** The origins attachments may come from: https on Discord's CDN, or the configured API's own origin. */
export function allowedOrigins(config: Pick<AppConfig, 'DISCORD_API_URL'>): (url: URL) => boolean {
  const api = new URL(config.DISCORD_API_URL);
  return (url) =>
    (url.protocol === 'https:' && DISCORD_CDN_HOSTS.includes(url.hostname) && url.port === '') ||
    (url.protocol === api.protocol && url.host === api.host);
}

/** A name safe to put on disk (the report shows the original). */
function diskName(index: number, filename: string): string {
  const cleaned =
    filename
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(-80) || 'file';
  return `${String(index).padStart(3, '0')}-${cleaned}`;
}

function mb(bytes: number): string {
  return `${Math.round((bytes / MiB) * 10) / 10} MB`;
}

class OverLimit extends Error {}

/**
 * Downloads each source into `dir` (which must exist), within the limits. A refused source is in the
 * result with its reason; nothing half-written is left behind.
 */
export async function downloadSources(
  sources: readonly AttachmentSource[],
  dir: string,
  isAllowed: (url: URL) => boolean,
  limits: DownloadLimits = DEFAULT_DOWNLOAD_LIMITS,
): Promise<DownloadResult> {
  const result: DownloadResult = { files: [], refused: [] };
  let total = 0;
  for (const [index, source] of sources.entries()) {
    const refuse = (reason: string) => result.refused.push({ source: source.filename, reason });
    let url: URL;
    try {
      url = new URL(source.url);
    } catch {
      refuse('the attachment has no valid address');
      continue;
    }
    if (!isAllowed(url)) {
      refuse(`not downloaded: ${url.host} is not Discord's file server`);
      continue;
    }
    const limit = Math.min(
      source.kind === 'zip' ? limits.maxZipBytes : limits.maxImageBytes,
      limits.maxTotalBytes - total,
    );
    if (limit <= 0) {
      refuse(`not downloaded: the ${mb(limits.maxTotalBytes)} limit for one training is reached`);
      continue;
    }
    if (source.size > limit) {
      refuse(
        `${mb(source.size)} is over the ${mb(limit)} limit for ${source.kind === 'zip' ? 'a zip' : 'an image'}`,
      );
      continue;
    }
    const path = join(dir, diskName(index, source.filename));
    try {
      const bytes = await downloadOne(url, path, limit, limits.timeoutMs);
      total += bytes;
      result.files.push({ path, filename: source.filename });
    } catch (error) {
      await rm(path, { force: true });
      if (error instanceof OverLimit)
        refuse(`bigger than the ${mb(limit)} limit (the download was stopped there)`);
      else refuse(`could not be downloaded (${(error as Error).message})`);
    }
  }
  return result;
}

async function downloadOne(url: URL, path: string, limit: number, timeoutMs: number): Promise<number> {
  const response = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await response.body.cancel();
    throw new OverLimit();
  }
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) callback(new OverLimit());
      else callback(null, chunk);
    },
  });
  await pipeline(
    Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
    counter,
    createWriteStream(path, { flags: 'wx' }),
  );
  return seen;
}

/** The attachment as a download source; zips by name or type (the bytes decide later anyway). */
export function sourceOf(
  attachment: Pick<Attachment, 'url' | 'name' | 'size' | 'contentType'>,
): AttachmentSource {
  const zip = /\.zip$/i.test(attachment.name) || attachment.contentType === 'application/zip';
  return {
    url: attachment.url,
    filename: attachment.name,
    size: attachment.size,
    kind: zip ? 'zip' : 'image',
  };
}

/** Messages read at most when looking for the channel's recent images. */
export const MAX_MESSAGES_SCANNED = 1_000;

/**
 * The channel's `count` most recent image attachments (newest first), skipping the bot's own posts
 * (its panels and charts are not training material).
 */
export async function recentChannelImages(
  channel: GuildTextBasedChannel,
  count: number,
  botUserId: string,
): Promise<AttachmentSource[]> {
  const found: AttachmentSource[] = [];
  let before: string | undefined;
  for (let scanned = 0; scanned < MAX_MESSAGES_SCANNED && found.length < count;) {
    const page = await channel.messages.fetch({ limit: 100, ...(before ? { before } : {}), cache: false });
    if (page.size === 0) break;
    for (const message of page.values()) {
      scanned++;
      before = message.id;
      if (message.author.id === botUserId) continue;
      for (const attachment of message.attachments.values()) {
        const looksImage =
          attachment.contentType?.startsWith('image/') ?? /\.(png|jpe?g|webp)$/i.test(attachment.name);
        if (looksImage && found.length < count) found.push({ ...sourceOf(attachment), kind: 'image' });
      }
    }
    if (page.size < 100) break;
  }
  return found;
}
