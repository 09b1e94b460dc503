/**
 * How big a file the bot may upload in a guild. Discord tells us per interaction
 * (`attachment_size_limit`), which covers boosts; between interactions (and after a restart) the
 * guild's boost tier gives the documented limit. Everything the poster uploads is fitted under this.
 */
import { GuildPremiumTier, type Guild } from 'discord.js';
import { DISCORD_UPLOAD_LIMIT } from '../comic/encode.ts';

const MiB = 1024 * 1024;

/** Discord's per-file limit by boost tier (reference.mdx "Uploading Files"; 10 MiB since Dec 2024). */
export function uploadLimitForTier(tier: GuildPremiumTier): number {
  if (tier === GuildPremiumTier.Tier3) return 100 * MiB;
  if (tier === GuildPremiumTier.Tier2) return 50 * MiB;
  return DISCORD_UPLOAD_LIMIT;
}

/** A whole request may not exceed 25 MiB, whatever the per-file limit. */
export const REQUEST_LIMIT_BYTES = 25 * MiB;

export class UploadLimits {
  private readonly byGuild = new Map<string, number>();

  /** Remember what an interaction said about its guild. */
  remember(guildId: string | null, limit: number | null | undefined): void {
    if (!guildId || !limit || !Number.isFinite(limit) || limit <= 0) return;
    this.byGuild.set(guildId, limit);
  }

  /** The per-file limit for a guild, never above the whole-request limit. */
  forGuild(guild: Pick<Guild, 'id' | 'premiumTier'> | null | undefined): number {
    const known = guild ? this.byGuild.get(guild.id) : undefined;
    const limit = known ?? (guild ? uploadLimitForTier(guild.premiumTier) : DISCORD_UPLOAD_LIMIT);
    return Math.min(limit, REQUEST_LIMIT_BYTES);
  }
}
