// virtqemud's side of the event journal: it reads every VM's journal (host-wide replays, history,
// dominfo's last stop) and appends to one only what no shim can: a stop it found while the VM had
// no live shim (reconciliation, recovery) and a lost shim. It never appends while the journal's
// writer (the VM's shim) runs, so sequence numbers have one source at a time.
import type { LastStop, LifecycleEvent, Logger, Clock } from '../protocol/index.js';
import { JournalWriter } from '../drivers/journal/journal-writer.js';
import { readJournal, recordsAfterTime } from '../drivers/journal/segments.js';
import { claimWriter, otherWriterAlive, selfWriter } from '../drivers/journal/writer-lock.js';
import { journalDir } from '../drivers/journal/segments.js';
import { eventBody, journalEvents, lastStopIn, lastStopOf, recordEvent, STOP_EVENTS } from '../daemon/journal-events.js';

/** Event kinds virtqemud journals itself when the VM's shim is gone. */
export const HOST_JOURNALED: ReadonlySet<string> = new Set(['stopped', 'crashed', 'shim-lost']);

/** Every VM's journal, as virtqemud uses it. */
export class HostJournal {
  private readonly stops = new Map<string, LastStop | null>();
  private readonly lasts = new Map<string, number>();
  // VMs found live at recovery whose journal virtqemud has not read yet: when they were found (ms since the epoch).
  private readonly liveSince = new Map<string, number>();

  constructor(private readonly stateDir: string, private readonly clock: Clock, private readonly log: Logger, private readonly pid: number) {}

  /** VM `name`'s journal directory. */
  dir(name: string): string {
    return journalDir(this.stateDir, name);
  }

  /** The last sequence number virtqemud has seen for VM `name`, when it has seen one. */
  lastSeq(name: string): number | undefined {
    return this.lasts.get(name);
  }

  /**
   * Notes that VM `name`'s shim lives, so what it journals from now on is caught up when it
   * re-registers (Events.catchUp). Only the time is noted, not where its journal ends: reading
   * every live VM's journal tail here cost a restarted virtqemud one directory listing and one
   * file read per VM before its first listing (issue 15 target 4, session 12); the catch-up
   * reads the records written since, newest segments first.
   */
  known(name: string): void {
    if (!this.lasts.has(name) && !this.liveSince.has(name)) this.liveSince.set(name, this.clock.now());
  }

  /**
   * What VM `name`'s shim journaled that virtqemud has not told: after the last sequence number
   * it saw, or, for a VM found live at recovery and not heard from since, written from the moment
   * it was found on (the same wall clock the shim stamps its records with). Undefined when
   * virtqemud never knew where its journal stood (a subscriber that resumes reads the journal itself).
   */
  untold(name: string): LifecycleEvent[] | undefined {
    const after = this.lasts.get(name);
    if (after !== undefined) return journalEvents(this.dir(name), { afterSeq: after }).events;
    const since = this.liveSince.get(name);
    if (since === undefined) return undefined;
    this.liveSince.delete(name);
    const events: LifecycleEvent[] = [];
    for (const rec of recordsAfterTime(this.dir(name), since - 1)) {
      const ev = recordEvent(rec);
      if (ev !== undefined) events.push(ev);
    }
    return events;
  }

  /** Notes an event that passed through (from a shim or appended here). */
  seen(ev: LifecycleEvent): void {
    if (ev.seq === undefined) return;
    this.lasts.set(ev.name, Math.max(this.lasts.get(ev.name) ?? 0, ev.seq));
    this.liveSince.delete(ev.name);
    const stop = lastStopOf(ev);
    if (stop !== undefined) this.stops.set(ev.name, stop);
  }

  /** VM `name`'s last stop (read from its journal once, then kept current from the events). */
  lastStop(name: string): LastStop | undefined {
    let stop = this.stops.get(name);
    if (stop === undefined) {
      stop = lastStopIn(this.dir(name)) ?? null;
      this.stops.set(name, stop);
    }
    return stop ?? undefined;
  }

  /**
   * A stop the journal already holds for this run of the VM (the shim journaled it and then died
   * before anyone heard): returned instead of journaling a second one.
   */
  recordedStop(name: string, uuid: string, notBefore = 0): LifecycleEvent | undefined {
    const read = readJournal(this.dir(name), { afterSeq: Number.MAX_SAFE_INTEGER });
    const tail = read.lastSeq === 0 ? undefined : readJournal(this.dir(name), { afterSeq: read.lastSeq - 1 }).records[0];
    const ev = tail === undefined ? undefined : recordEvent(tail);
    return ev !== undefined && ev.uuid === uuid && STOP_EVENTS.has(ev.event) && ev.timestamp >= notBefore ? ev : undefined;
  }

  /**
   * Appends `ev` to its VM's journal and returns it with its sequence number; unchanged (no
   * sequence number) while the VM's shim is alive to write its own journal, or when the append fails.
   */
  append(ev: LifecycleEvent): LifecycleEvent {
    const dir = this.dir(ev.name);
    const self = selfWriter(this.pid);
    if (otherWriterAlive(dir, self)) return ev;
    let writer: JournalWriter | undefined;
    try {
      if (self !== undefined) claimWriter(dir, self);
      writer = JournalWriter.open({ dir, clock: this.clock });
      const rec = writer.append(eventBody(ev), ev.timestamp);
      const out = { ...ev, seq: rec.seq };
      this.seen(out);
      return out;
    } catch (err) {
      this.log.error({ err, name: ev.name, msgId: 'JOURNAL_WRITE_FAILED' }, 'cannot journal an event virtqemud found; it is pushed without a sequence number');
      return ev;
    } finally {
      writer?.close(); // fsyncs: a stop found here is rare and must not be lost
    }
  }
}
