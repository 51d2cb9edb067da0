import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LifecycleEvent, ServerClient } from '../../../protocol/index.js';
import { EventFeed } from '../../../daemon/event-feed.js';
import { eventBody } from '../../../daemon/journal-events.js';
import { JournalWriter } from '../../../drivers/journal/journal-writer.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

// A connection as the feed sees it: what was pushed to it, and its close.
function client(hidden: readonly string[] = []): { c: ServerClient; pushed: LifecycleEvent[]; close(): void } {
  const pushed: LifecycleEvent[] = [];
  const listeners: Array<() => void> = [];
  const c = {
    pushEvent: (_p: string, _n: string, body: unknown) => pushed.push(body as LifecycleEvent),
    onClose: (l: () => void) => listeners.push(l),
    hides: (_p: string, body: unknown) => hidden.includes((body as { name: string }).name),
  } as unknown as ServerClient;
  return { c, pushed, close: () => { for (const l of listeners) l(); } };
}

const ev = (name: string, event: LifecycleEvent['event']): LifecycleEvent => ({ name, uuid: '00000000-0000-4000-8000-000000000001', event, state: 'running', reason: 'booted', timestamp: 1 });

describe('EventFeed', () => {
  let root: TmpRoot;
  let writers: Map<string, JournalWriter>;
  let feed: EventFeed;
  const clock = new FakeClock();
  beforeEach(() => {
    root = tmpRoot();
    writers = new Map();
    feed = new EventFeed({ journalDir: (n) => root.path(n), names: () => [...writers.keys()] });
  });
  afterEach(() => { for (const w of writers.values()) w.close(); root.remove(); });

  // Journals an event as a shim does, returning it with its number (not yet published).
  const journal = (name: string, kind: LifecycleEvent['event']): LifecycleEvent => {
    const w = writers.get(name) ?? JournalWriter.open({ dir: root.path(name), clock });
    writers.set(name, w);
    const e = ev(name, kind);
    return { ...e, seq: w.append(eventBody(e)).seq };
  };

  it('leaves VMs the client\'s rules hide out of replays, `last` and the live feed', () => {
    journal('a', 'started');
    journal('b', 'started');
    const x = client(['b']);
    expect(feed.subscribe(x.c, { sinceByVm: { b: 0 } })).toEqual({ last: { a: 1 } });
    feed.publish(journal('b', 'stopped'));
    feed.publish(journal('a', 'stopped'));
    expect(x.pushed.map((e) => `${e.name}:${e.seq}`)).toEqual(['a:1', 'a:2']);
  });

  it('replays after since, then goes live without sending an event twice', () => {
    const a = journal('a', 'started');
    journal('a', 'suspended');
    const sub = client();
    expect(feed.subscribe(sub.c, { name: 'a', since: 1 })).toEqual({ last: { a: 2 } });
    expect(sub.pushed.map((e) => e.seq)).toEqual([2]);
    feed.publish(a); // late duplicate of an event already replayed
    feed.publish(journal('a', 'resumed'));
    expect(sub.pushed.map((e) => [e.seq, e.event])).toEqual([[2, 'suspended'], [3, 'resumed']]);
  });

  it('fills a gap in the live feed from the journal', () => {
    journal('a', 'started');
    const sub = client();
    feed.subscribe(sub.c, { name: 'a' });
    journal('a', 'suspended'); // journaled, never published (its publisher died)
    journal('a', 'resumed');
    feed.publish(journal('a', 'stopped'));
    expect(sub.pushed.map((e) => e.seq)).toEqual([2, 3, 4]);
  });

  it('resumes every VM with sinceByVm, replaying VMs it does not name from their start, and reports each last number', () => {
    journal('a', 'started');
    journal('a', 'stopped');
    journal('b', 'started');
    const sub = client();
    expect(feed.subscribe(sub.c, { sinceByVm: { a: 1 } })).toEqual({ last: { a: 2, b: 1 } });
    expect(sub.pushed.map((e) => [e.name, e.seq])).toEqual([['a', 2], ['b', 1]]);
    const c = journal('c', 'started'); // a VM the client never heard of
    feed.publish(c);
    expect(sub.pushed.at(-1)).toMatchObject({ name: 'c', seq: 1 });
  });

  it('passes events without a number through, sends a live host-wide subscriber only what comes, and forgets closed connections', () => {
    journal('a', 'started');
    const sub = client();
    expect(feed.subscribe(sub.c, {})).toEqual({ last: {} });
    feed.publish(ev('a', 'defined'));
    feed.publish(journal('a', 'stopped'));
    expect(sub.pushed.map((e) => [e.event, e.seq])).toEqual([['defined', undefined], ['stopped', 2]]);
    sub.close();
    expect(feed.size).toBe(0);
  });

  it('refuses since past the journal\'s end and mixed resume points', () => {
    journal('a', 'started');
    const sub = client();
    expect(() => feed.subscribe(sub.c, { name: 'a', since: 5 })).toThrow(/past the last event of VM "a" \(1\)/);
    expect(() => feed.subscribe(sub.c, { name: 'a', since: 0, sinceTime: 0 })).toThrow(/one of/);
    expect(() => feed.subscribe(sub.c, { since: 0 })).toThrow(/needs a VM name/);
    expect(sub.pushed).toEqual([]);
    expect(feed.size).toBe(0);
  });
});
