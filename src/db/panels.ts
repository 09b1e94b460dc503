import { and, asc, eq } from 'drizzle-orm';
import { Panel as ScriptPanel } from '../agents/script-schema.ts';
import type { Db } from './client.ts';
import { type PanelRow, type RenderRow, panels, renders } from './schema.ts';

/**
 * Creates a comic's panels (their pages must exist). A panel that already exists is left as it is
 * (unique comic + page + panel), so a script job that runs twice creates nothing twice. Returns every
 * panel of the comic in page and reading order.
 */
export async function createPanels(
  db: Db,
  comicId: string,
  input: ReadonlyArray<{ pageNumber: number; panelNumber: number; scriptPanel: ScriptPanel }>,
): Promise<PanelRow[]> {
  if (input.length > 0) {
    await db
      .insert(panels)
      .values(
        input.map((p) => ({
          comicId,
          pageNumber: p.pageNumber,
          panelNumber: p.panelNumber,
          scriptPanel: ScriptPanel.parse(p.scriptPanel),
        })),
      )
      .onConflictDoNothing({ target: [panels.comicId, panels.pageNumber, panels.panelNumber] });
  }
  return listPanels(db, comicId);
}

/** The comic's panels in page and reading order; only one page's when `pageNumber` is given. */
export async function listPanels(db: Db, comicId: string, pageNumber?: number): Promise<PanelRow[]> {
  const where =
    pageNumber === undefined
      ? eq(panels.comicId, comicId)
      : and(eq(panels.comicId, comicId), eq(panels.pageNumber, pageNumber));
  return db.select().from(panels).where(where).orderBy(asc(panels.pageNumber), asc(panels.panelNumber));
}

export async function getPanel(db: Db, id: string): Promise<PanelRow | undefined> {
  const [row] = await db.select().from(panels).where(eq(panels.id, id));
  return row;
}

/** The panel whose Discord message carries the 🔁 reaction. */
export async function getPanelByMessageId(db: Db, messageId: string): Promise<PanelRow | undefined> {
  const [row] = await db.select().from(panels).where(eq(panels.discordMessageId, messageId));
  return row;
}

/** The bot posted the panel's own message: record it, so a 🔁 on it finds the panel. */
export async function setPanelMessageId(
  db: Db,
  panelId: string,
  messageId: string,
): Promise<PanelRow | undefined> {
  const [row] = await db
    .update(panels)
    .set({ discordMessageId: messageId })
    .where(eq(panels.id, panelId))
    .returning();
  return row;
}

/** A page's panels, each with the render it currently shows (null until its first render lands). */
export async function panelsWithCurrentRenders(
  db: Db,
  comicId: string,
  pageNumber: number,
): Promise<Array<{ panel: PanelRow; render: RenderRow | null }>> {
  const rows = await db
    .select({ panel: panels, render: renders })
    .from(panels)
    .leftJoin(renders, eq(renders.id, panels.currentRenderId))
    .where(and(eq(panels.comicId, comicId), eq(panels.pageNumber, pageNumber)))
    .orderBy(asc(panels.panelNumber));
  return rows;
}

/** A reroll could not be queued: the panel accepts 🔁 again. */
export async function clearRerollPending(db: Db, panelId: string): Promise<void> {
  await db.update(panels).set({ rerollPending: false }).where(eq(panels.id, panelId));
}
