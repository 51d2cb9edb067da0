// The per-network lock: one holder at a time per key, keys independent, errors release it.
import { describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../../../drivers/network/keyed-mutex.js';

describe('KeyedMutex', () => {
  it('runs holders of one key one at a time, in order, even when one throws', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const a = m.run('n', async () => { log.push('a start'); await gate; log.push('a end'); });
    const b = m.run('n', async () => { log.push('b'); throw new Error('boom'); });
    const c = m.run('n', async () => { log.push('c'); return 3; });
    const other = m.run('other', async () => { log.push('other'); });
    await other;
    expect(log).toEqual(['a start', 'other']);
    release();
    await a;
    await expect(b).rejects.toThrow('boom');
    expect(await c).toBe(3);
    expect(log).toEqual(['a start', 'other', 'a end', 'b', 'c']);
  });
});
