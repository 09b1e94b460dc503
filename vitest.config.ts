import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests share one PostgreSQL server and one Redis; each file uses its own schema / key prefix,
    // but running files one at a time keeps a 2-core machine responsive.
    fileParallelism: false,
    pool: 'forks',
    // Product code logs at info; tests that check logging build their own logger. Keep CI output readable.
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
  },
});
