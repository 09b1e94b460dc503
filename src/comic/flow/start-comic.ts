import { z } from 'zod';
import { familyAvailability, familyProfile } from '../families.ts';
import { LIMITS } from '../../agents/script-schema.ts';
import { createComicWithinLimits, setComicOutputSafety, setComicStatus } from '../../db/comics.ts';
import { LETTERING_MODES, type LetteringMode } from '../../db/json.ts';
import type { Comic } from '../../db/schema.ts';
import { ComicMasterError, userMessageOf } from '../../errors.ts';
import { ModelFamily } from '../recipe.ts';
import { type PipelineDeps, pipelineLogger } from './deps.ts';
import { jobIds } from './job-ids.ts';

/** Used when neither the member nor the guild's settings gave a number (the guild_settings defaults). */
export const DEFAULT_PAGES = 1;
export const DEFAULT_PANELS_PER_PAGE = 4;

const between = (what: string, min: number, max: number) =>
  z
    .number({ message: `${what} must be a number` })
    .int({ message: `${what} must be a whole number` })
    .min(min, { message: `${what} must be between ${min} and ${max}` })
    .max(max, { message: `${what} must be between ${min} and ${max}` });

export const StartComicInput = z.object({
  /** Null for a comic made outside Discord. */
  guildId: z.string().min(1).max(32).nullable(),
  channelId: z.string().min(1).max(32).nullable(),
  userId: z.string().min(1).max(64),
  prompt: z.string(),
  options: z.object({
    pages: between('pages', LIMITS.pages.min, LIMITS.pages.max).optional(),
    panelsPerPage: between('panels per page', LIMITS.panelsPerPage.min, LIMITS.panelsPerPage.max).optional(),
    style: z.string().trim().min(1).max(64).nullable().optional(),
    model: ModelFamily,
    rtl: z.boolean(),
    /** Who letters the balloons: the page assembler (default) or the model itself (FLUX.2 only). */
    lettering: z.enum(LETTERING_MODES).optional(),
    /** True outside age-restricted channels: renders keep the safe-content negative prompt. */
    safe: z.boolean(),
  }),
  /** The guild's in-flight limits (guild_settings). */
  limits: z.object({ perUser: z.number().int().min(1), perGuild: z.number().int().min(1) }),
});
export type StartComicInput = z.input<typeof StartComicInput>;

/**
 * Why `lettering` cannot be used with `family`, or null when it can: only a family that paints
 * legible text (FLUX.2 dev) may draw the balloons itself. Shared by /comic new and `comicmaster comic`.
 */
export function letteringRefusal(
  lettering: LetteringMode | undefined,
  family: z.infer<typeof ModelFamily>,
): string | null {
  if (lettering !== 'model') return null;
  const profile = familyProfile(family);
  if (profile.drawsText) return null;
  return (
    `Lettering drawn by the model needs model:flux2 (FLUX.2 dev paints legible text); ${profile.label} does not, ` +
    'so its balloons must be lettered over the art. Choose model:flux2, or lettering:overlay.'
  );
}

export type StartComicResult = { ok: true; comic: Comic } | { ok: false; reason: string };

/**
 * `/comic new` after the command's checks: validate, insert the comic within the member's and the
 * guild's in-flight limits, and queue its script. A refusal comes back as a sentence for the member;
 * nothing is queued then.
 */
export async function startComic(deps: PipelineDeps, raw: StartComicInput): Promise<StartComicResult> {
  const logger = pipelineLogger(deps, 'start-comic');
  const parsed = StartComicInput.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
    return {
      ok: false,
      reason: `That comic request is not valid: ${where}${first?.message ?? 'unknown problem'}.`,
    };
  }
  const input = parsed.data;
  // Families an operator has not enabled (immature or too big for 24 GB) are refused up front.
  const family = familyAvailability(input.options.model, deps.config.ENABLE_EXPERIMENTAL_FAMILIES);
  if (!family.usable) return { ok: false, reason: family.reason };
  const lettering = letteringRefusal(input.options.lettering, input.options.model);
  if (lettering) return { ok: false, reason: lettering };

  let created;
  try {
    created = await createComicWithinLimits(
      deps.db,
      {
        guildId: input.guildId,
        channelId: input.channelId,
        userId: input.userId,
        prompt: input.prompt,
        options: {
          pages: input.options.pages ?? DEFAULT_PAGES,
          panelsPerPage: input.options.panelsPerPage ?? DEFAULT_PANELS_PER_PAGE,
          style: input.options.style ?? null,
          modelFamily: input.options.model,
          rtl: input.options.rtl,
          ...(input.options.lettering ? { lettering: input.options.lettering } : {}),
        },
      },
      input.limits,
    );
  } catch (error) {
    if (error instanceof ComicMasterError) return { ok: false, reason: error.userMessage };
    throw error;
  }
  if (!created.ok) {
    const reason =
      created.limit === 'user'
        ? `You already have ${plural(created.inFlight.user, 'comic')} in the making (the limit is ${input.limits.perUser}). Wait for it to finish or cancel it with /comic cancel.`
        : `This server already has ${plural(created.inFlight.guild, 'comic')} in the making (the limit is ${input.limits.perGuild}). Try again when one is done.`;
    return { ok: false, reason };
  }

  const comic = created.comic;
  try {
    // Stored before the script job exists, so the worker always sees it; a missing flag reads as safe.
    const withSafety = input.options.safe
      ? comic
      : ((await setComicOutputSafety(deps.db, comic.id, false)) ?? comic);
    await deps.producer.enqueue('script', { comicId: comic.id }, { jobId: jobIds.script(comic.id) });
    logger.info({ comicId: comic.id, guildId: input.guildId, userId: input.userId }, 'comic started');
    return { ok: true, comic: withSafety };
  } catch (error) {
    // Nothing will make this comic: free the member's slot and say so.
    await setComicStatus(deps.db, comic.id, 'failed', {
      error: `could not queue the script: ${String(error)}`,
    });
    logger.error({ comicId: comic.id, err: error }, 'could not queue the script job');
    return { ok: false, reason: userMessageOf(error) };
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
