// NameTurns: the per-name queue virtqemud's define/undefine/setAutostart and its own owed undefines
// share, and the fleet's claims and releases use.
import { describe, expect, it } from 'vitest';
import { NameTurns } from '../../../aggregator/name-turns.js';

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('NameTurns', () => {
  it('runs the calls of one name one at a time, in the order asked, past a failure', async () => {
    const turns = new NameTurns();
    const order: string[] = [];
    let release = (): void => undefined;
    const first = turns.run('a', async () => {
      order.push('first begins');
      await new Promise<void>((r) => { release = r; });
      order.push('first ends');
      throw new Error('first fails');
    });
    const second = turns.run('a', async () => { order.push('second'); return 2; });
    await settle();
    expect(order).toEqual(['first begins']);
    release();
    await expect(first).rejects.toThrow('first fails');
    await expect(second).resolves.toBe(2);
    expect(order).toEqual(['first begins', 'first ends', 'second']);
  });

  it('lets another name go on while one waits', async () => {
    const turns = new NameTurns();
    let release = (): void => undefined;
    const held = turns.run('a', () => new Promise<void>((r) => { release = r; }));
    await expect(turns.run('b', async () => 'b')).resolves.toBe('b');
    release();
    await held;
  });
});
