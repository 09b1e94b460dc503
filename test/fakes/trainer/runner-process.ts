/**
 * A whole runner in a process of its own, for the test that kills it (SIGKILL, no shutdown): the real
 * runRunner with the configuration from the environment (DATABASE_URL, REDIS_URL, DATA_DIR,
 * TRAINER_PYTHON, SD_SCRIPTS_DIR …), the queue prefix from argv[2] and short BullMQ lock timings so
 * the next runner picks the stalled training up quickly. Prints "ready" once the workers run.
 */
import pino from 'pino';
import { parseConfig } from '../../../src/config/env.ts';
import { runRunner } from '../../../src/gpu/runner.ts';

const prefix = process.argv[2];
if (!prefix) throw new Error('usage: runner-process.ts <queue prefix>');
const runner = await runRunner(parseConfig(process.env), {
  queuePrefix: prefix,
  logger: pino({ level: process.env.LOG_LEVEL ?? 'silent' }),
  heartbeatIntervalMs: 500,
  train: {
    lockDurationMs: 2_000,
    stalledIntervalMs: 1_000,
    progressIntervalMs: 20,
    cancelPollMs: 100,
    stopGraceMs: 2_000,
  },
});
process.stdout.write('ready\n');
await runner.stopped;
