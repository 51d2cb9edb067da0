// Worker slots: at most `limit` long operations at once, the rest in arrival order, and a limit
// changed at run time applies to the next admission.
import { describe, expect, it } from 'vitest';
import { WorkerSlots } from '../../../daemon/worker-slots.js';

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => { open = resolve; });
  return { promise, open };
}

describe('WorkerSlots', () => {
  it('runs at most the limit at once and the rest in arrival order', async () => {
    let limit = 2;
    const slots = new WorkerSlots(() => limit);
    const gates = [gate(), gate(), gate(), gate()];
    const started: number[] = [];
    const runs = gates.map((g, i) => slots.run(async () => { started.push(i); await g.promise; return i; }));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1]);
    expect(slots.counts).toEqual({ running: 2, waiting: 2 });
    gates[1]?.open();
    await runs[1];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    limit = 3;
    gates[0]?.open();
    await runs[0];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2, 3]);
    expect(slots.counts).toEqual({ running: 2, waiting: 0 });
    gates[2]?.open();
    gates[3]?.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(slots.counts).toEqual({ running: 0, waiting: 0 });
  });

  it('frees the slot of an operation that fails', async () => {
    const slots = new WorkerSlots(() => 1);
    await expect(slots.run(async () => { throw new Error('no'); })).rejects.toThrow('no');
    await expect(slots.run(async () => 'ok')).resolves.toBe('ok');
  });
});
