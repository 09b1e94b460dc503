/**
 * Writes the ids of the messages the bot posted, right after each post, so a post job that runs again
 * (a retry, a restart) edits the message instead of posting a second one.
 */
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { comics, pages, panels, renders, type PanelRow, type PageRow, type RenderRow } from '../db/schema.ts';

export async function setStatusMessageId(db: Db, comicId: string, messageId: string): Promise<void> {
  await db.update(comics).set({ statusMessageId: messageId }).where(eq(comics.id, comicId));
}

/** Appends one storyboard message id (a storyboard of many pages may need several messages). */
export async function addStoryboardMessageId(db: Db, comicId: string, messageId: string): Promise<void> {
  await db
    .update(comics)
    .set({
      storyboardMessageIds: sql`${comics.storyboardMessageIds} || ${JSON.stringify([messageId])}::jsonb`,
    })
    .where(eq(comics.id, comicId));
}

export async function setPanelMessageId(db: Db, panelId: string, messageId: string): Promise<void> {
  await db.update(panels).set({ discordMessageId: messageId }).where(eq(panels.id, panelId));
}

export async function setPageMessageId(db: Db, pageId: string, messageId: string): Promise<void> {
  await db.update(pages).set({ discordMessageId: messageId }).where(eq(pages.id, pageId));
}

export async function findPanel(
  db: Db,
  comicId: string,
  pageNumber: number,
  panelNumber: number,
): Promise<PanelRow | undefined> {
  const [row] = await db
    .select()
    .from(panels)
    .where(
      and(
        eq(panels.comicId, comicId),
        eq(panels.pageNumber, pageNumber),
        eq(panels.panelNumber, panelNumber),
      ),
    );
  return row;
}

export async function findPage(db: Db, comicId: string, pageNumber: number): Promise<PageRow | undefined> {
  const [row] = await db
    .select()
    .from(pages)
    .where(and(eq(pages.comicId, comicId), eq(pages.number, pageNumber)));
  return row;
}

export async function findRender(db: Db, renderId: string): Promise<RenderRow | undefined> {
  const [row] = await db.select().from(renders).where(eq(renders.id, renderId));
  return row;
}
