/** The queues in one import: names, payloads, connection, producer and worker helpers. */
export * from './connection.ts';
export * from './errors.ts';
export * from './job-options.ts';
export * from './names.ts';
export * from './payloads.ts';
export * from './producer.ts';
export * from './worker.ts';
