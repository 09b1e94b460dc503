import { FlowProducer, Queue, type Job, type JobNode, type JobsOptions } from 'bullmq';
import type { Logger } from 'pino';
import { UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import type { QueueConnection } from './connection.ts';
import { JobPayloadError } from './errors.ts';
import { jobOptionsFor } from './job-options.ts';
import type { QueueName } from './names.ts';
import { parsePayload, type JobPayload, type RenderJob } from './payloads.ts';

/** How long an enqueue waits for Redis before telling the user the queue is down. */
const DEFAULT_READY_TIMEOUT_MS = 5_000;

const QUEUE_UNAVAILABLE = 'The job queue is unavailable right now. Please try again in a minute.';

export interface JobProducerOptions {
  logger?: Logger;
  /** Waiting for Redis longer than this fails the enqueue with an UpstreamError. */
  readyTimeoutMs?: number;
}

/** What happens to a page when one of its renders fails for good (after its retries). */
export type RenderFailurePolicy =
  /** The assemble-page parent fails too, so the comic reports the failure (default). */
  | 'fail-page'
  /** The page is assembled anyway; the assembler sees fewer children results and fills the gap. */
  | 'assemble-anyway';

export interface PageFlowInput {
  comicId: string;
  pageNumber: number;
  /** One render per panel of the page, each with the same comicId and pageNumber. */
  renders: RenderJob[];
}

export interface PageFlowOptions {
  onRenderFailure?: RenderFailurePolicy;
  renderOptions?: JobsOptions;
  assembleOptions?: JobsOptions;
}

/**
 * The producing side of the queues: validates every payload before it reaches Redis, applies each
 * queue's retry defaults, and builds page flows. One per process; close() it on shutdown.
 */
export class JobProducer {
  private readonly queues = new Map<QueueName, Queue>();
  private flowProducer: FlowProducer | undefined;
  private readonly logger: Logger;
  private readonly readyTimeoutMs: number;

  constructor(
    private readonly connection: QueueConnection,
    options: JobProducerOptions = {},
  ) {
    this.logger = (options.logger ?? log()).child({ component: 'queue-producer' });
    this.readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  }

  /**
   * Validate and add one job. A payload the schema refuses throws JobPayloadError before anything is
   * sent to Redis; Redis being unreachable throws UpstreamError('redis').
   */
  async enqueue<N extends QueueName>(
    name: N,
    payload: JobPayload<N>,
    opts: JobsOptions = {},
  ): Promise<Job<JobPayload<N>>> {
    const parsed = parsePayload(name, payload);
    if (!parsed.ok) throw new JobPayloadError(parsed.reason);
    const queue = this.queue(name);
    await this.ready(queue);
    try {
      const job = (await (queue as Queue).add(name, parsed.payload, jobOptionsFor(name, opts))) as Job<
        JobPayload<N>
      >;
      this.logger.debug({ queue: name, jobId: job.id }, 'job enqueued');
      return job;
    } catch (cause) {
      throw new UpstreamError('redis', QUEUE_UNAVAILABLE, {
        cause,
        operatorMessage: `adding a ${name} job failed`,
      });
    }
  }

  /**
   * Add a page as one BullMQ flow: the panel renders are children, the page assembly their parent,
   * so assembly starts only when every render has completed (and can read their results with
   * job.getChildrenValues()). Returns the flow's tree; the root is the assemble-page job.
   */
  async addPageFlow(input: PageFlowInput, options: PageFlowOptions = {}): Promise<JobNode> {
    const parent = parsePayload('assemble-page', { comicId: input.comicId, pageNumber: input.pageNumber });
    if (!parent.ok) throw new JobPayloadError(parent.reason);
    if (input.renders.length === 0) throw new JobPayloadError('a page flow needs at least one render');
    const panels = new Set<number>();
    const children = input.renders.map((render, index) => {
      const child = parsePayload('render', render);
      if (!child.ok) throw new JobPayloadError(`renders[${index}]: ${child.reason}`);
      if (child.payload.comicId !== input.comicId || child.payload.pageNumber !== input.pageNumber) {
        throw new JobPayloadError(
          `renders[${index}] belongs to comic ${child.payload.comicId} page ${child.payload.pageNumber}, ` +
            `not comic ${input.comicId} page ${input.pageNumber}`,
        );
      }
      if (panels.has(child.payload.panelNumber)) {
        throw new JobPayloadError(`renders[${index}]: panel ${child.payload.panelNumber} appears twice`);
      }
      panels.add(child.payload.panelNumber);
      return child.payload;
    });

    const failure: JobsOptions =
      (options.onRenderFailure ?? 'fail-page') === 'fail-page'
        ? { failParentOnFailure: true }
        : { ignoreDependencyOnFailure: true };

    const flowProducer = this.flows();
    await this.ready(flowProducer);
    try {
      return await flowProducer.add({
        name: 'assemble-page',
        queueName: 'assemble-page',
        data: parent.payload,
        opts: jobOptionsFor('assemble-page', options.assembleOptions),
        children: children.map((render) => ({
          name: 'render',
          queueName: 'render',
          data: render,
          opts: jobOptionsFor('render', { ...failure, ...options.renderOptions }),
        })),
      });
    } catch (cause) {
      throw new UpstreamError('redis', QUEUE_UNAVAILABLE, {
        cause,
        operatorMessage: `adding the flow of comic ${input.comicId} page ${input.pageNumber} failed`,
      });
    }
  }

  /** The BullMQ queue behind a name, for reads such as job counts and positions (`/queue`). */
  queue<N extends QueueName>(name: N): Queue<JobPayload<N>> {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, {
        connection: this.connection.options('producer'),
        prefix: this.connection.prefix,
      });
      // Without a listener an 'error' event (Redis down) would crash the process.
      queue.on('error', (err) => this.logger.warn({ queue: name, err }, 'queue connection error'));
      this.queues.set(name, queue);
    }
    return queue as Queue<JobPayload<N>>;
  }

  async close(): Promise<void> {
    const closing: Promise<void>[] = [...this.queues.values()].map((q) => q.close());
    if (this.flowProducer) closing.push(this.flowProducer.close());
    this.queues.clear();
    this.flowProducer = undefined;
    await Promise.allSettled(closing);
  }

  private flows(): FlowProducer {
    if (!this.flowProducer) {
      this.flowProducer = new FlowProducer({
        connection: this.connection.options('producer'),
        prefix: this.connection.prefix,
      });
      this.flowProducer.on('error', (err) => this.logger.warn({ err }, 'flow producer connection error'));
    }
    return this.flowProducer;
  }

  /** Wait for the connection, but not forever: a user is waiting on the answer. */
  private async ready(target: { waitUntilReady(): Promise<void> }): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const readiness = target.waitUntilReady();
    // If the timeout wins, the readiness promise may still reject later; that is already reported.
    readiness.catch(() => undefined);
    try {
      await Promise.race([
        readiness,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Redis not ready after ${this.readyTimeoutMs} ms`)),
            this.readyTimeoutMs,
          );
        }),
      ]);
    } catch (cause) {
      throw new UpstreamError('redis', QUEUE_UNAVAILABLE, {
        cause,
        operatorMessage: 'Redis is not reachable',
      });
    } finally {
      clearTimeout(timer);
    }
  }
}
