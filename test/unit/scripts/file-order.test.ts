// The order test files start in (test/helpers/file-order.ts): the slow files first, whatever their size.
import { describe, expect, it } from 'vitest';
import { KNOWN_MS, orderFiles } from '../../helpers/file-order.js';

describe('orderFiles', () => {
  it('starts the files known to be slow first, the slowest first, even when they are the smallest', () => {
    const order = orderFiles([
      { path: 'test/integration/big.test.ts', size: 18_000 },
      { path: 'test/chaos/chaos.test.ts', size: 100 },
      { path: 'test/integration/migration-faults.test.ts', size: 200 },
      { path: 'test/unit/a.test.ts', size: 50_000 },
    ]).map((f) => f.path);
    expect(order).toEqual([
      'test/integration/migration-faults.test.ts',
      'test/chaos/chaos.test.ts',
      'test/integration/big.test.ts',
      'test/unit/a.test.ts',
    ]);
  });

  it("prefers this machine's cached duration to the table", () => {
    const order = orderFiles([
      { path: 'test/integration/migration-faults.test.ts', size: 1 },
      { path: 'test/integration/x.test.ts', size: 1, cachedMs: 500_000 },
      { path: 'test/chaos/chaos.test.ts', size: 1, cachedMs: 1_000 },
    ]).map((f) => f.path);
    expect(order).toEqual(['test/integration/x.test.ts', 'test/integration/migration-faults.test.ts', 'test/chaos/chaos.test.ts']);
  });

  it('runs unit tests after every file that starts processes, larger first, ties by path', () => {
    const order = orderFiles([
      { path: 'test/unit/b.test.ts', size: 10 },
      { path: 'test/unit/a.test.ts', size: 10 },
      { path: 'test/unit/c.test.ts', size: 99 },
      { path: 'test/e2e/small.test.ts', size: 1 },
    ], {}).map((f) => f.path);
    expect(order).toEqual(['test/e2e/small.test.ts', 'test/unit/c.test.ts', 'test/unit/a.test.ts', 'test/unit/b.test.ts']);
  });

  it('names only files that exist', async () => {
    const { existsSync } = await import('node:fs');
    expect(Object.keys(KNOWN_MS).filter((p) => !existsSync(p))).toEqual([]);
  });
});
