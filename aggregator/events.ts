// Host-wide lifecycle events: shims' events (journaled by the shim, with its sequence number) and
// virtqemud's own (defined, undefined; and, journaled here when the VM's shim is gone, a lost shim
// or a stop found by reconciliation or recovery), pushed to subscribers through the event feed,
// which replays from the journals and never sends an event twice or skips one.
import { LIFECYCLE_EVENT_KINDS, VirtqError, type LifecycleEvent, type LifecycleEventKind, type Clock, type ServerClient, type SubscribeEventsArgs, type SubscribeEventsResult } from '../protocol/index.js';
import { EventFeed } from '../daemon/event-feed.js';
import type { DomainRecord, DomainRegistry } from './registry.js';
import { HOST_JOURNALED, type HostJournal } from './host-journal.js';

const KINDS: ReadonlySet<string> = new Set(LIFECYCLE_EVENT_KINDS);

/** Publishes lifecycle events. */
export class Events {
  private readonly feed: EventFeed;

  constructor(registry: DomainRegistry, private readonly clock: Clock, readonly journal: HostJournal) {
    this.feed = new EventFeed({
      journalDir: (name) => journal.dir(name),
      names: () => [...registry.all()].map((r) => r.name),
      lastSeq: (name) => journal.lastSeq(name),
    });
  }

  /** Subscribes `client` to every VM's events, or to one VM's, replaying what it missed. */
  subscribe(client: ServerClient, args: SubscribeEventsArgs): SubscribeEventsResult {
    return this.feed.subscribe(client, args);
  }

  /**
   * Publishes an event about `r` in its current state. `journaled` carries the sequence number and
   * time the shim's journal gave it; events virtqemud found itself are journaled here first.
   */
  lifecycle(r: DomainRecord, kind: string, details?: Record<string, unknown>, journaled?: { seq?: number | undefined; timestamp?: number | undefined }): void {
    if (!KINDS.has(kind)) throw new VirtqError('INVALID_ARG', `unknown lifecycle event "${kind}"`);
    let event: LifecycleEvent = {
      name: r.name, uuid: r.uuid, event: kind as LifecycleEventKind, state: r.state, reason: r.reason, timestamp: journaled?.timestamp ?? this.clock.now(),
      ...(details === undefined ? {} : { details }),
      ...(journaled?.seq === undefined ? {} : { seq: journaled.seq }),
    };
    // Marked as virtqemud's finding: recovery tells such a stop from one the shim recorded.
    if (event.seq === undefined && HOST_JOURNALED.has(kind)) event = this.journal.append({ ...event, details: { ...details, foundBy: 'virtqemud' } });
    this.journal.seen(event);
    this.feed.publish(event);
  }

  /**
   * Publishes what VM `r`'s shim journaled after the last event virtqemud saw of it (while it
   * could not report: virtqemud was restarting). Nothing when virtqemud never knew where its
   * journal stood: a subscriber that resumes reads the journal itself.
   */
  catchUp(r: DomainRecord): void {
    for (const ev of this.journal.untold(r.name) ?? []) this.replayed(ev);
  }

  /** Publishes a stop the journal already holds (as it holds it). */
  replayed(event: LifecycleEvent): void {
    this.journal.seen(event);
    this.feed.publish(event);
  }
}
