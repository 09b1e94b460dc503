import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import { RenderRecipe } from '../comic/recipe.ts';
import type { Db } from './client.ts';
import { type PanelRow, type RenderRow, panels, renders } from './schema.ts';

/** Records a render the queue now owes. The recipe is validated: any image must be re-makeable from it. */
export async function createRender(
  db: Db,
  input: { panelId: string; attempt: number; recipe: RenderRecipe },
): Promise<RenderRow> {
  const recipe = RenderRecipe.parse(input.recipe);
  const [row] = await db
    .insert(renders)
    .values({ panelId: input.panelId, attempt: input.attempt, recipe })
    .returning();
  if (!row) throw new Error('insert into renders returned no row');
  return row;
}

/**
 * A 🔁 on a panel's message. Returns the panel and the attempt number the new render gets, or
 * undefined when no panel has that message or a reroll of it is already pending: a second reaction
 * (or the same reaction delivered twice) changes nothing.
 */
export async function requestReroll(
  db: Db,
  panelMessageId: string,
): Promise<{ panel: PanelRow; attempt: number } | undefined> {
  const [panel] = await db
    .update(panels)
    .set({ rerollPending: true, rerollCount: sql`${panels.rerollCount} + 1` })
    .where(and(eq(panels.discordMessageId, panelMessageId), eq(panels.rerollPending, false)))
    .returning();
  if (!panel) return undefined;
  return { panel, attempt: panel.rerollCount };
}

/** A runner took the render. Only a queued render can start; returns undefined otherwise. */
export async function markRenderRunning(
  db: Db,
  id: string,
  runnerId: string,
): Promise<RenderRow | undefined> {
  const [row] = await db
    .update(renders)
    .set({ status: 'running', runnerId, startedAt: sql`now()` })
    .where(and(eq(renders.id, id), eq(renders.status, 'queued')))
    .returning();
  return row;
}

/**
 * The image landed: the render is done and becomes the panel's current one, and the panel accepts
 * rerolls again. A render already finished (a duplicate completion) is left as it was: undefined.
 */
export async function finishRender(db: Db, id: string, artifactKey: string): Promise<RenderRow | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(renders)
      .set({ status: 'done', artifactKey, finishedAt: sql`now()`, error: null })
      .where(and(eq(renders.id, id), inArray(renders.status, ['queued', 'running'])))
      .returning();
    if (!row) return undefined;
    await tx
      .update(panels)
      .set({ currentRenderId: row.id, rerollPending: false })
      .where(eq(panels.id, row.panelId));
    return row;
  });
}

/** The render failed for good: record why, and let the panel be rerolled again. */
export async function failRender(db: Db, id: string, error: string): Promise<RenderRow | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(renders)
      .set({ status: 'failed', error, finishedAt: sql`now()` })
      .where(and(eq(renders.id, id), inArray(renders.status, ['queued', 'running'])))
      .returning();
    if (!row) return undefined;
    await tx.update(panels).set({ rerollPending: false }).where(eq(panels.id, row.panelId));
    return row;
  });
}

/**
 * Like createRender, but a render that already exists for this panel and attempt (a job that ran
 * twice) is returned as it is instead of failing on the unique (panel, attempt) constraint.
 */
export async function createRenderOnce(
  db: Db,
  input: { panelId: string; attempt: number; recipe: RenderRecipe },
): Promise<RenderRow> {
  const recipe = RenderRecipe.parse(input.recipe);
  await db
    .insert(renders)
    .values({ panelId: input.panelId, attempt: input.attempt, recipe })
    .onConflictDoNothing({ target: [renders.panelId, renders.attempt] });
  const [row] = await db
    .select()
    .from(renders)
    .where(and(eq(renders.panelId, input.panelId), eq(renders.attempt, input.attempt)));
  if (!row)
    throw new Error(`render of panel ${input.panelId} attempt ${input.attempt} is missing after insert`);
  return row;
}

/** The panel's render with the highest attempt number, or undefined before its first render exists. */
export async function latestRenderOfPanel(db: Db, panelId: string): Promise<RenderRow | undefined> {
  const [row] = await db
    .select()
    .from(renders)
    .where(eq(renders.panelId, panelId))
    .orderBy(desc(renders.attempt))
    .limit(1);
  return row;
}

/** A comic's renders with where they belong, optionally only those in the given statuses. */
export async function rendersOfComic(
  db: Db,
  comicId: string,
  statuses?: ReadonlyArray<RenderRow['status']>,
): Promise<Array<{ render: RenderRow; pageNumber: number; panelNumber: number }>> {
  const inComic = eq(panels.comicId, comicId);
  return db
    .select({ render: renders, pageNumber: panels.pageNumber, panelNumber: panels.panelNumber })
    .from(renders)
    .innerJoin(panels, eq(panels.id, renders.panelId))
    .where(statuses && statuses.length > 0 ? and(inComic, inArray(renders.status, [...statuses])) : inComic)
    .orderBy(asc(panels.pageNumber), asc(panels.panelNumber), asc(renders.attempt));
}

/**
 * The comic was cancelled: every render it still owes (queued or running) is cancelled, and its panels
 * accept no pending reroll. A runner finishing one of them later changes nothing (finishRender only
 * moves queued or running renders). Returns the cancelled renders.
 */
export async function cancelRendersOfComic(db: Db, comicId: string): Promise<RenderRow[]> {
  return db.transaction(async (tx) => {
    const owed = tx.select({ id: panels.id }).from(panels).where(eq(panels.comicId, comicId));
    const rows = await tx
      .update(renders)
      .set({ status: 'cancelled', finishedAt: sql`now()` })
      .where(and(inArray(renders.panelId, owed), inArray(renders.status, ['queued', 'running'])))
      .returning();
    await tx.update(panels).set({ rerollPending: false }).where(eq(panels.comicId, comicId));
    return rows;
  });
}
