import { FlowProducer, type JobsOptions } from 'bullmq';
import type { Logger } from 'pino';
import { UpstreamError } from '../../errors.ts';
import type { QueueConnection } from '../../queue/connection.ts';
import { JobPayloadError } from '../../queue/errors.ts';
import { jobOptionsFor } from '../../queue/job-options.ts';
import { parsePayload, type RenderJob } from '../../queue/payloads.ts';
import { jobIds, RENDER_PRIORITY } from './job-ids.ts';

/**
 * Page flows with deterministic job ids. JobProducer.addPageFlow gives every child the same options,
 * so it cannot name each render job after its row; this does, with the same validation and the same
 * per-queue defaults. Children are the page's renders (`render-<renderId>`), the parent its assembly.
 *
 * A failed render does not fail the parent (ignoreDependencyOnFailure): the assembler runs, sees the
 * panel without an image and reports the failure to the channel, which a silently failed parent would not.
 */
export interface PageFlow {
  comicId: string;
  pageNumber: number;
  /** The assemble-page job's id (see jobIds). */
  parentJobId: string;
  renders: RenderJob[];
}

const QUEUE_UNAVAILABLE = 'The job queue is unavailable right now. Please try again in a minute.';
const READY_TIMEOUT_MS = 5_000;

export class PageFlows {
  private readonly flowProducer: FlowProducer;

  constructor(
    connection: QueueConnection,
    private readonly logger: Logger,
  ) {
    this.flowProducer = new FlowProducer({
      connection: connection.options('producer'),
      prefix: connection.prefix,
    });
    this.flowProducer.on('error', (err) => logger.warn({ err }, 'flow producer connection error'));
  }

  /** Adds one page flow. Adding the same flow again (same ids) changes nothing. */
  async add(flow: PageFlow): Promise<void> {
    const parent = parsePayload('assemble-page', { comicId: flow.comicId, pageNumber: flow.pageNumber });
    if (!parent.ok) throw new JobPayloadError(parent.reason);
    if (flow.renders.length === 0) throw new JobPayloadError('a page flow needs at least one render');
    const children = flow.renders.map((render, index) => {
      const child = parsePayload('render', render);
      if (!child.ok) throw new JobPayloadError(`renders[${index}]: ${child.reason}`);
      if (child.payload.comicId !== flow.comicId || child.payload.pageNumber !== flow.pageNumber) {
        throw new JobPayloadError(
          `renders[${index}] does not belong to comic ${flow.comicId} page ${flow.pageNumber}`,
        );
      }
      const opts: JobsOptions = {
        jobId: jobIds.render(child.payload.renderId),
        priority: child.payload.interactive ? RENDER_PRIORITY.interactive : RENDER_PRIORITY.batch,
        ignoreDependencyOnFailure: true,
      };
      return {
        name: 'render',
        queueName: 'render',
        data: child.payload,
        opts: jobOptionsFor('render', opts),
      };
    });

    await this.ready();
    try {
      await this.flowProducer.add({
        name: 'assemble-page',
        queueName: 'assemble-page',
        data: parent.payload,
        opts: jobOptionsFor('assemble-page', { jobId: flow.parentJobId }),
        children,
      });
    } catch (cause) {
      throw new UpstreamError('redis', QUEUE_UNAVAILABLE, {
        cause,
        operatorMessage: `adding flow ${flow.parentJobId} (${children.length} renders) failed`,
      });
    }
    this.logger.debug({ parentJobId: flow.parentJobId, renders: children.length }, 'page flow added');
  }

  async close(): Promise<void> {
    await this.flowProducer.close();
  }

  private async ready(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const readiness = this.flowProducer.waitUntilReady();
    readiness.catch(() => undefined);
    try {
      await Promise.race([
        readiness,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Redis not ready after ${READY_TIMEOUT_MS} ms`)),
            READY_TIMEOUT_MS,
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

/** Opens a PageFlows for the length of `work` and closes it afterwards, whatever happens. */
export async function withPageFlows<T>(
  connection: QueueConnection,
  logger: Logger,
  work: (flows: PageFlows) => Promise<T>,
): Promise<T> {
  const flows = new PageFlows(connection, logger);
  try {
    return await work(flows);
  } finally {
    await flows.close();
  }
}
