import { createHash } from 'node:crypto';
import { getComic, listUnfinishedComics, setComicStatus } from '../../db/comics.ts';
import { allPagesDone, listPages } from '../../db/pages.ts';
import { panelsWithCurrentRenders } from '../../db/panels.ts';
import { cancelRendersOfComic, rendersOfComic } from '../../db/renders.ts';
import type { Comic } from '../../db/schema.ts';
import type { RenderJob } from '../../queue/payloads.ts';
import { renderOwner } from '../../scheduling/candidates.ts';
import { type PipelineDeps, pipelineLogger } from './deps.ts';
import { jobIds } from './job-ids.ts';
import { withPageFlows } from './page-flows.ts';
import { clearFinishedJob, pageKey, pendingJobs, pendingWork } from './queue-state.ts';

export interface ResumeReport {
  comics: number;
  scripts: number;
  renders: number;
  assemblies: number;
  finished: number;
}

const shortHash = (parts: string[]) =>
  createHash('sha256').update(parts.join(',')).digest('hex').slice(0, 16);

/**
 * Start-up sweep of the bot or the runner: PostgreSQL says what every unfinished comic still owes;
 * whatever of that is not in the queues (Redis lost it, or a process died between writing a row and
 * adding its job) is queued again under deterministic ids. Work still in the queues is left alone —
 * BullMQ itself hands stalled jobs of a dead worker to a live one — so nothing is done twice, and a
 * second sweep adds nothing.
 */
export async function resumeUnfinishedComics(deps: PipelineDeps): Promise<ResumeReport> {
  const logger = pipelineLogger(deps, 'resume');
  const report: ResumeReport = { comics: 0, scripts: 0, renders: 0, assemblies: 0, finished: 0 };
  const comics = await listUnfinishedComics(deps.db);
  report.comics = comics.length;
  if (comics.length === 0) return report;
  const pending = await pendingWork(deps.producer);

  await withPageFlows(deps.queueConnection, logger, async (flows) => {
    for (const comic of comics) {
      if (comic.status === 'scripting' || comic.script === null) {
        if (!pending.scripts.has(comic.id)) {
          await clearFinishedJob(deps.producer, 'script', jobIds.script(comic.id));
          await deps.producer.enqueue('script', { comicId: comic.id }, { jobId: jobIds.script(comic.id) });
          report.scripts++;
        }
        continue;
      }
      await resumeRendering(deps, comic, pending, flows, report);
    }
  });
  if (report.scripts + report.renders + report.assemblies + report.finished > 0) {
    logger.info(report, 'unfinished comics resumed');
  }
  return report;
}

async function resumeRendering(
  deps: PipelineDeps,
  comic: Comic,
  pending: Awaited<ReturnType<typeof pendingWork>>,
  flows: Parameters<Parameters<typeof withPageFlows>[2]>[0],
  report: ResumeReport,
): Promise<void> {
  const owed = await rendersOfComic(deps.db, comic.id, ['queued', 'running']);
  const pages = await listPages(deps.db, comic.id);

  for (const page of pages) {
    const owedHere = owed.filter((o) => o.pageNumber === page.number);
    // Asked per render, after reading the rows: a render queued since the sweep began is not "lost".
    // A completed job counts as present (its runner has recorded, or is recording, the result).
    const lost = [];
    for (const o of owedHere) {
      const state = await deps.producer.queue('render').getJobState(jobIds.render(o.render.id));
      if (state === 'unknown' || state === 'failed') lost.push(o);
    }
    if (lost.length > 0) {
      const renders: RenderJob[] = lost.map((o) => ({
        renderId: o.render.id,
        comicId: comic.id,
        pageNumber: page.number,
        panelNumber: o.panelNumber,
        attempt: o.render.attempt,
        recipe: o.render.recipe,
        // A reroll was asked for by a person; first renders are batch work.
        interactive: o.render.attempt > 0,
        // Turns are taken by person, also for work recovered after a crash.
        owner: renderOwner(comic),
      }));
      for (const r of renders) await clearFinishedJob(deps.producer, 'render', jobIds.render(r.renderId));
      const parentJobId = jobIds.assembleResume(
        comic.id,
        page.number,
        shortHash(renders.map((r) => r.renderId)),
      );
      await clearFinishedJob(deps.producer, 'assemble-page', parentJobId);
      try {
        await flows.add({ comicId: comic.id, pageNumber: page.number, parentJobId, renders });
        report.renders += renders.length;
      } catch (error) {
        // One page that cannot be re-queued must not keep the others from resuming; the next sweep retries.
        pipelineLogger(deps, 'resume').error(
          { comicId: comic.id, page: page.number, err: error },
          'could not re-queue renders',
        );
      }
      continue;
    }
    if (owedHere.length > 0 || page.status === 'done' || page.status === 'failed') continue;
    if (pending.assemblies.has(pageKey(comic.id, page.number))) continue;
    // Every panel rendered, the page not lettered, and no assembly queued: that is what is owed.
    const current = await panelsWithCurrentRenders(deps.db, comic.id, page.number);
    const jobId = jobIds.assembleResume(
      comic.id,
      page.number,
      shortHash(current.map((c) => c.render?.id ?? '-')),
    );
    await clearFinishedJob(deps.producer, 'assemble-page', jobId);
    await deps.producer.enqueue('assemble-page', { comicId: comic.id, pageNumber: page.number }, { jobId });
    report.assemblies++;
  }

  // Every page lettered but the comic not marked done (a crash between the two): finish it.
  if (await allPagesDone(deps.db, comic.id)) {
    if (await setComicStatus(deps.db, comic.id, 'done')) {
      await deps.producer.enqueue(
        'post',
        { kind: 'status', comicId: comic.id },
        { jobId: jobIds.postDone(comic.id) },
      );
      report.finished++;
    }
  }
}

export type CancelResult =
  { cancelled: true; comic: Comic; renders: number } | { cancelled: false; reason: string };

/**
 * `/comic cancel`: by the comic's owner, or by a member the bot found to have Manage Messages
 * (`asModerator`). The comic becomes cancelled (freeing its in-flight slot), the renders it still owes
 * are cancelled and their queued jobs removed; a render already on the GPU finishes but changes nothing.
 */
export async function cancelComic(
  deps: PipelineDeps,
  comicId: string,
  byUserId: string,
  options: { asModerator?: boolean } = {},
): Promise<CancelResult> {
  const logger = pipelineLogger(deps, 'cancel').child({ comicId, byUserId });
  const comic = await getComic(deps.db, comicId);
  if (!comic) return { cancelled: false, reason: 'There is no comic with that id.' };
  if (comic.userId !== byUserId && !options.asModerator) {
    return {
      cancelled: false,
      reason: 'Only the member who started that comic, or someone with Manage Messages, can cancel it.',
    };
  }
  const row = await setComicStatus(deps.db, comicId, 'cancelled');
  if (!row) return { cancelled: false, reason: `That comic is already ${comic.status}.` };
  const renders = await cancelRendersOfComic(deps.db, comicId);

  let removed = 0;
  // Parents first: removing an assembly removes its renders that have not started.
  for (const name of ['script', 'assemble-page', 'render'] as const) {
    for (const job of await pendingJobs(deps.producer, name)) {
      if ((job.data as { comicId?: unknown }).comicId !== comicId) continue;
      try {
        await job.remove({ removeChildren: true });
        removed++;
      } catch (error) {
        // A job a worker holds right now cannot be removed; it will find the comic cancelled.
        logger.debug({ jobId: job.id, err: error }, 'job not removed (running)');
      }
    }
  }
  await deps.producer.enqueue('post', { kind: 'status', comicId }, { jobId: jobIds.postCancelled(comicId) });
  logger.info({ renders: renders.length, jobsRemoved: removed }, 'comic cancelled');
  return { cancelled: true, comic: row, renders: renders.length };
}
