/**
 * The text of a comic's one status message: a progress bar, panels done of total, pages assembled,
 * the queue position of its next render and an ETA, read from the database and the render queue.
 */
import { asc, eq, inArray } from 'drizzle-orm';
import type { Queue } from 'bullmq';
import type { Db } from '../db/client.ts';
import { type Comic, pages, panels, renders } from '../db/schema.ts';
import type { JobPayload } from '../queue/index.ts';

export interface ComicProgress {
  title: string | null;
  panelsDone: number;
  panelsTotal: number;
  pagesDone: number;
  pagesTotal: number;
  /** 1-based place of this comic's first waiting render in the render queue; null when none waits. */
  queuePosition: number | null;
  /** Seconds until every panel is drawn, from this comic's render times so far; null when unknown. */
  etaSeconds: number | null;
  /** The render currently running (its preview may be in the store). */
  runningRenderId: string | null;
}

/** How far down the render queue we look for a position (a longer queue is shown as "> N"). */
export const QUEUE_SCAN_LIMIT = 500;

export async function readProgress(
  db: Db,
  comic: Comic,
  renderQueue: Queue<JobPayload<'render'>> | undefined,
): Promise<ComicProgress> {
  const panelRows = await db
    .select({ id: panels.id, currentRenderId: panels.currentRenderId })
    .from(panels)
    .where(eq(panels.comicId, comic.id));
  const pageRows = await db.select({ status: pages.status }).from(pages).where(eq(pages.comicId, comic.id));
  const panelIds = panelRows.map((p) => p.id);
  const renderRows =
    panelIds.length === 0
      ? []
      : await db
          .select({
            id: renders.id,
            status: renders.status,
            startedAt: renders.startedAt,
            finishedAt: renders.finishedAt,
          })
          .from(renders)
          .where(inArray(renders.panelId, panelIds))
          .orderBy(asc(renders.queuedAt));

  const scriptPanels = comic.script?.pages.reduce((n, p) => n + p.panels.length, 0) ?? 0;
  const panelsTotal = Math.max(
    panelRows.length,
    scriptPanels,
    comic.options.pages * comic.options.panelsPerPage,
  );
  const panelsDone = panelRows.filter((p) => p.currentRenderId !== null).length;
  const durations = renderRows
    .filter((r) => r.status === 'done' && r.startedAt && r.finishedAt)
    .map((r) => r.finishedAt!.getTime() - r.startedAt!.getTime());
  const average = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : null;
  const remaining = panelsTotal - panelsDone;
  const running = renderRows.find((r) => r.status === 'running');

  return {
    title: comic.script?.title ?? null,
    panelsDone,
    panelsTotal,
    pagesDone: pageRows.filter((p) => p.status === 'done').length,
    pagesTotal: Math.max(pageRows.length, comic.options.pages),
    queuePosition: renderQueue ? await queuePositionOf(renderQueue, comic.id) : null,
    etaSeconds: average === null || remaining <= 0 ? null : Math.round((average * remaining) / 1000),
    runningRenderId: running?.id ?? null,
  };
}

/** Where the comic's first waiting render stands among every waiting render (priority order first). */
export async function queuePositionOf(
  renderQueue: Queue<JobPayload<'render'>>,
  comicId: string,
): Promise<number | null> {
  const waiting = await renderQueue.getJobs(['prioritized', 'waiting'], 0, QUEUE_SCAN_LIMIT - 1, true);
  const index = waiting.findIndex((job) => job?.data?.comicId === comicId);
  return index < 0 ? null : index + 1;
}

const BAR_WIDTH = 12;

export function progressBar(done: number, total: number): string {
  const share = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(share * BAR_WIDTH);
  return `\`${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}\` ${Math.round(share * 100)}%`;
}

export function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, seconds)} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The status message's text for a comic in any state. */
export function statusText(comic: Comic, progress: ComicProgress): string {
  const name = progress.title ? `**${progress.title}**` : 'Your comic';
  const head = `${name} · comic \`${comic.id}\``;
  switch (comic.status) {
    case 'scripting':
      return `${head}\n✍️ Writing the script…`;
    case 'done':
      return `${head}\n✅ Done: ${progress.pagesTotal} page${progress.pagesTotal === 1 ? '' : 's'}, ${progress.panelsTotal} panels. React 🔁 on a panel to draw it again.`;
    case 'failed':
      return `${head}\n❌ This comic could not be finished.`;
    case 'cancelled':
      return `${head}\n🛑 Cancelled.`;
    default: {
      const lines = [
        head,
        `${progress.panelsDone === progress.panelsTotal ? '📐 Lettering pages…' : '🎨 Drawing panels…'} ${progressBar(progress.panelsDone, progress.panelsTotal)}`,
        `Panels ${progress.panelsDone}/${progress.panelsTotal} · pages ${progress.pagesDone}/${progress.pagesTotal}`,
      ];
      const extra: string[] = [];
      if (progress.queuePosition !== null) extra.push(`queue position ${progress.queuePosition}`);
      if (progress.etaSeconds !== null) extra.push(`ETA ~${formatEta(progress.etaSeconds)}`);
      if (extra.length) lines.push(extra.join(' · '));
      return lines.join('\n');
    }
  }
}
