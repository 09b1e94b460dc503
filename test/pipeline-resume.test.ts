import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAssembleJob } from '../src/comic/flow/assemble-worker.ts';
import {
  resumeUnfinishedComics,
  startComic,
  startCpuWorkers,
  type StartComicInput,
} from '../src/comic/flow/index.ts';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import { createComicWithinLimits, getComic } from '../src/db/comics.ts';
import { listPages } from '../src/db/pages.ts';
import { rendersOfComic } from '../src/db/renders.ts';
import type { PostJob } from '../src/queue/payloads.ts';
import {
  createPipelineHarness,
  eventually,
  postJobs,
  startPipelineWorkers,
  startTestRenderWorker,
  type PipelineHarness,
} from './helpers/pipeline.ts';
import { cleanupQueues } from './helpers/redis.ts';

const GUILD = '411111111111111111';
const SLOW = 180_000;

let h: PipelineHarness;

beforeAll(async () => {
  h = await createPipelineHarness('pipeline-resume');
});

afterAll(async () => {
  await h?.close();
});

function request(userId: string): StartComicInput {
  return {
    guildId: GUILD,
    channelId: '511111111111111111',
    userId,
    prompt: 'A lighthouse keeper teaches a seagull to read the weather.',
    options: { pages: 2, panelsPerPage: 2, model: 'noobai', rtl: false, safe: true },
    limits: { perUser: 1, perGuild: 10 },
  };
}

async function started(userId: string) {
  const result = await startComic(h.deps, request(userId));
  if (!result.ok) throw new Error(result.reason);
  return result.comic;
}

async function comicDone(comicId: string): Promise<void> {
  await eventually(async () => {
    const comic = await getComic(h.deps.db, comicId);
    if (comic?.status === 'failed') throw new Error(`comic failed: ${comic.error}`);
    return comic?.status === 'done';
  });
}

const pagePosts = (posts: PostJob[], comicId: string) =>
  posts.flatMap((p) => (p.kind === 'page' && p.comicId === comicId ? [p.pageNumber] : [])).sort();

/** Redis loses everything (a flush, a failover without persistence); what it held is returned first. */
async function loseRedis(): Promise<PostJob[]> {
  const posts = await postJobs(h.producer);
  await cleanupQueues(h.deps.queueConnection);
  return posts;
}

describe('resume after a restart', () => {
  it(
    'workers stopped mid-comic and started again: it completes, each page assembled and posted once',
    async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let heldOnPage2 = 0;
      const first = await startPipelineWorkers(h.deps, {
        onRender: async (job) => {
          if (job.pageNumber !== 2) return;
          heldOnPage2++;
          await gate;
        },
      });
      const comic = await started('u-restart');
      // Page 1 is lettered and posted while both renders of page 2 are on the "GPU".
      await eventually(
        async () => pagePosts(await postJobs(h.producer), comic.id).length === 1 && heldOnPage2 === 2,
      );
      release();
      await first.close();
      expect((await getComic(h.deps.db, comic.id))?.status).toBe('rendering');
      expect((await listPages(h.deps.db, comic.id)).map((p) => p.status)).toEqual(['done', 'rendering']);

      // Everything owed is still in the queues: the sweep adds nothing.
      const report = await resumeUnfinishedComics(h.deps);
      expect(report).toMatchObject({ scripts: 0, renders: 0, assemblies: 0 });

      const second = await startPipelineWorkers(h.deps);
      try {
        await comicDone(comic.id);
        expect(pagePosts(await postJobs(h.producer), comic.id)).toEqual([1, 2]);
        expect(await rendersOfComic(h.deps.db, comic.id)).toHaveLength(4);
      } finally {
        await second.close();
      }
    },
    SLOW,
  );

  it(
    'renders lost with Redis are queued again once, and each is rendered once',
    async () => {
      const comic = await started('u-lost-renders');
      await processScriptJob(h.deps, { comicId: comic.id });
      const before = await loseRedis();

      const report = await resumeUnfinishedComics(h.deps);
      expect(report).toMatchObject({ scripts: 0, renders: 4, assemblies: 0 });
      expect(await resumeUnfinishedComics(h.deps)).toMatchObject({ scripts: 0, renders: 0, assemblies: 0 });

      const rendered: string[] = [];
      const workers = await startPipelineWorkers(h.deps, {
        onRender: (job) => void rendered.push(job.renderId),
      });
      try {
        await comicDone(comic.id);
        expect(rendered.sort()).toEqual(
          (await rendersOfComic(h.deps.db, comic.id)).map((r) => r.render.id).sort(),
        );
        expect(rendered).toHaveLength(4);
        expect(pagePosts([...before, ...(await postJobs(h.producer))], comic.id)).toEqual([1, 2]);
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );

  it(
    'a lost assembly is queued again only for the page not yet done',
    async () => {
      const comic = await started('u-lost-assembly');
      await processScriptJob(h.deps, { comicId: comic.id });
      const renderWorker = startTestRenderWorker(h.deps);
      try {
        await eventually(async () => {
          const renders = await rendersOfComic(h.deps.db, comic.id);
          return renders.length === 4 && renders.every((r) => r.render.status === 'done');
        });
      } finally {
        await renderWorker.close();
      }
      // Page 1 gets lettered; then Redis loses page 2's waiting assembly.
      const outcome = await processAssembleJob(
        h.deps,
        { comicId: comic.id, pageNumber: 1 },
        { id: 'assemble-before-the-loss', getIgnoredChildrenFailures: async () => ({}) },
      );
      expect(outcome).toMatchObject({ kind: 'assembled', comicDone: false });
      const before = await loseRedis();

      expect(await resumeUnfinishedComics(h.deps)).toMatchObject({ scripts: 0, renders: 0, assemblies: 1 });
      expect(await resumeUnfinishedComics(h.deps)).toMatchObject({ assemblies: 0 });
      const cpu = await startCpuWorkers(h.deps);
      try {
        await comicDone(comic.id);
        expect(pagePosts([...before, ...(await postJobs(h.producer))], comic.id)).toEqual([1, 2]);
        const done = (await postJobs(h.producer)).filter(
          (p) => p.kind === 'status' && p.comicId === comic.id,
        );
        expect(done).toHaveLength(1);
      } finally {
        await cpu.close();
      }
    },
    SLOW,
  );

  it(
    'a comic whose script job never reached the queue is scripted and finished',
    async () => {
      // The row was written, then the process died before it could enqueue the script.
      const created = await createComicWithinLimits(
        h.deps.db,
        {
          guildId: GUILD,
          channelId: '511111111111111111',
          userId: 'u-no-job',
          prompt: 'Two robots open a bakery.',
          options: { pages: 1, panelsPerPage: 3, style: null, modelFamily: 'flux', rtl: false },
        },
        { perUser: 1, perGuild: 10 },
      );
      if (!created.ok) throw new Error('limit');
      const report = await resumeUnfinishedComics(h.deps);
      expect(report).toMatchObject({ scripts: 1, renders: 0, assemblies: 0 });
      expect(await resumeUnfinishedComics(h.deps)).toMatchObject({ scripts: 0 });

      const workers = await startPipelineWorkers(h.deps);
      try {
        await comicDone(created.comic.id);
        expect(pagePosts(await postJobs(h.producer), created.comic.id)).toEqual([1]);
        const renders = await rendersOfComic(h.deps.db, created.comic.id);
        // No safe flag was stored: the comic renders safe (FLUX says so in words).
        expect(renders.every((r) => r.render.recipe.positive.includes('safe-for-work'))).toBe(true);
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );
});
