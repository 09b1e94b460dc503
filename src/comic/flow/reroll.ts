import { getComic } from '../../db/comics.ts';
import { clearRerollPending, getPanelByMessageId } from '../../db/panels.ts';
import { createRenderOnce, failRender, latestRenderOfPanel, requestReroll } from '../../db/renders.ts';
import type { RenderRow } from '../../db/schema.ts';
import { RenderRecipe } from '../recipe.ts';
import { seedFor } from '../seed.ts';
import { renderOwner } from '../../scheduling/candidates.ts';
import { type PipelineDeps, pipelineLogger } from './deps.ts';
import { jobIds } from './job-ids.ts';
import { withPageFlows } from './page-flows.ts';

export type RerollResult =
  | {
      accepted: true;
      renderId: string;
      attempt: number;
      comicId: string;
      pageNumber: number;
      panelNumber: number;
    }
  | { accepted: false; reason: string };

/**
 * A member's 🔁 on a panel message: a new render of that panel with the next seed and the same recipe
 * otherwise, as a flow whose parent re-letters the page when it lands. While a reroll of the panel is
 * pending, further 🔁 (from anyone) are no-ops: requestReroll flips the panel's pending flag atomically,
 * so exactly one of many simultaneous reactions gets through.
 *
 * The bot ignores its own reactions before calling this; `memberId` is kept for the logs and is the
 * render's owner for the GPU scheduler's fair share (src/scheduling).
 */
export async function rerollPanel(
  deps: PipelineDeps,
  input: { panelMessageId: string; memberId: string },
): Promise<RerollResult> {
  const logger = pipelineLogger(deps, 'reroll').child({
    panelMessageId: input.panelMessageId,
    memberId: input.memberId,
  });
  const panel = await getPanelByMessageId(deps.db, input.panelMessageId);
  if (!panel) return { accepted: false, reason: 'That message is not a comic panel.' };
  const comic = await getComic(deps.db, panel.comicId);
  if (!comic || comic.status === 'cancelled' || comic.status === 'failed') {
    return { accepted: false, reason: 'That comic was stopped, so its panels cannot be redrawn.' };
  }
  const previous = await latestRenderOfPanel(deps.db, panel.id);
  if (!previous) return { accepted: false, reason: 'That panel has not been drawn yet.' };

  const requested = await requestReroll(deps.db, input.panelMessageId);
  if (!requested) {
    return { accepted: false, reason: 'A new version of that panel is already on its way.' };
  }
  const { attempt } = requested;
  const { pageNumber, panelNumber } = panel;

  let render: RenderRow | undefined;
  try {
    const base = RenderRecipe.parse(previous.recipe);
    const recipe = RenderRecipe.parse({
      ...base,
      seed: seedFor(comic.id, pageNumber, panelNumber, attempt),
      panel: { ...base.panel, attempt },
    });
    render = await createRenderOnce(deps.db, { panelId: panel.id, attempt, recipe });
    const renderId = render.id;
    await withPageFlows(deps.queueConnection, logger, (flows) =>
      flows.add({
        comicId: comic.id,
        pageNumber,
        parentJobId: jobIds.assembleReroll(comic.id, pageNumber, panelNumber, attempt),
        renders: [
          {
            renderId,
            comicId: comic.id,
            pageNumber,
            panelNumber,
            attempt,
            recipe,
            interactive: true,
            // The member who asked waits on it: turns among re-rolls are shared by person.
            owner: renderOwner({ guildId: comic.guildId, userId: input.memberId }),
          },
        ],
      }),
    );
  } catch (error) {
    // Nothing will render: let the panel be rerolled again rather than stay pending forever.
    if (render) await failRender(deps.db, render.id, `reroll could not be queued: ${String(error)}`);
    else await clearRerollPending(deps.db, panel.id);
    throw error;
  }
  logger.info({ comicId: comic.id, pageNumber, panelNumber, attempt, renderId: render.id }, 'reroll queued');
  return { accepted: true, renderId: render.id, attempt, comicId: comic.id, pageNumber, panelNumber };
}
