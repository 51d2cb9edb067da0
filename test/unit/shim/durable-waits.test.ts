// What a state change's reply waits for (shim-parts durableWaits, session 24): the state file, the
// journal's fsync and virtqemud's acknowledgement, overlapped. They ran one after the other: the
// fsync was asked only once the state file was written, the acknowledgement awaited only after it.
import { describe, expect, it } from 'vitest';
import { durableWaits } from '../../../shim/shim-parts.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { deferred, settledSoon as settled } from '../../helpers/promises.js';

describe('durableWaits', () => {
  it('asks the journal\'s fsync and virtqemud\'s acknowledgement at once, while the state file is still being written', async () => {
    const state = deferred();
    const fsync = deferred();
    const ack = deferred();
    const asked: string[] = [];
    const waiting = durableWaits(state.promise, { flushed: () => { asked.push('fsync'); return fsync.promise; } }, { flush: () => { asked.push('ack'); return ack.promise; } }, new FakeClock());
    expect(asked.sort()).toEqual(['ack', 'fsync']);
    ack.resolve();
    fsync.resolve();
    expect(await settled(waiting)).toBe(false); // the state file still counts
    state.resolve();
    expect(await settled(waiting)).toBe(true);
  });

  it('waits for a silent virtqemud one second at most, and not at all without one', async () => {
    const clock = new FakeClock();
    const never = new Promise<void>(() => undefined);
    const waiting = durableWaits(Promise.resolve(), { flushed: () => Promise.resolve() }, { flush: () => never }, clock);
    expect(await settled(waiting)).toBe(false);
    await clock.advance(999);
    expect(await settled(waiting)).toBe(false);
    await clock.advance(1);
    expect(await settled(waiting)).toBe(true);
    expect(await settled(durableWaits(Promise.resolve(), { flushed: () => Promise.resolve() }, undefined, clock))).toBe(true);
  });
});
