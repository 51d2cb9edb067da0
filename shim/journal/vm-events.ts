// A shim's side of the event journal: every event about its VM is appended to the VM's journal
// (lib/journal/NAME) before it is pushed to anyone, subscribers get replays and the live feed
// from it, and `getEvents` / dominfo's last stop are answered from it. Besides the VM's own
// lifecycle events it journals what the VM's state shows changed: taint and hot-plugged devices.
import type { Clock, EventHistory, LastStop, LifecycleEvent, LifecycleEventKind, Logger, ResolvedDefinition, ServerClient, SubscribeEventsArgs, SubscribeEventsResult } from '../../protocol/index.js';
import { VirtqError } from '../../protocol/index.js';
import { JournalWriter } from '../../drivers/journal/journal-writer.js';
import { journalDir } from '../../drivers/journal/segments.js';
import { claimWriter, selfWriter } from '../../drivers/journal/writer-lock.js';
import { EventFeed } from '../../daemon/event-feed.js';
import { eventBody, eventHistory, lastStopIn, lastStopOf, type SincePoint } from '../../daemon/journal-events.js';

/** What the journal watches of the VM to see taint and hot-plug. */
export interface VmSnapshot {
  tainted: boolean;
  state: string;
  def: Pick<ResolvedDefinition, 'disks' | 'interfaces'>;
}

/** One change the VM's state shows, to be journaled as an event. */
export interface DerivedEvent {
  kind: LifecycleEventKind;
  details?: Record<string, unknown>;
}

/** The journal, live feed and history of one VM, owned by its shim. */
export class VmEvents {
  readonly feed: EventFeed;
  private stop: LastStop | undefined;
  private tainted: boolean;
  private devices: Set<string>;

  private constructor(private readonly dir: string, private readonly name: string, private readonly writer: JournalWriter | undefined, private readonly log: Logger, vm: VmSnapshot) {
    this.feed = new EventFeed({ journalDir: () => dir, names: () => [name], lastSeq: () => writer?.lastSeq });
    this.stop = lastStopIn(dir);
    this.tainted = vm.tainted;
    this.devices = deviceIds(vm);
  }

  /**
   * Opens VM `name`'s journal under `stateDir` and names this process its writer. A journal that
   * cannot be opened (a full or read-only disk) leaves events live-only, and says so in the log.
   */
  static open(opts: { stateDir: string; name: string; clock: Clock; log: Logger; pid: number; vm: VmSnapshot }): VmEvents {
    const dir = journalDir(opts.stateDir, opts.name);
    let writer: JournalWriter | undefined;
    try {
      const self = selfWriter(opts.pid);
      if (self !== undefined) claimWriter(dir, self);
      writer = JournalWriter.open({ dir, clock: opts.clock });
      if (writer.report.truncatedBytes > 0) opts.log.warn({ msgId: 'JOURNAL_TAIL_CUT', bytes: writer.report.truncatedBytes }, 'cut a torn record from the end of the event journal');
    } catch (err) {
      opts.log.error({ err, msgId: 'JOURNAL_UNAVAILABLE' }, 'cannot open the event journal; events are pushed live only');
    }
    return new VmEvents(dir, opts.name, writer, opts.log, opts.vm);
  }

  /** The VM's last stop as the journal records it. */
  get lastStop(): LastStop | undefined {
    return this.stop;
  }

  /** Appends `ev` to the journal (one write, before anyone is told) and returns it with its sequence number. */
  record(ev: LifecycleEvent): LifecycleEvent {
    let out = ev;
    try {
      if (this.writer !== undefined) out = { ...ev, seq: this.writer.append(eventBody(ev), ev.timestamp).seq };
    } catch (err) {
      this.log.error({ err, msgId: 'JOURNAL_WRITE_FAILED', event: ev.event }, 'cannot journal an event; it is pushed without a sequence number');
    }
    const stop = lastStopOf(out);
    this.stop = stop ?? this.stop;
    // A VM's end is what its caller waits to be durable (destroy, shutdown, a migration's source):
    // its fsync starts now, not at the batch's end or the reply's wait (session 23).
    if (stop !== undefined) void this.writer?.sync();
    return out;
  }

  /** What changed in `vm` since the last look that has no event of its own: taint, a hot-plugged device. */
  changes(vm: VmSnapshot): DerivedEvent[] {
    const out: DerivedEvent[] = [];
    if (vm.tainted && !this.tainted) out.push({ kind: 'tainted' });
    this.tainted = vm.tainted;
    const now = deviceIds(vm);
    // Devices given at start (ports, defaults) are the VM's own, not a hot-plug.
    if (vm.state === 'running' || vm.state === 'paused') {
      for (const id of now) if (!this.devices.has(id)) out.push({ kind: 'device-added', details: { device: id } });
    }
    this.devices = now;
    return out;
  }

  /** Subscribes a connection to this VM's events (a subscription without a name means this VM). */
  subscribe(client: ServerClient, args: SubscribeEventsArgs): SubscribeEventsResult {
    if (args.sinceByVm !== undefined) throw new VirtqError('INVALID_ARG', 'sinceByVm is for virtqemud\'s host-wide feed: a shim serves one VM, give since');
    return this.feed.subscribe(client, { ...args, name: this.name });
  }

  /** The VM's history (`getEvents`). */
  history(args: SincePoint & { limit?: number | undefined }): EventHistory {
    return eventHistory(this.dir, this.name, args);
  }

  /** Settles once every journaled event is fsync'd (fsyncing now what waits for its batch). */
  async flushed(): Promise<void> {
    await this.writer?.sync();
  }

  close(): void {
    this.writer?.close();
  }
}

function deviceIds(vm: VmSnapshot): Set<string> {
  return new Set([...vm.def.disks.map((d) => d.target), ...vm.def.interfaces.flatMap((i) => ('mac' in i && typeof i.mac === 'string' && i.mac !== '' ? [i.mac] : []))]);
}
