// Pushes lifecycle events to subscribed connections with no gap and no duplicate. A subscriber
// remembers, per VM, the last sequence number it was sent: a replay (since / sinceTime /
// sinceByVm) sends what the journal holds after that point before going live; a live event at
// or below it is skipped, and one past the next number is preceded by the missing ones, read
// from the journal (which always has them: events are journaled before anyone is told).
import { VirtqError, type LifecycleEvent, type ServerClient, type SubscribeEventsArgs, type SubscribeEventsResult } from '../protocol/index.js';
import { readJournal } from '../drivers/journal/segments.js';
import { checkSince, journalEvents } from './journal-events.js';

/** Where the feed finds journals and which VMs a host-wide replay covers. */
export interface EventFeedDeps {
  /** The journal directory of VM `name`. */
  journalDir(name: string): string;
  /** The VMs a host-wide replay covers (besides those the client names). */
  names(): Iterable<string>;
  /** The last sequence number of VM `name`'s journal, when the caller knows it without reading. */
  lastSeq?(name: string): number | undefined;
}

interface Subscriber {
  /** One VM, or undefined for every VM. */
  name: string | undefined;
  /** Per VM, the last sequence number sent. */
  sent: Map<string, number>;
  /** True when the client resumes: VMs it has no number for are sent from their first event. */
  resume: boolean;
}

/** The event subscriptions of one server. */
export class EventFeed {
  private readonly subs = new Map<ServerClient, Subscriber>();

  constructor(private readonly deps: EventFeedDeps) {}

  /** The number of subscribed connections. */
  get size(): number {
    return this.subs.size;
  }

  /**
   * Subscribes `client`, first pushing what it missed. Synchronous from the journal read to the
   * subscription, so no live event can fall between the replay and the live feed.
   */
  subscribe(client: ServerClient, args: SubscribeEventsArgs): SubscribeEventsResult {
    const { name, since, sinceTime, sinceByVm } = args;
    const given = [since, sinceTime, sinceByVm].filter((x) => x !== undefined).length;
    if (given > 1) throw new VirtqError('INVALID_ARG', 'give one of since, sinceTime and sinceByVm');
    if (since !== undefined && name === undefined) throw new VirtqError('INVALID_ARG', 'since needs a VM name; to resume every VM give sinceByVm (each VM\'s last sequence number) or sinceTime');
    if (sinceByVm !== undefined && name !== undefined) throw new VirtqError('INVALID_ARG', 'sinceByVm is for every VM: give since with a VM name');
    const resume = given === 1;
    // VMs the client's access rules hide are neither replayed nor named in `last`.
    const names = (!resume ? [] : name !== undefined ? [name] : this.hostNames(sinceByVm)).filter((n) => !hidden(client, n));
    const replays = names.map((n) => {
      const after = since ?? sinceByVm?.[n] ?? 0;
      const got = journalEvents(this.deps.journalDir(n), { afterSeq: after, ...(sinceTime === undefined ? {} : { afterTime: sinceTime }) });
      checkSince(n, since ?? sinceByVm?.[n], got.last);
      return { name: n, ...got };
    });
    const sub = this.subs.get(client) ?? { name, sent: new Map<string, number>(), resume };
    if (!this.subs.has(client)) {
      this.subs.set(client, sub);
      client.onClose(() => this.subs.delete(client));
    }
    if (name === undefined) sub.name = undefined;
    sub.resume ||= resume;
    for (const r of replays) {
      for (const ev of r.events) if (ev.seq === undefined || ev.seq > (sub.sent.get(r.name) ?? 0)) push(client, ev);
      sub.sent.set(r.name, Math.max(sub.sent.get(r.name) ?? 0, r.last));
    }
    // A live subscription to one VM starts at its journal's end: a later gap is then filled too.
    if (name !== undefined && !resume && !sub.sent.has(name)) sub.sent.set(name, this.lastSeq(name));
    return { last: Object.fromEntries(name === undefined && !resume ? [] : [...sub.sent].filter(([n]) => name === undefined || n === name)) };
  }

  /** Pushes `ev` (already journaled, or not journaled at all) to every subscriber that wants it. */
  publish(ev: LifecycleEvent): void {
    for (const [client, sub] of this.subs) {
      if (sub.name !== undefined && sub.name !== ev.name) continue;
      if (hidden(client, ev.name)) continue;
      if (ev.seq === undefined) { push(client, ev); continue; }
      const prev = sub.sent.get(ev.name) ?? (sub.resume ? 0 : undefined);
      if (prev !== undefined) {
        if (ev.seq <= prev) continue;
        if (ev.seq > prev + 1) this.fill(client, ev.name, prev, ev.seq);
      }
      push(client, ev);
      sub.sent.set(ev.name, ev.seq);
    }
  }

  // The events between `after` and `before` that this subscriber missed, from the journal.
  private fill(client: ServerClient, name: string, after: number, before: number): void {
    for (const ev of journalEvents(this.deps.journalDir(name), { afterSeq: after }).events) {
      if (ev.seq !== undefined && ev.seq < before) push(client, ev);
    }
  }

  private hostNames(sinceByVm: Record<string, number> | undefined): string[] {
    return [...new Set([...this.deps.names(), ...Object.keys(sinceByVm ?? {})])].sort();
  }

  private lastSeq(name: string): number {
    return this.deps.lastSeq?.(name) ?? readJournal(this.deps.journalDir(name), { afterSeq: Number.MAX_SAFE_INTEGER }).lastSeq;
  }
}

function hidden(client: ServerClient, name: string): boolean {
  return client.hides('virtq', { name });
}

function push(client: ServerClient, ev: LifecycleEvent): void {
  client.pushEvent('virtq', 'lifecycle', ev);
}
