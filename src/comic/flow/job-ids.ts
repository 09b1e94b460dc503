/**
 * Deterministic BullMQ job ids. Adding a job whose id already exists is a no-op in BullMQ, so a job
 * that runs twice (a retry after a crash, a resume at start-up) enqueues nothing twice. BullMQ refuses
 * ':' in custom ids and ids that look like integers, hence the dashes and the word prefixes.
 */
export const jobIds = {
  script: (comicId: string) => `script-${comicId}`,
  render: (renderId: string) => `render-${renderId}`,
  /** The parent of a page's first renders. */
  assembleInitial: (comicId: string, page: number) => `assemble-${comicId}-p${page}-initial`,
  /** The parent of one reroll: unique per panel and attempt. */
  assembleReroll: (comicId: string, page: number, panel: number, attempt: number) =>
    `assemble-${comicId}-p${page}-panel${panel}-a${attempt}`,
  /** Re-enqueued by the resume sweep; `key` names the work it stands for, so a second sweep adds nothing. */
  assembleResume: (comicId: string, page: number, key: string) =>
    `assemble-${comicId}-p${page}-resume-${key}`,
  postStoryboard: (comicId: string) => `post-storyboard-${comicId}`,
  /** One page post per assembly job: a retried assembly posts its page once. */
  postPage: (assembleJobId: string) => `post-page-${assembleJobId}`,
  postDone: (comicId: string) => `post-status-done-${comicId}`,
  postFailed: (comicId: string) => `post-failed-${comicId}`,
  postCancelled: (comicId: string) => `post-status-cancelled-${comicId}`,
};

/**
 * Render priorities (BullMQ: 1 is the highest; jobs without a priority go before all prioritised
 * ones, so batch renders get a number too). A 🔁 reroll, which a person is waiting on, goes first.
 * Priority 1 itself is reserved: the GPU scheduler (src/scheduling/dispatcher.ts) raises the one job
 * it has chosen to 1 just before taking it, so nothing else may sit there.
 */
export const RENDER_PRIORITY = { interactive: 2, batch: 100 } as const;
