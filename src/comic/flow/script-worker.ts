import type { Job, Worker } from 'bullmq';
import { writeScript } from '../../agents/script-agent.ts';
import {
  characterLorasFor,
  guildCharactersInScript,
  loadComicCast,
  withCharacterReferences,
} from '../../characters/comic-cast.ts';
import type { ComicScript } from '../../agents/script-schema.ts';
import { getComic, setComicScript, setComicStatus } from '../../db/comics.ts';
import { createPages, setPageStatus } from '../../db/pages.ts';
import { createPanels } from '../../db/panels.ts';
import { createRenderOnce } from '../../db/renders.ts';
import type { Comic, PageRow, PanelRow } from '../../db/schema.ts';
import { InputError } from '../../errors.ts';
import { StoryboardRenderer } from '../../gpu/storyboard-renderer.ts';
import type { JobPayload } from '../../queue/payloads.ts';
import { createWorker } from '../../queue/worker.ts';
import { DISCORD_UPLOAD_LIMIT } from '../encode.ts';
import { layoutPage, resolveGeometry } from '../layout.ts';
import { buildRecipe } from '../prompt-builder.ts';
import type { RenderRecipe } from '../recipe.ts';
import { comicOptionsOf, comicScriptOf, pageLayoutOf, type StoredPageLayout } from './comic-data.ts';
import { type PipelineDeps, pipelineLogger } from './deps.ts';
import { failComic, isLastAttempt } from './failure.ts';
import { jobIds } from './job-ids.ts';
import { withPageFlows } from './page-flows.ts';
import { resolveComicStyle } from './style.ts';
import { renderStoryboardPages } from './storyboard-pages.ts';
import { renderOwner } from '../../scheduling/candidates.ts';

export interface ScriptJobResult {
  /** Why nothing was done (the comic was no longer waiting for its script), or null. */
  skipped: string | null;
  writer: 'llm' | 'template' | null;
  /** The script agent's remarks (which writer, fallbacks, repairs); empty when the script existed. */
  notes: string[];
  pages: number;
  panels: number;
}

/**
 * The `script` job: from a comics row to queued page flows.
 *
 * 1. write the script (once: a script already stored is reused, so rows and renders always match it);
 * 2. lay the pages out and create the pages and panels rows;
 * 3. draw and store the storyboard pages, and ask the bot to post them;
 * 4. per page, create the first render of every panel and add the page's flow (renders → assembly).
 *
 * Every step is idempotent (unique constraints, existing artifacts kept, deterministic job ids), so a
 * job that crashed half-way and runs again finishes the work without doing any of it twice.
 */
export async function processScriptJob(
  deps: PipelineDeps,
  payload: JobPayload<'script'>,
  signal?: AbortSignal,
): Promise<ScriptJobResult> {
  const logger = pipelineLogger(deps, 'script-worker').child({ comicId: payload.comicId });
  const comic = await getComic(deps.db, payload.comicId);
  if (!comic) {
    throw new InputError('That comic no longer exists.', {
      operatorMessage: `script job for missing comic ${payload.comicId}`,
    });
  }
  if (comic.status !== 'scripting' && comic.status !== 'rendering') {
    logger.info({ status: comic.status }, 'comic is no longer waiting for its script; nothing to do');
    return { skipped: `comic is ${comic.status}`, writer: null, notes: [], pages: 0, panels: 0 };
  }
  const options = comicOptionsOf(comic);

  let script = comicScriptOf(comic);
  let notes: string[] = [];
  let writer = comic.writer;
  if (!script) {
    // Guild characters the story names become the script's cast, their names and looks kept verbatim.
    const { castMembers } = await loadComicCast(deps.db, comic.guildId, comic.prompt);
    const written = await writeScript(
      {
        story: comic.prompt,
        pages: options.pages,
        panelsPerPage: options.panelsPerPage,
        ...(castMembers.length > 0 ? { cast: castMembers } : {}),
      },
      { config: deps.config, logger, ...(signal ? { signal } : {}) },
    );
    script = written.script;
    notes = written.notes;
    writer = written.writer;
    await setComicScript(deps.db, comic.id, script, written.writer);
    logger.info({ writer: written.writer, model: written.model, notes }, 'script written');
  }

  const { style, family } = await resolveComicStyle(deps.db, comic, options);
  const { pageRows, panelRows } = await createPagesAndPanels(deps, comic, script, options.rtl);
  const layouts = pageRows.map(pageLayoutOf);
  // The guild characters in the cast: their LoRAs and reference images go into the panels they are on.
  const guildCast = await guildCharactersInScript(deps.db, comic.guildId, script);

  const recipes = layouts.map((layout, pageIndex) =>
    layout.frames.map((frame, panelIndex) =>
      withCharacterReferences(
        buildRecipe({
          comicId: comic.id,
          script,
          page: pageIndex + 1,
          panel: panelIndex + 1,
          attempt: 0,
          frame,
          family,
          style,
          characterLoras: characterLorasFor(script, pageIndex + 1, panelIndex + 1, guildCast),
          safe: options.safe,
          // lettering "model" (FLUX.2 only, checked by /comic new): the panel's text goes into the prompt.
          drawnText: options.lettering === 'model',
        }),
        script,
        guildCast,
      ),
    ),
  );

  await renderStoryboard(deps, comic.id, script, layouts, recipes, logger);
  await deps.producer.enqueue(
    'post',
    { kind: 'storyboard', comicId: comic.id },
    { jobId: jobIds.postStoryboard(comic.id) },
  );

  // A cancel may have landed while the script was written: queue no GPU work for a cancelled comic.
  const current = await getComic(deps.db, comic.id);
  if (!current || (current.status !== 'scripting' && current.status !== 'rendering')) {
    return {
      skipped: `comic is ${current?.status ?? 'gone'}`,
      writer,
      notes,
      pages: pageRows.length,
      panels: panelRows.length,
    };
  }

  await queuePageFlows(deps, comic.id, pageRows, panelRows, recipes, logger, renderOwner(comic));
  await setComicStatus(deps.db, comic.id, 'rendering');
  await deps.producer.enqueue('post', { kind: 'status', comicId: comic.id });
  return { skipped: null, writer, notes, pages: pageRows.length, panels: panelRows.length };
}

async function createPagesAndPanels(
  deps: PipelineDeps,
  comic: Comic,
  script: ComicScript,
  rtl: boolean,
): Promise<{ pageRows: PageRow[]; panelRows: PanelRow[] }> {
  const geometry = resolveGeometry(deps.geometry);
  const layouts = script.pages.map((page, index) => {
    const layout: StoredPageLayout = {
      version: 1,
      geometry,
      rtl,
      frames: layoutPage(
        page.panels.map((p) => p.shot),
        { ...geometry, rtl },
      ),
    };
    return { number: index + 1, layout };
  });
  // Rows that exist already keep their stored layout: frames never change under a render.
  const pageRows = await createPages(deps.db, comic.id, layouts);
  const panelRows = await createPanels(
    deps.db,
    comic.id,
    script.pages.flatMap((page, pageIndex) =>
      page.panels.map((scriptPanel, panelIndex) => ({
        pageNumber: pageIndex + 1,
        panelNumber: panelIndex + 1,
        scriptPanel,
      })),
    ),
  );
  if (pageRows.length !== script.pages.length) {
    throw new Error(
      `comic ${comic.id} has ${pageRows.length} page rows for a ${script.pages.length}-page script`,
    );
  }
  return { pageRows, panelRows };
}

async function renderStoryboard(
  deps: PipelineDeps,
  comicId: string,
  script: ComicScript,
  layouts: StoredPageLayout[],
  recipes: RenderRecipe[][],
  logger: ReturnType<typeof pipelineLogger>,
): Promise<void> {
  const renderer = deps.storyboard ?? new StoryboardRenderer();
  try {
    await renderStoryboardPages({
      comicId,
      script,
      layouts,
      recipes,
      renderer,
      store: deps.store,
      maxBytes: deps.uploadLimitBytes ?? DISCORD_UPLOAD_LIMIT,
      logger,
    });
  } finally {
    if (!deps.storyboard) await renderer.close();
  }
}

/**
 * The first render of every panel, then one flow per page that is not done yet. Only renders still
 * owed (queued or running) become jobs; job ids come from the render rows, so a second run adds nothing.
 */
async function queuePageFlows(
  deps: PipelineDeps,
  comicId: string,
  pageRows: PageRow[],
  panelRows: PanelRow[],
  recipes: RenderRecipe[][],
  logger: ReturnType<typeof pipelineLogger>,
  /** Who the GPU scheduler shares turns by (the comic's maker), so two comics of one member are one turn. */
  owner: string,
): Promise<void> {
  await withPageFlows(deps.queueConnection, logger, async (flows) => {
    for (const page of pageRows) {
      if (page.status === 'done' || page.status === 'failed') continue;
      const renders = [];
      for (const panel of panelRows.filter((p) => p.pageNumber === page.number)) {
        const recipe = recipes[page.number - 1]?.[panel.panelNumber - 1];
        if (!recipe) throw new Error(`no recipe for page ${page.number} panel ${panel.panelNumber}`);
        const render = await createRenderOnce(deps.db, { panelId: panel.id, attempt: 0, recipe });
        if (render.status !== 'queued' && render.status !== 'running') continue;
        renders.push({
          renderId: render.id,
          comicId,
          pageNumber: page.number,
          panelNumber: panel.panelNumber,
          attempt: 0,
          recipe: render.recipe,
          interactive: false,
          owner,
        });
      }
      if (renders.length > 0) {
        await flows.add({
          comicId,
          pageNumber: page.number,
          parentJobId: jobIds.assembleInitial(comicId, page.number),
          renders,
        });
      } else {
        // Every render already landed (the job crashed after the flow ran): the assembly is what is owed.
        await deps.producer.enqueue(
          'assemble-page',
          { comicId, pageNumber: page.number },
          { jobId: jobIds.assembleInitial(comicId, page.number) },
        );
      }
      await setPageStatus(deps.db, comicId, page.number, 'rendering');
    }
  });
}

/** The `script` queue's worker. Failing for good marks the comic failed and tells the channel why. */
export function createScriptWorker(deps: PipelineDeps, options: { concurrency?: number } = {}): Worker {
  const logger = pipelineLogger(deps, 'script-worker');
  return createWorker(
    'script',
    async (payload, job: Job, signal) => {
      try {
        return await processScriptJob(deps, payload, signal);
      } catch (error) {
        if (isLastAttempt(job, error)) {
          logger.error(
            { comicId: payload.comicId, err: error },
            'script job failed for good; failing the comic',
          );
          await failComic(deps, payload.comicId, error);
        }
        throw error;
      }
    },
    { connection: deps.queueConnection, logger, concurrency: options.concurrency ?? 2 },
  );
}
