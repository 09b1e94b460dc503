import { Queue } from 'bullmq';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { RenderRecipe } from '../src/comic/recipe.ts';
import { InputError, UpstreamError } from '../src/errors.ts';
import { createLogger } from '../src/log.ts';
import { createQueueConnection } from '../src/queue/connection.ts';
import { JobPayloadError } from '../src/queue/errors.ts';
import type { RenderJob } from '../src/queue/payloads.ts';
import { JobProducer } from '../src/queue/producer.ts';
import { createQueueEvents, createWorker } from '../src/queue/worker.ts';
import { cleanupQueues, keysUnderPrefix, settledJob, testQueueConnection } from './helpers/redis.ts';

const logger = createLogger({ level: 'silent' });
const connection = testQueueConnection('queue');
const producer = new JobProducer(connection, { logger });
const workers: { close(): Promise<void> }[] = [];

function recipe(page: number, panel: number): RenderRecipe {
  return {
    version: 1,
    family: 'illustrious',
    vPrediction: false,
    models: { kind: 'checkpoint', checkpoint: 'illustriousXL_v01.safetensors' },
    positive: 'masterpiece, best quality, 1girl, red scarf, rooftop, night',
    negative: 'lowres, bad anatomy',
    loras: [],
    width: 1216,
    height: 832,
    sampler: 'euler_ancestral',
    scheduler: 'normal',
    steps: 28,
    cfg: 5.5,
    guidance: null,
    seed: 1234 + panel,
    candidates: 1,
    controlNet: null,
    panel: {
      comicId: 'comic1',
      page,
      panel,
      attempt: 0,
      shot: 'wide',
      angle: 'eye level',
      setting: 'a rooftop at night',
      action: 'she looks over the city',
      characters: [{ name: 'Mira', position: 'centre' }],
    },
  };
}

function renderJob(page: number, panel: number): RenderJob {
  return {
    renderId: `r-${page}-${panel}`,
    comicId: 'comic1',
    pageNumber: page,
    panelNumber: panel,
    attempt: 0,
    recipe: recipe(page, panel),
    interactive: false,
  };
}

/** A raw BullMQ queue, standing in for an older or foreign producer that skips our validation. */
function rawQueue(name: string, attempts: number): Queue {
  return new Queue(name, {
    connection: connection.options('producer'),
    prefix: connection.prefix,
    defaultJobOptions: { attempts, backoff: { type: 'fixed', delay: 10 } },
  });
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close()));
  await cleanupQueues(connection);
});

afterAll(async () => {
  await producer.close();
  await cleanupQueues(connection);
});

describe('payload validation', () => {
  it('fails a job with an invalid payload once, with the reason, although the queue allows 5 attempts', async () => {
    let handled = 0;
    const worker = createWorker('render', async () => void handled++, { connection, logger });
    workers.push(worker);
    const raw = rawQueue('render', 5);
    const bad = { ...renderJob(1, 1), recipe: { ...recipe(1, 1), width: 1001 } };
    try {
      const job = await raw.add('render', bad);
      const failed = await settledJob(raw, job.id);
      expect(handled).toBe(0);
      expect(await failed.getState()).toBe('failed');
      expect(failed.attemptsMade).toBe(1);
      expect(failed.failedReason).toContain('invalid render job payload');
      expect(failed.failedReason).toContain('recipe.width');
    } finally {
      await raw.close();
    }
  });

  it('refuses an invalid payload at enqueue, before anything reaches Redis', async () => {
    const isolated = testQueueConnection('queue-enqueue');
    const own = new JobProducer(isolated, { logger });
    try {
      const bad = { comicId: '../../etc' } as { comicId: string };
      await expect(own.enqueue('script', bad)).rejects.toBeInstanceOf(JobPayloadError);
      await expect(own.enqueue('render', { ...renderJob(1, 1), pageNumber: 0 })).rejects.toThrow(
        /pageNumber/,
      );
      expect(await keysUnderPrefix(isolated)).toEqual([]);
    } finally {
      await own.close();
      await cleanupQueues(isolated);
    }
  });
});

describe('workers', () => {
  it('runs a valid job and returns its result', async () => {
    const worker = createWorker('script', async (payload) => ({ wrote: payload.comicId }), {
      connection,
      logger,
    });
    workers.push(worker);
    const job = await producer.enqueue('script', { comicId: 'comic42' });
    const completed = await settledJob(producer.queue('script'), job.id);
    expect(completed.returnvalue).toEqual({ wrote: 'comic42' });
  });

  it('fails bad input (InputError) at once with the user-facing message', async () => {
    let calls = 0;
    const worker = createWorker(
      'assemble-page',
      async () => {
        calls++;
        throw new InputError('Page 3 does not exist in this comic.', { operatorMessage: 'no page row' });
      },
      { connection, logger },
    );
    workers.push(worker);
    const job = await producer.enqueue(
      'assemble-page',
      { comicId: 'c1', pageNumber: 3 },
      { attempts: 5, backoff: 1 },
    );
    const failed = await settledJob(producer.queue('assemble-page'), job.id);
    expect(calls).toBe(1);
    expect(failed.failedReason).toBe('Page 3 does not exist in this comic.');
    expect(await failed.getState()).toBe('failed');
  });

  it('retries a transient failure by the job attempts, then succeeds', async () => {
    let calls = 0;
    const worker = createWorker(
      'post',
      async () => {
        calls++;
        if (calls < 3) throw new UpstreamError('discord', 'Discord is busy.', { retryable: true });
        return 'posted';
      },
      { connection, logger },
    );
    workers.push(worker);
    const job = await producer.enqueue(
      'post',
      { kind: 'status', comicId: 'c1' },
      { attempts: 5, backoff: { type: 'fixed', delay: 5 } },
    );
    const completed = await settledJob(producer.queue('post'), job.id);
    expect(completed.returnvalue).toBe('posted');
    expect(completed.attemptsMade).toBe(3);
  });

  it('does not retry an upstream error marked not retryable', async () => {
    let calls = 0;
    const worker = createWorker(
      'render',
      async () => {
        calls++;
        throw new UpstreamError('comfyui', 'LoRA comic_style_v1 is not installed on runner gpu-1.', {
          retryable: false,
        });
      },
      { connection, logger },
    );
    workers.push(worker);
    const job = await producer.enqueue('render', renderJob(1, 1), { backoff: { type: 'fixed', delay: 5 } });
    const failed = await settledJob(producer.queue('render'), job.id);
    expect(calls).toBe(1);
    expect(failed.failedReason).toContain('comic_style_v1');
  });
});

describe('progress', () => {
  it('carries a render progress to a listener on QueueEvents', async () => {
    const events = createQueueEvents('render', connection, { logger, lastEventId: '0' });
    try {
      const seen = new Promise<unknown>((resolve) => events.on('progress', ({ data }) => resolve(data)));
      const worker = createWorker(
        'render',
        async (_payload, job) => {
          await job.updateProgress({ step: 7, of: 28 });
          return 'done';
        },
        { connection, logger },
      );
      workers.push(worker);
      await producer.enqueue('render', renderJob(1, 1));
      expect(await seen).toEqual({ step: 7, of: 28 });
    } finally {
      await events.close();
    }
  });
});

describe('page flows', () => {
  it('runs every render of a page before its assembly, which sees their results', async () => {
    const order: string[] = [];
    const renderWorker = createWorker(
      'render',
      async (payload) => {
        order.push(`render ${payload.panelNumber}`);
        return { artifactKey: `comics/comic1/renders/${payload.renderId}.png` };
      },
      { connection, logger, concurrency: 2 },
    );
    let childrenSeen: unknown[] = [];
    const assembleWorker = createWorker(
      'assemble-page',
      async (payload, job) => {
        order.push(`assemble ${payload.pageNumber}`);
        childrenSeen = Object.values(await job.getChildrenValues());
        return 'page assembled';
      },
      { connection, logger },
    );
    workers.push(renderWorker, assembleWorker);

    const flow = await producer.addPageFlow({
      comicId: 'comic1',
      pageNumber: 2,
      renders: [renderJob(2, 1), renderJob(2, 2), renderJob(2, 3)],
    });
    const parent = await settledJob(producer.queue('assemble-page'), flow.job.id);

    expect(parent.returnvalue).toBe('page assembled');
    expect(order).toHaveLength(4);
    expect(order[3]).toBe('assemble 2');
    expect(order.slice(0, 3).sort()).toEqual(['render 1', 'render 2', 'render 3']);
    expect(childrenSeen).toHaveLength(3);
    expect(childrenSeen).toContainEqual({ artifactKey: 'comics/comic1/renders/r-2-2.png' });
  });

  it('fails the page when one of its renders fails for good, without assembling it', async () => {
    const renderWorker = createWorker(
      'render',
      async (payload) => {
        if (payload.panelNumber === 2) throw new InputError('The recipe for panel 2 is not renderable.');
        return 'ok';
      },
      { connection, logger },
    );
    let assembled = false;
    const assembleWorker = createWorker('assemble-page', async () => void (assembled = true), {
      connection,
      logger,
    });
    workers.push(renderWorker, assembleWorker);

    const flow = await producer.addPageFlow({
      comicId: 'comic1',
      pageNumber: 1,
      renders: [renderJob(1, 1), renderJob(1, 2)],
    });
    // The parent never reaches a worker: BullMQ moves it to failed when the child fails for good.
    const parent = await settledJob(producer.queue('assemble-page'), flow.job.id);
    expect(await parent.getState()).toBe('failed');
    expect(assembled).toBe(false);
    expect(parent.failedReason).toMatch(/child .*render.* failed/i);
  });

  it('refuses a render that belongs to another page', async () => {
    await expect(
      producer.addPageFlow({ comicId: 'comic1', pageNumber: 1, renders: [renderJob(1, 1), renderJob(2, 2)] }),
    ).rejects.toBeInstanceOf(JobPayloadError);
  });
});

describe('connection', () => {
  it('fails an enqueue fast with a clear upstream error when Redis is unreachable', async () => {
    // Port 1 on loopback: nothing listens there.
    const down = new JobProducer(
      createQueueConnection({ redisUrl: 'redis://127.0.0.1:1', prefix: 'test-down' }),
      {
        logger,
        readyTimeoutMs: 300,
      },
    );
    try {
      const error = await down.enqueue('script', { comicId: 'c1' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).userMessage).toMatch(/queue is unavailable/);
    } finally {
      await down.close();
    }
  });

  it('gives workers maxRetriesPerRequest null and producers a fail-fast connection', () => {
    const conn = createQueueConnection({ redisUrl: 'redis://user:p%40ss@redis.internal:6380/2' });
    expect(conn.prefix).toBe('comicmaster');
    expect(conn.options('worker')).toMatchObject({
      host: 'redis.internal',
      port: 6380,
      db: 2,
      password: 'p@ss',
      maxRetriesPerRequest: null,
    });
    expect(conn.options('producer')).toMatchObject({ enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    expect(() => createQueueConnection({ redisUrl: 'http://localhost' })).toThrow();
    expect(() => createQueueConnection({ redisUrl: 'redis://x', prefix: 'a:b' })).toThrow();
  });
});
