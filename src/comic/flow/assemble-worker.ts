import type { Job, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { getComic, setComicStatus } from '../../db/comics.ts';
import { allPagesDone, getPage, markPageDone, setPageStatus } from '../../db/pages.ts';
import { panelsWithCurrentRenders } from '../../db/panels.ts';
import { failRender } from '../../db/renders.ts';
import { ComicMasterError, InputError } from '../../errors.ts';
import type { JobPayload } from '../../queue/payloads.ts';
import { createWorker } from '../../queue/worker.ts';
import { artifactKeys } from '../../store/keys.ts';
import { DISCORD_UPLOAD_LIMIT, encodeUnderLimit } from '../encode.ts';
import { assemblePage } from '../page.ts';
import { pageLayoutOf } from './comic-data.ts';
import { type PipelineDeps, pipelineLogger } from './deps.ts';
import { failComic, isLastAttempt } from './failure.ts';
import { jobIds } from './job-ids.ts';

export type AssembleOutcome =
  | { kind: 'assembled'; artifactKey: string; bytes: number; format: string; comicDone: boolean }
  | { kind: 'skipped'; reason: string }
  | { kind: 'failed'; reason: string };

/** How often an assembly starts over because a reroll landed while it was lettering the page. */
const MAX_REASSEMBLIES = 3;

const renderIdsKey = (rows: Array<{ render: { id: string } | null }>) =>
  rows.map((r) => r.render?.id ?? '-').join(',');

/**
 * The `assemble-page` job: letter a page from its panels' current renders and store it.
 *
 * The database, not the job, says what the page shows: the panels' current renders. So the parent of
 * the first renders and the parent of a reroll do the same thing, and the last one to finish shows the
 * newest panels. If a reroll lands while the page is being lettered, the assembly starts over, so an
 * older assembly can never overwrite a newer page.
 */
export async function processAssembleJob(
  deps: PipelineDeps,
  payload: JobPayload<'assemble-page'>,
  job: Pick<Job, 'id' | 'getIgnoredChildrenFailures'>,
): Promise<AssembleOutcome> {
  const { comicId, pageNumber } = payload;
  const logger = pipelineLogger(deps, 'assemble-worker').child({ comicId, pageNumber, jobId: job.id });
  const comic = await getComic(deps.db, comicId);
  if (!comic) {
    throw new InputError('That comic no longer exists.', {
      operatorMessage: `assemble job for missing comic ${comicId}`,
    });
  }
  if (comic.status === 'cancelled' || comic.status === 'failed') {
    return { kind: 'skipped', reason: `comic is ${comic.status}` };
  }
  const page = await getPage(deps.db, comicId, pageNumber);
  if (!page) {
    throw new InputError(`Page ${pageNumber} of that comic does not exist.`, {
      operatorMessage: `assemble job for missing page ${comicId}/${pageNumber}`,
    });
  }
  const layout = pageLayoutOf(page);
  if (page.status === 'done' && Object.keys(await job.getIgnoredChildrenFailures()).length > 0) {
    // A reroll's render failed: the panel keeps its image and the page stays as it is.
    return { kind: 'skipped', reason: 'the reroll failed; the page keeps its panels' };
  }

  for (let round = 0; round < MAX_REASSEMBLIES; round++) {
    const rows = await panelsWithCurrentRenders(deps.db, comicId, pageNumber);
    if (rows.length !== layout.frames.length) {
      throw new Error(
        `page ${comicId}/${pageNumber} has ${rows.length} panels for ${layout.frames.length} frames`,
      );
    }
    const missing = rows.filter((r) => r.render === null || r.render.artifactKey === null);
    if (missing.length > 0) {
      return handleMissingPanels(deps, job, comicId, pageNumber, page.status, missing.length, logger);
    }

    const images = await Promise.all(rows.map((r) => deps.store.getBuffer(r.render!.artifactKey!)));
    const assembled = await assemblePage({
      frames: layout.frames,
      panels: rows.map((r) => r.panel.scriptPanel),
      images,
      geometry: layout.geometry,
      rtl: layout.rtl,
      pageNumber,
      // The model painted these panels' balloons (lettering "model"): do not letter them again.
      drawnByModel: rows.map((r) => r.render?.recipe.drawnText !== undefined),
    });
    const encoded = await encodeUnderLimit(assembled.png, {
      maxBytes: deps.uploadLimitBytes ?? DISCORD_UPLOAD_LIMIT,
    });
    const key = artifactKeys.page(comicId, pageNumber);

    // A reroll that landed meanwhile makes this page stale: letter it again with the newer panel.
    const before = renderIdsKey(rows);
    await deps.store.put(key, encoded.data, { contentType: `image/${encoded.format}` });
    const after = renderIdsKey(await panelsWithCurrentRenders(deps.db, comicId, pageNumber));
    if (after !== before) {
      logger.info({ round }, 'a panel changed while the page was lettered; assembling again');
      continue;
    }

    await markPageDone(deps.db, comicId, pageNumber, key);
    await deps.producer.enqueue(
      'post',
      { kind: 'page', comicId, pageNumber },
      { jobId: jobIds.postPage(String(job.id)) },
    );
    const comicDone = await finishComicIfComplete(deps, comicId);
    logger.info({ bytes: encoded.data.length, format: encoded.format, comicDone }, 'page assembled');
    return {
      kind: 'assembled',
      artifactKey: key,
      bytes: encoded.data.length,
      format: encoded.format,
      comicDone,
    };
  }
  // Rerolls keep landing: each of them has its own assembly queued, which will show the newest.
  return { kind: 'skipped', reason: 'panels kept changing; a later assembly letters the page' };
}

/**
 * Some panel has no image. Either one of this job's renders failed for good (the page cannot be made:
 * the comic fails and the channel hears why), or this is a reroll's assembly for a page whose first
 * renders are still running (their own assembly will letter it).
 */
async function handleMissingPanels(
  deps: PipelineDeps,
  job: Pick<Job, 'id' | 'getIgnoredChildrenFailures'>,
  comicId: string,
  pageNumber: number,
  pageStatus: string,
  missing: number,
  logger: Logger,
): Promise<AssembleOutcome> {
  const failures = await job.getIgnoredChildrenFailures();
  const failedRenders = Object.values(failures);
  if (failedRenders.length === 0) {
    return { kind: 'skipped', reason: `${missing} panel(s) not rendered yet` };
  }
  // The runner records its own failures; this catches renders whose job died before it could.
  for (const jobKey of Object.keys(failures)) {
    const renderId = /render-([0-9a-f-]{36})$/.exec(jobKey)?.[1];
    if (renderId) await failRender(deps.db, renderId, failures[jobKey] ?? 'render job failed');
  }
  if (pageStatus !== 'done') await setPageStatus(deps.db, comicId, pageNumber, 'failed');
  logger.error({ failures }, 'renders of the page failed for good; failing the comic');
  await failComic(
    deps,
    comicId,
    new ComicMasterError(
      'render_failed',
      `Page ${pageNumber} could not be drawn: ${missing} panel(s) failed to render. Try again with /comic new.`,
      { operatorMessage: `renders failed: ${failedRenders.join('; ')}` },
    ),
  );
  return { kind: 'failed', reason: `${failedRenders.length} render(s) failed` };
}

/** When every page is done the comic is done; only the call that makes it so posts the final status. */
async function finishComicIfComplete(deps: PipelineDeps, comicId: string): Promise<boolean> {
  if (!(await allPagesDone(deps.db, comicId))) return false;
  const changed = await setComicStatus(deps.db, comicId, 'done');
  if (changed) {
    await deps.producer.enqueue('post', { kind: 'status', comicId }, { jobId: jobIds.postDone(comicId) });
  }
  return true;
}

/** The `assemble-page` queue's worker. */
export function createAssembleWorker(deps: PipelineDeps, options: { concurrency?: number } = {}): Worker {
  const logger = pipelineLogger(deps, 'assemble-worker');
  return createWorker(
    'assemble-page',
    async (payload, job: Job) => {
      try {
        return await processAssembleJob(deps, payload, job);
      } catch (error) {
        if (isLastAttempt(job, error)) {
          logger.error({ ...payload, err: error }, 'page assembly failed for good; failing the comic');
          await setPageStatus(deps.db, payload.comicId, payload.pageNumber, 'failed');
          await failComic(deps, payload.comicId, error);
        }
        throw error;
      }
    },
    // Lettering a page is CPU-bound (sharp uses its own threads): one page at a time per process.
    { connection: deps.queueConnection, logger, concurrency: options.concurrency ?? 1 },
  );
}
