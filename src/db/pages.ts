import { and, asc, eq, ne } from 'drizzle-orm';
import type { Db } from './client.ts';
import { PageLayout } from './json.ts';
import { type PageRow, pages } from './schema.ts';

type PageStatus = PageRow['status'];

/**
 * Creates the pages of a comic, each with its layout. A page that already exists (the script job ran
 * before and crashed, or is running twice) is left as it is: the unique (comic, number) constraint
 * makes this idempotent. Returns every page of the comic, in order.
 */
export async function createPages(
  db: Db,
  comicId: string,
  input: ReadonlyArray<{ number: number; layout: PageLayout }>,
): Promise<PageRow[]> {
  if (input.length > 0) {
    await db
      .insert(pages)
      .values(input.map((p) => ({ comicId, number: p.number, layout: PageLayout.parse(p.layout) })))
      .onConflictDoNothing({ target: [pages.comicId, pages.number] });
  }
  return listPages(db, comicId);
}

export async function listPages(db: Db, comicId: string): Promise<PageRow[]> {
  return db.select().from(pages).where(eq(pages.comicId, comicId)).orderBy(asc(pages.number));
}

export async function getPage(db: Db, comicId: string, number: number): Promise<PageRow | undefined> {
  const [row] = await db
    .select()
    .from(pages)
    .where(and(eq(pages.comicId, comicId), eq(pages.number, number)));
  return row;
}

/** Moves a page to a status. A page already done stays done: a late job must not reopen it. */
export async function setPageStatus(
  db: Db,
  comicId: string,
  number: number,
  status: PageStatus,
): Promise<PageRow | undefined> {
  const [row] = await db
    .update(pages)
    .set({ status })
    .where(and(eq(pages.comicId, comicId), eq(pages.number, number), ne(pages.status, 'done')))
    .returning();
  return row;
}

/** The page's image is in the store under `artifactKey`: the page is done (again, after a reroll). */
export async function markPageDone(
  db: Db,
  comicId: string,
  number: number,
  artifactKey: string,
): Promise<PageRow | undefined> {
  const [row] = await db
    .update(pages)
    .set({ status: 'done', artifactKey })
    .where(and(eq(pages.comicId, comicId), eq(pages.number, number)))
    .returning();
  return row;
}

/** The page's message on Discord (the bot records it after posting, to edit it after a reroll). */
export async function setPageMessageId(
  db: Db,
  comicId: string,
  number: number,
  messageId: string,
): Promise<PageRow | undefined> {
  const [row] = await db
    .update(pages)
    .set({ discordMessageId: messageId })
    .where(and(eq(pages.comicId, comicId), eq(pages.number, number)))
    .returning();
  return row;
}

/** True when the comic has pages and every one of them is done. */
export async function allPagesDone(db: Db, comicId: string): Promise<boolean> {
  const rows = await listPages(db, comicId);
  return rows.length > 0 && rows.every((p) => p.status === 'done');
}
