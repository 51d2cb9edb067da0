// Lifecycle events as the journal holds them: a record's body is the event without its `seq`,
// and the record's sequence number is the event's. Shared by the shim (its VM's journal) and
// virtqemud (every VM's, read from disk) so both answer history and replays the same way.
import { lazyValidator, LifecycleEvent, VirtqError, type EventHistory, type LastStop } from '../protocol/index.js';
import { readJournal, newestRecord, type ReadFilter } from '../drivers/journal/segments.js';
import type { JournalRecord } from '../drivers/journal/record-format.js';

// Its id names the check generated for the shim's bundle (scripts/shim-checks.mjs).
const isEvent = lazyValidator(LifecycleEvent, 'lifecycle-event');

/** The kinds that end a VM's run: the last of them is the VM's last stop. */
export const STOP_EVENTS: ReadonlySet<string> = new Set(['stopped', 'crashed']);

/** The event a record holds, or undefined when its body is not a lifecycle event (a foreign or damaged file). */
export function recordEvent(rec: JournalRecord): LifecycleEvent | undefined {
  const ev = { ...rec.body, seq: rec.seq };
  return isEvent.check(ev) ? ev : undefined;
}

/** The body to journal for `ev` (everything but its sequence number, which the journal gives). */
export function eventBody(ev: LifecycleEvent): Record<string, unknown> {
  const { seq: _seq, ...body } = ev;
  return body;
}

/** The events of the journal in `dir` that pass `filter`, with its last sequence number. */
export function journalEvents(dir: string, filter: ReadFilter): { events: LifecycleEvent[]; last: number; dropped: number } {
  const read = readJournal(dir, filter);
  const events: LifecycleEvent[] = [];
  let dropped = read.dropped;
  for (const r of read.records) {
    const ev = recordEvent(r);
    if (ev === undefined) dropped++;
    else events.push(ev);
  }
  return { events, last: read.lastSeq, dropped };
}

/** Where a client asked a replay or history to start. */
export interface SincePoint {
  since?: number | undefined;
  sinceTime?: number | undefined;
}

/** `getEvents`: VM `name`'s history from the journal in `dir`; INVALID_ARG for a since past its end. */
export function eventHistory(dir: string, name: string, args: SincePoint & { limit?: number | undefined }): EventHistory {
  if (args.since !== undefined && args.sinceTime !== undefined) throw new VirtqError('INVALID_ARG', 'give since or sinceTime, not both');
  const got = journalEvents(dir, {
    ...(args.since === undefined ? {} : { afterSeq: args.since }),
    ...(args.sinceTime === undefined ? {} : { afterTime: args.sinceTime }),
    ...(args.limit === undefined ? {} : { limit: args.limit, newest: args.since === undefined && args.sinceTime === undefined }),
  });
  checkSince(name, args.since, got.last);
  return { events: got.events, last: got.last, dropped: got.dropped };
}

/** INVALID_ARG when `since` is past the last event `last` of VM `name`: the client resumes from a journal that is not this one. */
export function checkSince(name: string, since: number | undefined, last: number): void {
  if (since === undefined || since <= last) return;
  throw new VirtqError('INVALID_ARG', `since ${since} is past the last event of VM "${name}" (${last}); resume with a sequence number up to ${last}, or 0 for its whole history`, { details: { last } });
}

/** The last stop recorded in the journal in `dir`. */
export function lastStopIn(dir: string): LastStop | undefined {
  const rec = newestRecord(dir, (r) => STOP_EVENTS.has(String(r.body['event'])));
  const ev = rec === undefined ? undefined : recordEvent(rec);
  return ev === undefined ? undefined : lastStopOf(ev);
}

/** The last-stop summary of a stop event. */
export function lastStopOf(ev: LifecycleEvent): LastStop | undefined {
  if (ev.seq === undefined || !STOP_EVENTS.has(ev.event)) return undefined;
  return { seq: ev.seq, state: ev.state, reason: ev.reason, timestamp: ev.timestamp, ...(ev.details === undefined ? {} : { details: ev.details }) };
}
