// `virtq domevents` and `virtq event --since` against fakes: what is asked of the server and how
// the history prints; bad --since values are usage errors that call nothing.
import { describe, expect, it } from 'vitest';
import { EventQueue, type EventHistory, type LifecycleEvent } from '../../../protocol/index.js';
import { parseSince } from '../../../cli/event-history.js';
import { fake } from './fake-io.js';

const ev = (seq: number, event: LifecycleEvent['event'], state: LifecycleEvent['state'], reason: string, details?: Record<string, unknown>): LifecycleEvent => ({
  name: 'web1', uuid: '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', event, state, reason, timestamp: Date.UTC(2026, 11, 4, 1, 0, seq), seq, ...(details === undefined ? {} : { details }),
});

describe('parseSince', () => {
  it('reads digits as a sequence number and anything else as a time', () => {
    expect(parseSince('41')).toEqual({ since: 41 });
    expect(parseSince('2026-12-04T01:00:00Z')).toEqual({ sinceTime: Date.UTC(2026, 11, 4, 1) });
    expect(() => parseSince('yesterday')).toThrow(/sequence number .* or a time/);
    expect(() => parseSince('-3')).toThrow(/sequence number .* or a time/);
    expect(() => parseSince('99999999999999999999')).toThrow(/too large/);
  });
});

describe('virtq domevents', () => {
  const history: EventHistory = { events: [ev(1, 'started', 'running', 'booted'), ev(2, 'stopped', 'shutoff', 'shutdown', { exitCode: 0, signal: null })], last: 2, dropped: 0 };

  it('prints the history as a table, and asks from a sequence number with --since', async () => {
    const f = fake({ procs: { getEvents: () => history } });
    expect(await f.run('domevents', 'web1', '--since', '0')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'getEvents', args: { name: 'web1', since: 0 }, timeoutMs: undefined }]);
    expect(f.stdout.text).toContain('Seq');
    expect(f.stdout.text).toMatch(/1 +2026-12-04T01:00:01\.000Z +started +running +booted/);
    expect(f.stdout.text).toMatch(/2 +2026-12-04T01:00:02\.000Z +stopped +shutoff +shutdown +exitCode=0\n/);
  });

  it('prints the result as JSON with --json, and asks from a time', async () => {
    const f = fake({ procs: { getEvents: () => history } });
    expect(await f.run('domevents', 'web1', '--since', '2026-12-04T01:00:00Z', '--json')).toBe(0);
    expect(f.calls[0]?.args).toEqual({ name: 'web1', sinceTime: Date.UTC(2026, 11, 4, 1) });
    expect(JSON.parse(f.stdout.text)).toEqual(history);
  });

  it('refuses a bad --since and calls nothing', async () => {
    const f = fake({ procs: { getEvents: () => history } });
    expect(await f.run('domevents', 'web1', '--since', 'soon')).not.toBe(0);
    expect(f.calls).toEqual([]);
  });
});

describe('virtq event --since', () => {
  it('subscribes from a sequence number for one VM', async () => {
    const events = new EventQueue<LifecycleEvent>(10);
    events.push(ev(42, 'resumed', 'running', 'unpaused'));
    const f = fake({ events });
    expect(await f.run('event', 'web1', '--since', '41')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'subscribeEvents', args: { name: 'web1', since: 41 } }]);
  });

  it('refuses a sequence number without a VM name, calling nothing', async () => {
    const f = fake({ events: new EventQueue<LifecycleEvent>(10) });
    expect(await f.run('event', '--since', '41')).toBe(1);
    expect(f.stderr.text).toMatch(/needs a VM name/);
    expect(f.calls).toEqual([]);
  });
});
