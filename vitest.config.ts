import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/helpers/longest-first-sequencer.js';

// Integration tests boot real QEMU guests under TCG; two cores cannot run many at once.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Fails a file that leaves a process running (test/helpers/no-process-left.setup.ts).
    setupFiles: ['test/helpers/no-process-left.setup.ts'],
    reporters: ['default'],
    // Longest files first so neither worker is left running a slow file alone at the end.
    sequence: { sequencer: LongestFirstSequencer },
  },
});
