import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../helpers/fake-clock.js';
import { SyncSchedule } from '../../../aggregator/cluster/sync-schedule.js';

describe('a fleet member\'s sync schedule', () => {
  it('syncs once a period without cause', async () => {
    const clock = new FakeClock();
    const s = new SyncSchedule(clock, { periodMs: 10_000, afterFailureMs: 5_000 });
    expect(s.due()).toBe(false);
    await clock.advance(9_999);
    expect(s.due()).toBe(false);
    await clock.advance(1);
    expect(s.due()).toBe(true);
    s.synced();
    expect(s.due()).toBe(false);
    await clock.advance(10_000);
    expect(s.due()).toBe(true);
  });

  it('syncs at every heartbeat for the window after a failed etcd call, even after syncs succeed', async () => {
    const clock = new FakeClock();
    const s = new SyncSchedule(clock, { periodMs: 10_000, afterFailureMs: 5_000 });
    await clock.advance(1_000);
    s.uncertain();
    for (let t = 0; t < 5; t++) {
      expect(s.due()).toBe(true);
      s.synced();
      await clock.advance(999);
    }
    await clock.advance(5);
    expect(s.due()).toBe(false);
    // A later failure opens the window again.
    s.uncertain();
    expect(s.due()).toBe(true);
  });
});
