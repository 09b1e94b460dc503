import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { LIMITS } from '../agents/script-schema.ts';
import { ModelFamily } from '../comic/recipe.ts';
import { InputError } from '../errors.ts';
import { MAX_TEST_PROMPTS, TEST_PROMPT_MAX_LENGTH } from '../evaluation/plan.ts';
import type { Db } from './client.ts';
import { type GuildSettings, guildSettings, nsfwPolicy } from './schema.ts';

/**
 * A guild's settings. The first read creates the row with the schema's defaults, so every guild has
 * settings without an explicit set-up step.
 */
export async function getGuildSettings(db: Db, guildId: string): Promise<GuildSettings> {
  await db.insert(guildSettings).values({ guildId }).onConflictDoNothing();
  const [row] = await db.select().from(guildSettings).where(eq(guildSettings.guildId, guildId));
  if (!row) throw new Error(`guild_settings row for ${guildId} vanished right after its insert`);
  return row;
}

export const GuildSettingsPatch = z
  .object({
    defaultStyle: z.string().trim().min(1).max(64).nullable(),
    defaultModelFamily: ModelFamily,
    defaultPages: z.number().int().min(LIMITS.pages.min).max(LIMITS.pages.max),
    defaultPanelsPerPage: z.number().int().min(LIMITS.panelsPerPage.min).max(LIMITS.panelsPerPage.max),
    defaultRtl: z.boolean(),
    maxInFlightPerUser: z.number().int().min(1).max(100),
    maxInFlightPerGuild: z.number().int().min(1).max(1000),
    /** Without the trigger: the evaluation plan puts it in front (src/evaluation/plan.ts ledByTrigger). */
    testPrompts: z.array(z.string().trim().min(1).max(TEST_PROMPT_MAX_LENGTH)).max(MAX_TEST_PROMPTS),
    nsfwPolicy: z.enum(nsfwPolicy.enumValues),
    /** Discord role id (a snowflake); null: only Manage Server may train. */
    trainerRoleId: z
      .string()
      .regex(/^\d{17,20}$/)
      .nullable(),
    /** One hour to one week. */
    voteMinutes: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 60),
    blindVotes: z.boolean(),
  })
  .partial()
  .strict();
export type GuildSettingsPatch = z.infer<typeof GuildSettingsPatch>;

/** Changes some settings of a guild (creating its row if needed) and returns them all. */
export async function updateGuildSettings(
  db: Db,
  guildId: string,
  patch: GuildSettingsPatch,
): Promise<GuildSettings> {
  const parsed = GuildSettingsPatch.safeParse(patch);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new InputError(
      `That setting is not valid: ${first?.path.join('.') ?? ''} ${first?.message ?? ''}`.trim(),
      {
        cause: parsed.error,
      },
    );
  }
  if (Object.keys(parsed.data).length === 0) return getGuildSettings(db, guildId);
  const [row] = await db
    .insert(guildSettings)
    .values({ guildId, ...parsed.data })
    .onConflictDoUpdate({ target: guildSettings.guildId, set: parsed.data })
    .returning();
  if (!row) throw new Error('guild settings upsert returned no row');
  return row;
}
