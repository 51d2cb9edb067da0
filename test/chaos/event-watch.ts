// The event journal's chaos invariant (issue #17): a subscriber of virtqemud's host-wide feed that
// resumes after every disconnect (virtqemud killed, its connection dropped) with the last sequence
// number it has of each VM. At the end, for every VM: the events it was told are in the VM's
// journal, identical, in order and once (sequence numbers 1, 2, 3... with no repeat and no gap),
// and once quiet it has been told every event the journal holds.
import { readJournal } from '../../drivers/journal/segments.js';
import { journalDir } from '../../drivers/journal/segments.js';
import type { LifecycleEvent, RpcClient } from '../../protocol/index.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The resuming subscriber. */
export class EventWatch {
  private readonly told = new Map<string, LifecycleEvent[]>();
  private client: RpcClient | undefined;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly connect: () => Promise<RpcClient>, private readonly log: (line: string) => void = () => undefined) {}

  start(): void {
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.client?.close();
    await this.done;
  }

  private last(): Record<string, number> {
    return Object.fromEntries([...this.told].map(([n, evs]) => [n, evs.at(-1)?.seq ?? 0]));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const c = await this.connect();
        this.client = c;
        // stop() may have come while this connect was pending: it closed the old client, not this
        // one, and a subscription on this one would never end (the chaos seed 7 hang of CI).
        if (this.stopped) {
          c.close();
          break;
        }
        const pushed = c.events();
        await c.call('virtq', 'subscribeEvents', { sinceByVm: this.last() });
        for await (const p of pushed) {
          const ev = p.body as LifecycleEvent;
          if (p.name !== 'lifecycle' || ev.seq === undefined) continue;
          const list = this.told.get(ev.name) ?? [];
          list.push(ev);
          this.told.set(ev.name, list);
        }
      } catch (err) {
        this.log(`event watch: ${(err as Error).message}; resubscribing`); // virtqemud down or restarting
      }
      if (!this.stopped) await sleep(200);
    }
  }

  /** How many events were told, of how many VMs (the trace says so: the invariant had something to check). */
  get count(): { events: number; vms: number } {
    return { events: [...this.told.values()].reduce((n, evs) => n + evs.length, 0), vms: this.told.size };
  }

  /** The invariant's violations; waits up to `ms` for the subscriber to catch up with the journals. */
  async check(stateDir: string, ms: number): Promise<string[]> {
    const until = Date.now() + ms;
    const behind = (): string[] => {
      const out: string[] = [];
      for (const [name, evs] of this.told) {
        const last = readJournal(journalDir(stateDir, name), { afterSeq: Number.MAX_SAFE_INTEGER }).lastSeq;
        if ((evs.at(-1)?.seq ?? 0) < last) out.push(`${name}: told up to ${evs.at(-1)?.seq ?? 0}, journal holds ${last}`);
      }
      return out;
    };
    while (behind().length > 0 && Date.now() < until) await sleep(100);
    const out = behind().map((b) => `event journal: a subscriber was not told every journaled event within ${ms} ms: ${b}`);
    for (const [name, evs] of this.told) {
      const read = readJournal(journalDir(stateDir, name));
      if (read.dropped > 0) out.push(`event journal of ${name}: ${read.dropped} torn or corrupt record(s)`);
      const bySeq = new Map(read.records.map((r) => [r.seq, r.body]));
      evs.forEach((ev, i) => {
        const want = i === 0 ? read.records[0]?.seq ?? 1 : (evs[i - 1]?.seq ?? 0) + 1;
        if (ev.seq !== want) out.push(`event journal of ${name}: told seq ${ev.seq} after ${evs[i - 1]?.seq ?? 'nothing'} (a repeat, a gap or out of order)`);
        const rec = bySeq.get(ev.seq ?? 0);
        if (rec === undefined) out.push(`event journal of ${name}: told event ${ev.seq} (${ev.event}) is not in the journal`);
        else if (rec['event'] !== ev.event || rec['reason'] !== ev.reason || rec['uuid'] !== ev.uuid) out.push(`event journal of ${name}: told event ${ev.seq} is ${ev.event}/${ev.reason}, the journal has ${String(rec['event'])}/${String(rec['reason'])}`);
      });
    }
    return out;
  }
}
