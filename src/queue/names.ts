/**
 * Every BullMQ queue the product uses, by name. Producers and consumers both import these, so a
 * renamed queue is a compile error rather than jobs piling up where nobody listens.
 *
 * Where each runs (see shared/DESIGN.md):
 * - `script`        CPU, in the bot process by default: the LLM writes the comic's script.
 * - `render`        GPU runner: one panel image through ComfyUI (or a storyboard sketch).
 * - `assemble-page` CPU: letter a page from its panel renders; the parent of those renders in a flow.
 * - `post`          bot: deliver results and status to Discord (the only process that talks to it).
 * - `train`         GPU runner: train a style LoRA.
 * - `evaluate`      GPU runner: render the checkpoint × strength grid of a training.
 */
export const QUEUE_NAMES = ['script', 'render', 'assemble-page', 'post', 'train', 'evaluate'] as const;

export type QueueName = (typeof QUEUE_NAMES)[number];

export const QUEUES = {
  script: 'script',
  render: 'render',
  assemblePage: 'assemble-page',
  post: 'post',
  train: 'train',
  evaluate: 'evaluate',
} as const satisfies Record<string, QueueName>;

export function isQueueName(value: string): value is QueueName {
  return (QUEUE_NAMES as readonly string[]).includes(value);
}
