import { defineConfig } from 'vitest/config';

// Integration tests boot real QEMU guests under TCG; two cores cannot run many at once.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
