import { describe, expect, it } from 'vitest';
import { VirtqError } from '../../../protocol/index.js';
import { JobLock } from '../../../shim/vm/jobs.js';
import { deferred } from '../../helpers/promises.js';

describe('JobLock', () => {
  it('runs jobs one at a time in the order they were queued', async () => {
    const lock = new JobLock();
    const order: string[] = [];
    const gate = deferred();
    const a = lock.run('a', async () => { order.push('a start'); await gate.promise; order.push('a end'); return 1; });
    const b = lock.run('b', async () => { order.push('b'); return 2; });
    await Promise.resolve();
    expect(lock.active).toBe('a');
    gate.resolve();
    expect(await a).toBe(1);
    expect(await b).toBe(2);
    expect(order).toEqual(['a start', 'a end', 'b']);
    expect(lock.active).toBeUndefined();
  });

  it('a failing job rejects its caller and does not block the next', async () => {
    const lock = new JobLock();
    const failed = lock.run('bad', async () => { throw new Error('boom'); });
    const next = lock.run('good', async () => 'ok');
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ok');
  });

  it('refuses with TOO_MANY_CALLS once maxQueued jobs wait', async () => {
    const lock = new JobLock();
    const gate = deferred();
    const first = lock.run('a', () => gate.promise, 2);
    const second = lock.run('b', async () => undefined, 2);
    const third = lock.run('c', async () => undefined, 2);
    await expect(third).rejects.toSatisfy((e: unknown) => e instanceof VirtqError && e.code === 'TOO_MANY_CALLS');
    gate.resolve();
    await first;
    await second;
    // Once the queue drained, new jobs are taken again.
    await expect(lock.run('d', async () => 'd', 2)).resolves.toBe('d');
  });

  it('shows a job\'s reported progress while it runs, and none once it has ended', async () => {
    const lock = new JobLock();
    const gate = deferred();
    const progress = { info: () => ({ type: 'block-commit' as const, status: 'running', elapsedMs: 1, totalBytes: 2, transferredBytes: 1, remainingBytes: 1, rateBytesPerSec: 1, dirtySyncCount: 0 }), abort: async () => undefined };
    const job = lock.run('snapshotDelete', async () => { lock.report(progress); await gate.promise; });
    await Promise.resolve();
    await Promise.resolve();
    expect(lock.progress?.info()).toMatchObject({ type: 'block-commit', transferredBytes: 1 });
    gate.resolve();
    await job;
    expect(lock.progress).toBeUndefined();
  });
});
