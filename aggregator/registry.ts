// The registry: every VM virtqemud knows, by name and by UUID, with its live state. Names and
// UUIDs are unique across persistent definitions and live shims; every check-and-claim runs in
// one synchronous step, so under Node's single thread it is atomic however many calls race.
import type { Static } from '@sinclair/typebox';
import {
  ACTIVE_STATES, VirtqError,
  type DomainRow, type DomainState, type ListFilter, type NormalizedDefinition, type ServerClient, type ShimVmInfo,
} from '../protocol/index.js';

/** The shim currently serving a VM. */
export interface ShimRef {
  pid: number;
  socket: string;
  roSocket: string;
  adminSocket: string;
  stateFile: string;
  /** The registration connection; undefined while a shim found at recovery has not re-registered. */
  conn: ServerClient | undefined;
  /** What the shim reported for answering getInfo here; undefined until it does. */
  info?: Static<typeof ShimVmInfo>;
  /** Updates received on this registration since its register (a start's ready line counts those sent). */
  reports?: number;
}

/** One VM as virtqemud knows it: read-only outside the registry, which changes it only through its named transitions. */
export type DomainRecord = Readonly<Omit<MutableRecord, 'shim'>> & { readonly shim: Readonly<ShimRef> | undefined };

/** What a shim reports of its VM when it registers or reports a change. */
export interface ShimReport {
  state: DomainState;
  reason: string;
  qemuPid: number | undefined;
}

interface MutableRecord {
  name: string;
  uuid: string;
  persistent: boolean;
  autostart: boolean;
  /** The stored definition of a persistent VM. */
  definition: NormalizedDefinition | undefined;
  state: DomainState;
  reason: string;
  qemuPid: number | undefined;
  shim: ShimRef | undefined;
  /** False when the shim is known but does not answer (the VM may still run). */
  shimUp: boolean;
  /** True while virtqemud is starting a shim for this VM. */
  starting: boolean;
}

/** Listing filters (all given ones must hold): the `listDomains` argument schema's type. */
export type { ListFilter } from '../protocol/index.js';

/** True when the VM has (or may have) a QEMU process. */
export function isActive(r: DomainRecord): boolean {
  return r.starting || ACTIVE_STATES.has(r.state);
}

/** The listing row of a record. */
export function toRow(r: DomainRecord): DomainRow {
  return {
    name: r.name, uuid: r.uuid, state: r.state, reason: r.reason, persistent: r.persistent, autostart: r.autostart,
    shimUp: r.shimUp,
    ...(r.shim === undefined ? {} : { shimSocket: r.shim.socket, shimPid: r.shim.pid }),
    ...(r.qemuPid === undefined ? {} : { qemuPid: r.qemuPid }),
  };
}

/** Records by name and UUID. */
export class DomainRegistry {
  private readonly byName = new Map<string, DomainRecord>();
  private readonly byUuid = new Map<string, DomainRecord>();
  /** Who waits for a record's shim to report, register, or go (aggregator/listed-wait.ts). */
  private readonly shimWatchers = new Map<DomainRecord, Set<() => void>>();

  /** `onRemove` hears of every record forgotten (an etcd fleet releases its claims then). */
  constructor(private readonly onRemove?: (r: DomainRecord) => void) {}

  get size(): number {
    return this.byName.size;
  }

  get(name: string): DomainRecord | undefined {
    return this.byName.get(name);
  }

  getByUuid(uuid: string): DomainRecord | undefined {
    return this.byUuid.get(uuid.toLowerCase());
  }

  /** The record named `name`, or NO_DOMAIN. */
  require(name: string): DomainRecord {
    const r = this.byName.get(name);
    if (r === undefined) throw new VirtqError('NO_DOMAIN', `no VM named "${name}"`);
    return r;
  }

  all(): IterableIterator<DomainRecord> {
    return this.byName.values();
  }

  /**
   * Claims `name` and `uuid` for a new record, or throws NAME_IN_USE / UUID_IN_USE naming the
   * holder. Synchronous: nothing can interleave between the check and the claim.
   */
  claim(init: Omit<DomainRecord, 'shimUp' | 'starting' | 'qemuPid' | 'shim'> & Partial<DomainRecord>): DomainRecord {
    this.checkFree(init.name, init.uuid);
    const record: MutableRecord = { shimUp: false, starting: false, qemuPid: undefined, shim: undefined, ...init, uuid: init.uuid.toLowerCase() };
    this.byName.set(record.name, record);
    this.byUuid.set(record.uuid, record);
    return record;
  }

  /** Throws unless both the name and the UUID are free. */
  checkFree(name: string, uuid: string): void {
    const holder = this.byName.get(name);
    if (holder !== undefined) {
      throw new VirtqError('NAME_IN_USE', `VM name "${name}" is already taken by ${describe(holder)}`, { details: { uuid: holder.uuid } });
    }
    const other = this.byUuid.get(uuid.toLowerCase());
    if (other !== undefined) {
      throw new VirtqError('UUID_IN_USE', `UUID ${uuid} is already used by VM "${other.name}"`, { details: { name: other.name } });
    }
  }

  // The named transitions: the only places a record changes.

  /** virtqemud begins starting a shim for the VM. */
  startBegun(r: DomainRecord): void {
    Object.assign(own(r), { starting: true, state: 'starting', reason: 'booting' });
  }

  /** The start virtqemud began is over, however it went. */
  startEnded(r: DomainRecord): void {
    own(r).starting = false;
  }

  /** The start failed and left no QEMU running. */
  startFailed(r: DomainRecord): void {
    Object.assign(own(r), { state: 'shutoff', reason: 'failed', qemuPid: undefined });
  }

  /** A QEMU of the VM was found by its process (the shim has not reported it, or cannot). */
  qemuFound(r: DomainRecord, pid: number): void {
    own(r).qemuPid = pid;
  }

  /** A shim registered (or re-registered) as the VM's shim, reporting its state. */
  shimRegistered(r: DomainRecord, shim: ShimRef, report: ShimReport): void {
    Object.assign(own(r), { shim: { ...shim, reports: 0 }, shimUp: true, state: report.state, reason: report.reason, qemuPid: report.qemuPid });
    this.shimChanged(r);
  }

  /** A shim found at recovery, live or not, whose VM still runs as its state file says. */
  shimAdopted(r: DomainRecord, shim: ShimRef, report: ShimReport, shimLive: boolean): void {
    Object.assign(own(r), { shim: { ...shim }, shimUp: shimLive, state: report.state, reason: report.reason, qemuPid: report.qemuPid });
  }

  /** The serving shim reported a change. */
  shimReported(r: DomainRecord, report: ShimReport, info?: ShimRef['info']): void {
    Object.assign(own(r), { state: report.state, reason: report.reason, qemuPid: report.qemuPid });
    const shim = own(r).shim;
    if (info !== undefined && shim !== undefined) shim.info = info;
    if (shim !== undefined) shim.reports = (shim.reports ?? 0) + 1;
    this.shimChanged(r);
  }

  /** The shim's registration went while the VM runs: it is listed with its shim lost. */
  shimLost(r: DomainRecord): void {
    const m = own(r);
    m.shimUp = false;
    if (m.shim !== undefined) m.shim.conn = undefined;
    this.shimChanged(r);
  }

  /** Whether a shim found at recovery that has not re-registered still answers. */
  shimReachable(r: DomainRecord, up: boolean): void {
    own(r).shimUp = up;
  }

  /** The shim is gone for good (it let go, or its VM ended). */
  shimGone(r: DomainRecord): void {
    Object.assign(own(r), { shim: undefined, shimUp: false });
    this.shimChanged(r);
  }

  /** The VM was found stopped (by reconciliation or at recovery) with this state and reason. */
  stopped(r: DomainRecord, state: DomainState, reason: string): void {
    Object.assign(own(r), { state, reason });
  }

  /** After a stop was found and told: no QEMU, no shim. */
  released(r: DomainRecord): void {
    Object.assign(own(r), { qemuPid: undefined, shim: undefined, shimUp: false });
    this.shimChanged(r);
  }

  /** The VM got (or replaced) its persistent definition. */
  defined(r: DomainRecord, definition: NormalizedDefinition): void {
    Object.assign(own(r), { persistent: true, definition });
  }

  /** A define whose write failed: the VM's definition as it was before. */
  definitionRestored(r: DomainRecord, before: Pick<DomainRecord, 'persistent' | 'definition'>): void {
    Object.assign(own(r), { persistent: before.persistent, definition: before.definition });
  }

  /** The VM lost its persistent definition (it lives on as a transient VM while it runs). */
  undefined(r: DomainRecord): void {
    Object.assign(own(r), { persistent: false, autostart: false, definition: undefined });
  }

  /** The autostart flag of a persistent VM. */
  autostartSet(r: DomainRecord, autostart: boolean): void {
    own(r).autostart = autostart;
  }

  /** Forgets a record. */
  remove(record: DomainRecord): void {
    const known = this.byName.get(record.name) === record;
    if (known) this.byName.delete(record.name);
    if (this.byUuid.get(record.uuid) === record) this.byUuid.delete(record.uuid);
    if (known) this.onRemove?.(record);
    this.shimChanged(record);
  }

  /** Calls `fn` after each change of `r`'s shim (a report, a registration, its loss) until the returned stop is called. */
  watchShim(r: DomainRecord, fn: () => void): () => void {
    let set = this.shimWatchers.get(r);
    if (set === undefined) this.shimWatchers.set(r, set = new Set());
    const watchers = set;
    watchers.add(fn);
    return () => {
      watchers.delete(fn);
      if (watchers.size === 0 && this.shimWatchers.get(r) === watchers) this.shimWatchers.delete(r);
    };
  }

  private shimChanged(r: DomainRecord): void {
    const watchers = this.shimWatchers.get(r);
    if (watchers !== undefined) for (const fn of [...watchers]) fn();
  }

  /** Rows matching `filter`, sorted active first then by name, as `virsh list --all` does. */
  list(filter: ListFilter): DomainRow[] {
    const rows: DomainRow[] = [];
    for (const r of this.byName.values()) if (matches(r, filter)) rows.push(toRow(r));
    return rows.sort((a, b) => Number(ACTIVE_STATES.has(b.state)) - Number(ACTIVE_STATES.has(a.state)) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

// Records are created here and only handed out read-only; the transitions above change them.
function own(r: DomainRecord): MutableRecord {
  return r as MutableRecord;
}

function matches(r: DomainRecord, f: ListFilter): boolean {
  const active = isActive(r);
  if (f.active === true && f.inactive !== true && !active) return false;
  if (f.inactive === true && f.active !== true && active) return false;
  if (f.persistent === true && f.transient !== true && !r.persistent) return false;
  if (f.transient === true && f.persistent !== true && r.persistent) return false;
  if (f.state !== undefined && r.state !== f.state) return false;
  return true;
}

function describe(r: DomainRecord): string {
  if (isActive(r)) return `a running VM (uuid ${r.uuid})`;
  return r.persistent ? `a defined VM (uuid ${r.uuid})` : `a stopped transient VM (uuid ${r.uuid}; undefine it to free the name)`;
}
