import { createAssembleWorker } from './assemble-worker.ts';
import type { PipelineDeps } from './deps.ts';
import { createScriptWorker } from './script-worker.ts';

export type { PipelineDeps } from './deps.ts';
export { startComic, type StartComicInput, type StartComicResult } from './start-comic.ts';
export { processScriptJob, createScriptWorker, type ScriptJobResult } from './script-worker.ts';
export { processAssembleJob, createAssembleWorker, type AssembleOutcome } from './assemble-worker.ts';
export { rerollPanel, type RerollResult } from './reroll.ts';
export { resumeUnfinishedComics, cancelComic, type ResumeReport, type CancelResult } from './resume.ts';
export { jobIds, RENDER_PRIORITY } from './job-ids.ts';
export { comicOptionsOf, pageLayoutOf, StoredPageLayout } from './comic-data.ts';

export interface CpuWorkers {
  /** Stops taking jobs, lets running ones finish, closes the connections. */
  close(): Promise<void>;
}

/**
 * The comic pipeline's CPU workers — script writing and page assembly — in this process (the bot's,
 * by default). They are plain BullMQ workers, so they can move to a process of their own.
 */
export async function startCpuWorkers(
  deps: PipelineDeps,
  options: { scriptConcurrency?: number; assembleConcurrency?: number } = {},
): Promise<CpuWorkers> {
  const workers = [
    createScriptWorker(deps, { concurrency: options.scriptConcurrency ?? 2 }),
    createAssembleWorker(deps, { concurrency: options.assembleConcurrency ?? 1 }),
  ];
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= Promise.allSettled(workers.map((w) => w.close())).then(() => undefined);
      return closing;
    },
  };
}
