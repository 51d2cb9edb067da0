// A VM's end is fsync'd as soon as it is journaled (session 23): destroy, shutdown and a migration's
// source reply only once it is durable, so waiting for the 100 ms batch (or for the reply's own
// wait to start the fsync) only delayed them. Other events keep the batch. The fake clock never
// advances here, so the batch's timer never fires: only the early fsync is counted.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, type LifecycleEvent } from '../../../protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const fsyncs = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fsync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => { fsyncs.count++; fs.fsync(fd, cb); };
  return { ...fs, default: { ...fs, fsync }, fsync };
});
const { VmEvents } = await import('../../../shim/journal/vm-events.js');

const vm = { tainted: false, state: 'running', def: { disks: [], interfaces: [] } };
const event = (kind: LifecycleEvent['event'], state: LifecycleEvent['state'], reason: string): LifecycleEvent => ({ name: 'ev1', uuid: '00000000-0000-4000-8000-000000000001', event: kind, state, reason, timestamp: 1 });

describe('VmEvents: when a journaled event is fsync\'d', () => {
  let root: TmpRoot | undefined;
  afterEach(() => { root?.remove(); root = undefined; });

  it('starts the fsync of a stop at once, and leaves other events to the batch', async () => {
    root = tmpRoot();
    const events = VmEvents.open({ stateDir: root.dir, name: 'ev1', clock: new FakeClock(), log: silentLogger(), pid: process.pid, vm });
    const before = fsyncs.count;
    // A sync's fsync is called from its promise chain: one turn of the event loop lets it be.
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    events.record(event('resumed', 'running', 'unpaused'));
    await turn();
    expect(fsyncs.count).toBe(before);
    events.record(event('stopped', 'shutoff', 'destroyed'));
    await turn();
    expect(fsyncs.count).toBe(before + 1);
    events.close();
  });
});
