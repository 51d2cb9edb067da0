// virtqemud's catch-up of a live VM's journal after a restart: recovery notes only when it found
// the VM live (no journal read before the first listing); the shim's re-registration then tells
// exactly what it journaled from that moment on, across segment rotations, once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostJournal } from '../../../aggregator/host-journal.js';
import { JournalWriter } from '../../../drivers/journal/journal-writer.js';
import { recordsAfterTime } from '../../../drivers/journal/segments.js';
import { eventBody } from '../../../daemon/journal-events.js';
import { LineLogHub } from '../../../daemon/line-log.js';
import type { LifecycleEvent } from '../../../protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const UUID = '0b6b1a3c-6d3e-4c1e-9a55-3f1f7e2b9d10';

describe('HostJournal catch-up after a restart', () => {
  let root: TmpRoot;
  let clock: FakeClock;
  let journal: HostJournal;
  let writer: JournalWriter;
  beforeEach(() => {
    root = tmpRoot();
    clock = new FakeClock();
    journal = new HostJournal(root.path('state'), clock, new LineLogHub({ name: 't', bindings: {}, filters: 'silent' }).module('journal'), process.pid);
    // Small segments: the records after the moment span a rotation.
    writer = JournalWriter.open({ dir: journal.dir('web1'), clock, segmentBytes: 300, maxSegments: 8 });
  });
  afterEach(() => { writer.close(); root.remove(); });

  const shimJournals = (event: LifecycleEvent['event'], state: LifecycleEvent['state']): number => {
    const ev: LifecycleEvent = { name: 'web1', uuid: UUID, event, state, reason: 'user', timestamp: clock.now() };
    return writer.append(eventBody(ev), ev.timestamp).seq;
  };

  it('tells what the shim journaled from the moment recovery found it live, not before, and then nothing twice', async () => {
    shimJournals('started', 'running');
    await clock.advance(1000);
    shimJournals('suspended', 'paused');
    await clock.advance(1000);
    journal.known('web1');
    // The journal is not read at recovery: nothing about it is known yet.
    expect(journal.lastSeq('web1')).toBeUndefined();
    const after = [shimJournals('resumed', 'running')];
    await clock.advance(5);
    after.push(shimJournals('suspended', 'paused'), shimJournals('resumed', 'running'), shimJournals('suspended', 'paused'));
    const untold = journal.untold('web1') ?? [];
    expect(untold.map((e) => e.seq)).toEqual(after);
    expect(untold.map((e) => e.event)).toEqual(['resumed', 'suspended', 'resumed', 'suspended']);
    for (const ev of untold) journal.seen(ev);
    expect(journal.lastSeq('web1')).toBe(after[after.length - 1]);
    expect(journal.untold('web1')).toEqual([]);
    await clock.advance(5);
    const next = shimJournals('resumed', 'running');
    expect((journal.untold('web1') ?? []).map((e) => e.seq)).toEqual([next]);
  });

  it('tells nothing for a VM it never found live nor heard from', () => {
    shimJournals('started', 'running');
    expect(journal.untold('web1')).toBeUndefined();
  });

  it('reads the records after a moment newest segment first, in sequence order', async () => {
    for (let i = 0; i < 6; i++) { shimJournals('suspended', 'paused'); await clock.advance(10); }
    const cut = clock.now() - 35;
    const recs = recordsAfterTime(journal.dir('web1'), cut);
    expect(recs.map((r) => r.seq)).toEqual([4, 5, 6]);
    expect(recsAllAfter(recs, cut)).toBe(true);
  });
});

function recsAllAfter(recs: readonly { ts: number }[], t: number): boolean {
  return recs.every((r) => r.ts > t);
}
