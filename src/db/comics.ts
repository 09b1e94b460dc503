import { and, count, eq, inArray, isNull, notInArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import { ComicScript } from '../agents/script-schema.ts';
import { InputError } from '../errors.ts';
import type { Db } from './client.ts';
import { ComicOptions } from './json.ts';
import { COMIC_IN_FLIGHT, type Comic, type ComicStatus, comics } from './schema.ts';

/** What `/comic new` (or the CLI) knows when it asks for a comic. */
export const NewComicInput = z.object({
  /** Null for a comic made with the local CLI. */
  guildId: z.string().min(1).max(32).nullable(),
  channelId: z.string().min(1).max(32).nullable(),
  userId: z.string().min(1).max(64),
  prompt: z.string().trim().min(1, { message: 'the story prompt is empty' }).max(2000),
  options: ComicOptions,
});
export type NewComicInput = z.input<typeof NewComicInput>;

const TERMINAL: ComicStatus[] = ['done', 'failed', 'cancelled'];

function parseInput(input: NewComicInput): z.output<typeof NewComicInput> {
  const parsed = NewComicInput.safeParse(input);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new InputError(`That comic request is not valid: ${first?.message ?? 'unknown problem'}.`, {
      cause: parsed.error,
      operatorMessage: `invalid new comic: ${parsed.error.message}`,
    });
  }
  return parsed.data;
}

export async function createComic(db: Db, input: NewComicInput): Promise<Comic> {
  const values = parseInput(input);
  const [row] = await db.insert(comics).values(values).returning();
  if (!row) throw new Error('insert into comics returned no row');
  return row;
}

export type CreateWithinLimitsResult =
  | { ok: true; comic: Comic }
  | { ok: false; limit: 'user' | 'guild'; inFlight: { user: number; guild: number } };

/**
 * Creates the comic only if the member and the guild are under their in-flight limits. The count and
 * the insert happen under a per-guild transaction lock, so two `/comic new` at the same moment cannot
 * both squeeze past the limit.
 */
export async function createComicWithinLimits(
  db: Db,
  input: NewComicInput,
  limits: { perUser: number; perGuild: number },
): Promise<CreateWithinLimitsResult> {
  const values = parseInput(input);
  return db.transaction(async (tx) => {
    await tx.execute(
      sql`select pg_advisory_xact_lock(hashtext(${'comicmaster.comics:' + (values.guildId ?? 'local')}))`,
    );
    const inFlight = await comicsInFlight(tx, values.guildId, values.userId);
    if (inFlight.user >= limits.perUser) return { ok: false, limit: 'user', inFlight } as const;
    if (inFlight.guild >= limits.perGuild) return { ok: false, limit: 'guild', inFlight } as const;
    const [row] = await tx.insert(comics).values(values).returning();
    if (!row) throw new Error('insert into comics returned no row');
    return { ok: true, comic: row } as const;
  });
}

/** The comic, or undefined when there is none with that id (including ids that are not uuids). */
export async function getComic(db: Db, id: string): Promise<Comic | undefined> {
  if (!z.uuid().safeParse(id).success) return undefined;
  const [row] = await db.select().from(comics).where(eq(comics.id, id));
  return row;
}

/** Stores the script (validated again: the database is a boundary too) and who wrote it. */
export async function setComicScript(
  db: Db,
  id: string,
  script: ComicScript,
  writer: 'llm' | 'template',
): Promise<Comic | undefined> {
  const valid = ComicScript.parse(script);
  const [row] = await db.update(comics).set({ script: valid, writer }).where(eq(comics.id, id)).returning();
  return row;
}

/**
 * Moves a comic to a new status. A comic that is already done, failed or cancelled stays so (a late
 * job must not bring a cancelled comic back); then nothing changes and undefined is returned.
 */
export async function setComicStatus(
  db: Db,
  id: string,
  status: ComicStatus,
  details: { error?: string | null } = {},
): Promise<Comic | undefined> {
  const set: Partial<typeof comics.$inferInsert> = { status };
  if (details.error !== undefined) set.error = details.error;
  const [row] = await db
    .update(comics)
    .set(set)
    .where(and(eq(comics.id, id), notInArray(comics.status, TERMINAL)))
    .returning();
  return row;
}

/** Comics still being made, for this member in this guild and for the whole guild. */
export async function comicsInFlight(
  db: Db,
  guildId: string | null,
  userId: string,
): Promise<{ user: number; guild: number }> {
  const inGuild = guildId === null ? isNull(comics.guildId) : eq(comics.guildId, guildId);
  const [row] = await db
    .select({
      guild: count(),
      user: sql<number>`count(*) filter (where ${comics.userId} = ${userId})`.mapWith(Number),
    })
    .from(comics)
    .where(and(inGuild, inArray(comics.status, [...COMIC_IN_FLIGHT])));
  return { user: row?.user ?? 0, guild: row?.guild ?? 0 };
}

/** Every comic still being made (scripting, rendering, assembling), oldest first: what a restart owes. */
export async function listUnfinishedComics(db: Db): Promise<Comic[]> {
  return db
    .select()
    .from(comics)
    .where(inArray(comics.status, [...COMIC_IN_FLIGHT]))
    .orderBy(comics.createdAt);
}

/**
 * Records on the comic's options whether its renders must stay safe for any audience (`safe: true`,
 * outside age-restricted channels) — a key ComicOptions does not declare yet, merged into the jsonb.
 * Readers treat a missing key as safe, so a comic is never unrestricted by accident.
 */
export async function setComicOutputSafety(db: Db, id: string, safe: boolean): Promise<Comic | undefined> {
  const [row] = await db
    .update(comics)
    .set({ options: sql`${comics.options} || jsonb_build_object('safe', ${safe}::boolean)` })
    .where(eq(comics.id, id))
    .returning();
  return row;
}
