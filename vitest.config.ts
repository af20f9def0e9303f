import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A temp dir per run, empty at the end (test/globalSetup.ts).
    globalSetup: ['test/globalSetup.ts'],
    // Real processes and sockets: bounded, and not too many at once on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default'],
  },
});
