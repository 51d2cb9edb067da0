// QEMU's MIGRATION events as wake-ups of the migration polls: a nap ends at the next MIGRATION
// event or after its interval, whichever comes first; an event that arrived while the poll's
// query was in flight (after the mark) ends it at once; other events do nothing.
import { describe, expect, it } from 'vitest';
import { MigrationWakeups } from '../../../shim/vm/migration-wakeups.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { settledSoon } from '../../helpers/promises.js';

/** Whether `p` has settled after the microtasks queued so far ran. */
const settled = (p: Promise<void>): Promise<boolean> => settledSoon(p, 5);

describe('MigrationWakeups', () => {
  it('ends a nap at the next MIGRATION event, not at other events', async () => {
    const w = new MigrationWakeups();
    const clock = new FakeClock();
    const nap = w.nap(clock, 100, w.mark());
    w.onEvent({ event: 'MIGRATION_PASS', data: { pass: 2 } });
    w.onEvent({ event: 'STOP' });
    expect(await settled(nap)).toBe(false);
    w.onEvent({ event: 'MIGRATION', data: { status: 'pre-switchover' } });
    expect(await settled(nap)).toBe(true);
  });

  it('ends a nap after its interval when no event comes', async () => {
    const w = new MigrationWakeups();
    const clock = new FakeClock();
    const nap = w.nap(clock, 100, w.mark());
    await clock.advance(99);
    expect(await settled(nap)).toBe(false);
    await clock.advance(1);
    expect(await settled(nap)).toBe(true);
  });

  it('does not sleep when an event came after the mark (while the query was in flight)', async () => {
    const w = new MigrationWakeups();
    const clock = new FakeClock();
    const mark = w.mark();
    expect(w.seenSince(mark)).toBe(false);
    w.onEvent({ event: 'MIGRATION', data: { status: 'completed' } });
    expect(w.seenSince(mark)).toBe(true);
    expect(await settled(w.nap(clock, 100, mark))).toBe(true);
    // A later mark waits again.
    expect(await settled(w.nap(clock, 100, w.mark()))).toBe(false);
  });
});
