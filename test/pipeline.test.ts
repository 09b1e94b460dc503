import { and, eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processScriptJob } from '../src/comic/flow/script-worker.ts';
import { cancelComic, rerollPanel, startComic, type StartComicInput } from '../src/comic/flow/index.ts';
import { getComic } from '../src/db/comics.ts';
import { listPages } from '../src/db/pages.ts';
import { listPanels, setPanelMessageId } from '../src/db/panels.ts';
import { rendersOfComic } from '../src/db/renders.ts';
import { comics as comicsTable, panels, styles } from '../src/db/schema.ts';
import { InputError } from '../src/errors.ts';
import { artifactKeys } from '../src/store/keys.ts';
import {
  createPipelineHarness,
  eventually,
  postJobs,
  startPipelineWorkers,
  TEST_GEOMETRY,
  type PipelineHarness,
} from './helpers/pipeline.ts';

const GUILD = '111111111111111111';
const CHANNEL = '211111111111111111';
const SLOW = 180_000;

let h: PipelineHarness;

beforeAll(async () => {
  h = await createPipelineHarness('pipeline');
});

afterAll(async () => {
  await h?.close();
});

function request(
  userId: string,
  overrides: Partial<StartComicInput['options']> = {},
  guildId = GUILD,
): StartComicInput {
  return {
    guildId,
    channelId: CHANNEL,
    userId,
    prompt: 'Mira and Theo chase a paper kite across the rooftops of a rainy city.',
    options: { pages: 2, panelsPerPage: 2, model: 'illustrious', rtl: false, safe: true, ...overrides },
    limits: { perUser: 1, perGuild: 10 },
  };
}

async function started(input: StartComicInput) {
  const result = await startComic(h.deps, input);
  if (!result.ok) throw new Error(`startComic refused: ${result.reason}`);
  return result.comic;
}

async function comicDone(comicId: string) {
  return eventually(async () => {
    const comic = await getComic(h.deps.db, comicId);
    if (comic?.status === 'failed') throw new Error(`comic failed: ${comic.error}`);
    return comic?.status === 'done' ? comic : undefined;
  });
}

async function postsOf(comicId: string) {
  return (await postJobs(h.producer)).filter((p) => p.comicId === comicId);
}

describe('a comic from the row to its pages', () => {
  it(
    'scripts, posts the storyboard, renders every panel, assembles and posts every page once, then is done',
    async () => {
      const workers = await startPipelineWorkers(h.deps);
      try {
        const comic = await started(request('u-happy'));
        expect(comic.status).toBe('scripting');
        const done = await comicDone(comic.id);

        expect(done.writer).toBe('template');
        expect(done.script?.pages).toHaveLength(2);

        const pages = await listPages(h.deps.db, comic.id);
        expect(pages.map((p) => [p.number, p.status, p.artifactKey])).toEqual([
          [1, 'done', artifactKeys.page(comic.id, 1)],
          [2, 'done', artifactKeys.page(comic.id, 2)],
        ]);
        for (const page of pages) {
          const image = await sharp(await h.store.getBuffer(page.artifactKey!)).metadata();
          expect([image.format, image.width, image.height]).toEqual([
            'png',
            TEST_GEOMETRY.width,
            TEST_GEOMETRY.height,
          ]);
          const storyboard = await sharp(
            await h.store.getBuffer(artifactKeys.storyboardPage(comic.id, page.number)),
          ).metadata();
          expect([storyboard.width, storyboard.height]).toEqual([TEST_GEOMETRY.width, TEST_GEOMETRY.height]);
        }

        const renders = await rendersOfComic(h.deps.db, comic.id);
        expect(renders.map((r) => [r.pageNumber, r.panelNumber, r.render.attempt, r.render.status])).toEqual([
          [1, 1, 0, 'done'],
          [1, 2, 0, 'done'],
          [2, 1, 0, 'done'],
          [2, 2, 0, 'done'],
        ]);
        // Not an age-restricted channel: every render keeps the safe negative prompt.
        expect(renders.every((r) => r.render.recipe.negative.includes('nsfw'))).toBe(true);
        const panelRows = await listPanels(h.deps.db, comic.id);
        expect(panelRows.every((p) => p.currentRenderId !== null)).toBe(true);

        const posts = await postsOf(comic.id);
        expect(posts.filter((p) => p.kind === 'storyboard')).toHaveLength(1);
        expect(posts.filter((p) => p.kind === 'panel')).toHaveLength(4);
        const pagePosts = posts.flatMap((p) => (p.kind === 'page' ? [p.pageNumber] : [])).sort();
        expect(pagePosts).toEqual([1, 2]);
        expect(posts.filter((p) => p.kind === 'failed')).toHaveLength(0);
        expect(posts.some((p) => p.kind === 'status')).toBe(true);
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );

  it(
    'renders without the safe negative in an age-restricted channel, right to left when asked',
    async () => {
      const comic = await started(request('u-nsfw', { pages: 1, panelsPerPage: 2, safe: false, rtl: true }));
      await processScriptJob(h.deps, { comicId: comic.id });
      const renders = await rendersOfComic(h.deps.db, comic.id);
      expect(renders).toHaveLength(2);
      expect(renders.some((r) => r.render.recipe.negative.includes('nsfw'))).toBe(false);
      const [page] = await listPages(h.deps.db, comic.id);
      expect((page?.layout as { rtl?: boolean }).rtl).toBe(true);
      expect((await cancelComic(h.deps, comic.id, 'u-nsfw')).cancelled).toBe(true);
    },
    SLOW,
  );
});

describe('when a render fails for good', () => {
  it(
    'the page is not assembled, the comic fails and the channel hears why',
    async () => {
      const workers = await startPipelineWorkers(h.deps, {
        onRender: (job) => {
          if (job.pageNumber === 1 && job.panelNumber === 2)
            throw new InputError('The render was refused by ComfyUI.');
        },
      });
      try {
        const comic = await started(request('u-render-fails', { pages: 1, panelsPerPage: 2 }));
        const failed = await eventually(async () => {
          const row = await getComic(h.deps.db, comic.id);
          return row?.status === 'failed' ? row : undefined;
        });
        expect(failed.error).toMatch(/renders failed/);
        const posts = await postsOf(comic.id);
        expect(posts.filter((p) => p.kind === 'failed')).toEqual([
          {
            kind: 'failed',
            comicId: comic.id,
            userMessage: expect.stringContaining('Page 1 could not be drawn'),
          },
        ]);
        expect(posts.filter((p) => p.kind === 'page')).toHaveLength(0);
        const renders = await rendersOfComic(h.deps.db, comic.id);
        expect(renders.map((r) => [r.panelNumber, r.render.status])).toEqual([
          [1, 'done'],
          [2, 'failed'],
        ]);
        expect((await listPages(h.deps.db, comic.id)).map((p) => p.status)).toEqual(['failed']);
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );
});

describe('starting a comic', () => {
  it('refuses past the per-user and per-guild limits, and bad requests, with a reason', async () => {
    const guild = '311111111111111111';
    const first = await started({ ...request('u-limit', {}, guild), limits: { perUser: 1, perGuild: 2 } });

    const again = await startComic(h.deps, {
      ...request('u-limit', {}, guild),
      limits: { perUser: 1, perGuild: 2 },
    });
    expect(again).toEqual({
      ok: false,
      reason: expect.stringContaining('You already have 1 comic in the making'),
    });

    await started({ ...request('u-other', {}, guild), limits: { perUser: 1, perGuild: 2 } });
    const third = await startComic(h.deps, {
      ...request('u-third', {}, guild),
      limits: { perUser: 1, perGuild: 2 },
    });
    expect(third).toEqual({ ok: false, reason: expect.stringContaining('This server already has 2 comics') });

    const empty = await startComic(h.deps, { ...request('u-empty', {}, guild), prompt: '   ' });
    expect(empty).toEqual({ ok: false, reason: expect.stringContaining('the story prompt is empty') });
    const tooMany = await startComic(h.deps, request('u-pages', { pages: 9 }, guild));
    expect(tooMany).toEqual({ ok: false, reason: expect.stringContaining('pages must be between 1 and 8') });
    const experimental = await startComic(h.deps, request('u-pony', { model: 'ponyv7' }, guild));
    expect(experimental).toEqual({
      ok: false,
      reason: expect.stringContaining('ENABLE_EXPERIMENTAL_FAMILIES'),
    });

    // Refusals queued nothing: only the two accepted comics of this guild have script jobs.
    const other = await startComic(h.deps, {
      ...request('u-fourth', {}, guild),
      limits: { perUser: 1, perGuild: 2 },
    });
    expect(other.ok).toBe(false);
    const scripts = await h.producer.queue('script').getJobs(['wait']);
    const inGuild = await Promise.all(
      scripts.map(async (j) => (await getComic(h.deps.db, j!.data.comicId))?.guildId),
    );
    expect(inGuild.filter((g) => g === guild)).toHaveLength(2);
    expect(scripts.map((j) => j?.data.comicId)).toContain(first.id);

    // Cancelling frees a slot in the guild.
    expect((await cancelComic(h.deps, first.id, 'u-limit')).cancelled).toBe(true);
    const now = await startComic(h.deps, {
      ...request('u-fourth', {}, guild),
      limits: { perUser: 1, perGuild: 2 },
    });
    expect(now.ok).toBe(true);
    for (const comic of await h.deps.db.select().from(comicsTable).where(eq(comicsTable.guildId, guild))) {
      await cancelComic(h.deps, comic.id, comic.userId);
    }
  });

  it(
    'fails the comic and tells the channel when its style is not available',
    async () => {
      await h.deps.db.insert(styles).values({
        guildId: GUILD,
        name: 'Inkwash',
        trigger: 'inkwash_style',
        modelFamily: 'illustrious',
        status: 'training',
        createdBy: 'u-trainer',
      });
      const workers = await startPipelineWorkers(h.deps);
      try {
        const comic = await started(request('u-style', { style: 'inkwash' }));
        const failed = await eventually(async () => {
          const row = await getComic(h.deps.db, comic.id);
          return row?.status === 'failed' ? row : undefined;
        });
        expect(failed.error).toMatch(/style inkwash/);
        const posts = await postsOf(comic.id);
        expect(posts.filter((p) => p.kind === 'failed')).toEqual([
          {
            kind: 'failed',
            comicId: comic.id,
            userMessage: expect.stringContaining('“inkwash” is not available'),
          },
        ]);
        expect(await listPages(h.deps.db, comic.id)).toHaveLength(0);
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );
});

describe('idempotency, rerolls and cancelling', () => {
  it(
    'a script job that runs twice creates no duplicate rows, jobs or posts',
    async () => {
      const comic = await started(request('u-twice'));
      await processScriptJob(h.deps, { comicId: comic.id });
      await processScriptJob(h.deps, { comicId: comic.id });

      expect(await listPages(h.deps.db, comic.id)).toHaveLength(2);
      expect(await listPanels(h.deps.db, comic.id)).toHaveLength(4);
      expect(await rendersOfComic(h.deps.db, comic.id)).toHaveLength(4);
      const renderJobs = (await h.producer.queue('render').getJobs(['prioritized', 'wait'])).filter(
        (j) => j?.data.comicId === comic.id,
      );
      expect(renderJobs).toHaveLength(4);
      const assembleJobs = (await h.producer.queue('assemble-page').getJobs(['waiting-children'])).filter(
        (j) => j?.data.comicId === comic.id,
      );
      expect(assembleJobs).toHaveLength(2);
      expect((await postsOf(comic.id)).filter((p) => p.kind === 'storyboard')).toHaveLength(1);

      // The queued script job runs a third time when the workers start; the comic still completes once.
      const workers = await startPipelineWorkers(h.deps);
      try {
        await comicDone(comic.id);
        const posts = await postsOf(comic.id);
        expect(posts.flatMap((p) => (p.kind === 'page' ? [p.pageNumber] : [])).sort()).toEqual([1, 2]);
        expect(posts.filter((p) => p.kind === 'panel')).toHaveLength(4);
        expect(await rendersOfComic(h.deps.db, comic.id)).toHaveLength(4);
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );

  it(
    'five quick 🔁 by three members make exactly one new render and one re-lettered page',
    async () => {
      const workers = await startPipelineWorkers(h.deps);
      try {
        const comic = await started(request('u-reroll', { pages: 1, panelsPerPage: 2 }));
        await comicDone(comic.id);
        const [panel] = await listPanels(h.deps.db, comic.id, 1);
        // The bot records the panel's message when it posts it.
        await setPanelMessageId(h.deps.db, panel!.id, '911111111111111111');
        const pageBefore = (await postsOf(comic.id)).filter((p) => p.kind === 'page');
        expect(pageBefore).toHaveLength(1);

        const members = ['m-a', 'm-b', 'm-c', 'm-a', 'm-b'];
        const results = await Promise.all(
          members.map((memberId) => rerollPanel(h.deps, { panelMessageId: '911111111111111111', memberId })),
        );
        const accepted = results.filter((r) => r.accepted);
        expect(accepted).toHaveLength(1);
        expect(results.filter((r) => !r.accepted)).toEqual(
          Array(4).fill({ accepted: false, reason: 'A new version of that panel is already on its way.' }),
        );

        const newRenderId = accepted[0]!.accepted ? accepted[0]!.renderId : '';
        await eventually(async () => {
          const [row] = await h.deps.db.select().from(panels).where(eq(panels.id, panel!.id));
          return row?.currentRenderId === newRenderId && !row.rerollPending;
        });
        const pagePosts = await eventually(async () => {
          const posts = (await postsOf(comic.id)).filter((p) => p.kind === 'page');
          return posts.length >= 2 ? posts : undefined;
        });
        const renders = await rendersOfComic(h.deps.db, comic.id);
        const ofPanel = renders.filter((r) => r.render.panelId === panel!.id);
        expect(ofPanel.map((r) => [r.render.attempt, r.render.status])).toEqual([
          [0, 'done'],
          [1, 'done'],
        ]);
        expect(ofPanel[1]!.render.recipe.seed).not.toBe(ofPanel[0]!.render.recipe.seed);
        expect(ofPanel[1]!.render.recipe.positive).toBe(ofPanel[0]!.render.recipe.positive);
        expect(renders).toHaveLength(3);
        expect(pagePosts).toEqual([
          { kind: 'page', comicId: comic.id, pageNumber: 1 },
          { kind: 'page', comicId: comic.id, pageNumber: 1 },
        ]);
        const panelPosts = (await postsOf(comic.id)).filter(
          (p) => p.kind === 'panel' && p.renderId === newRenderId,
        );
        expect(panelPosts).toHaveLength(1);

        // Once it landed, the panel can be rerolled again.
        const next = await rerollPanel(h.deps, { panelMessageId: '911111111111111111', memberId: 'm-c' });
        expect(next).toMatchObject({ accepted: true, attempt: 2 });
        const unknown = await rerollPanel(h.deps, { panelMessageId: '999999999999999999', memberId: 'm-c' });
        expect(unknown).toEqual({ accepted: false, reason: 'That message is not a comic panel.' });
        await eventually(async () => {
          const [row] = await h.deps.db.select().from(panels).where(eq(panels.id, panel!.id));
          return !row?.rerollPending;
        });
      } finally {
        await workers.close();
      }
    },
    SLOW,
  );

  it(
    'cancel: only the owner (or a moderator); renders stop, nothing more is assembled or posted',
    async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let held = 0;
      const workers = await startPipelineWorkers(h.deps, {
        onRender: async () => {
          held++;
          await gate;
        },
      });
      try {
        const comic = await started(request('u-cancel'));
        await eventually(async () => held > 0);

        expect(await cancelComic(h.deps, comic.id, 'someone-else')).toEqual({
          cancelled: false,
          reason: expect.stringContaining('Only the member who started that comic'),
        });
        const result = await cancelComic(h.deps, comic.id, 'u-cancel');
        expect(result).toMatchObject({ cancelled: true, renders: 4 });
        expect(await cancelComic(h.deps, comic.id, 'u-cancel')).toEqual({
          cancelled: false,
          reason: 'That comic is already cancelled.',
        });
        release();

        // Wait until the held renders have run their course, then look at what is left.
        await eventually(async () => {
          const active = await h.producer.queue('render').getJobs(['active', 'wait', 'prioritized']);
          return active.filter((j) => j?.data.comicId === comic.id).length === 0;
        });
        expect((await getComic(h.deps.db, comic.id))?.status).toBe('cancelled');
        const renders = await rendersOfComic(h.deps.db, comic.id);
        expect(renders.every((r) => r.render.status === 'cancelled')).toBe(true);
        const pendingAssembly = await h.producer
          .queue('assemble-page')
          .getJobs(['waiting-children', 'wait', 'active']);
        expect(pendingAssembly.filter((j) => j?.data.comicId === comic.id)).toHaveLength(0);
        const posts = await postsOf(comic.id);
        expect(posts.filter((p) => p.kind === 'page' || p.kind === 'panel')).toHaveLength(0);
        const pages = await listPages(h.deps.db, comic.id);
        expect(pages.some((p) => p.status === 'done')).toBe(false);

        // The member's in-flight slot is free again.
        const again = await startComic(h.deps, request('u-cancel', { pages: 1, panelsPerPage: 1 }));
        expect(again.ok).toBe(true);
        if (again.ok) await cancelComic(h.deps, again.comic.id, 'u-cancel');
        const stillThere = await h.deps.db
          .select()
          .from(panels)
          .where(and(eq(panels.comicId, comic.id), eq(panels.rerollPending, true)));
        expect(stillThere).toHaveLength(0);
      } finally {
        release();
        await workers.close();
      }
    },
    SLOW,
  );
});
