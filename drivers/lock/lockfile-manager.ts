// The lockfile lock manager: a lease is a flock on the resource's lock file, held by a small
// holder process that exits when QEMU does. QEMU inherits only a lifeline (an exclusively locked
// private file); holders wait for it, so the kernel, not the shim, ties leases to QEMU's life.
import { closeSync, constants, mkdirSync, openSync, readlinkSync, unlinkSync } from 'node:fs';
import type { Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { armHolder, isAlive, spawnHolder, stopHolder, tryLock, type ArmedHolder, type ProcessId } from './flock.js';
import { canonicalPath, canonicalPathSync, resourceKey, type HolderRecord, type Lockspace } from './lockspace.js';
import { lifelineFile } from './spare-lifeline.js';
import type { ArmedLeases, LeaseHolder, LeaseMode, LeaseOwner, LeaseRequest, LockManager, SpareLifeline, StartLeases } from './types.js';

/** The fd QEMU inherits the lifeline as (the first of StartLeases.inheritFds). */
const QEMU_LIFELINE_FD = 3;
const LIFELINE_SUFFIX = /\.lifeline( \(deleted\))?$/;

/** What the manager is built from. */
export interface LockfileManagerOptions {
  space: Lockspace;
  /** Host-local directory for lifeline files (under the runtime dir). */
  lifelineDir: string;
  host: string;
  clock: Clock;
  flock: string;
  /** A lifeline locked ahead (a warm pool shim's), used by the first start instead of a new one. */
  spare?: SpareLifeline | undefined;
}

/** One resource to lease, canonicalised. */
interface Planned {
  key: string;
  resource: string;
  mode: LeaseMode;
}

/** A resource whose lock this process holds on `fd`, not yet handed to a holder. */
interface Locked extends Planned {
  fd: number;
}

/** The lockfile manager. */
export class LockfileManager implements LockManager {
  // Record writes are serialised so a release never races the write it should undo.
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly o: LockfileManagerOptions) {}

  // Synchronous inside: a migration's release and the lease events of its claim ask for it in the
  // source's pause, where an awaited realpath is a thread-pool round trip (Lockspace.writeRecordSync).
  async resourceKey(path: string): Promise<string> {
    return resourceKey(canonicalPathSync(path));
  }

  async acquireForStart(owner: LeaseOwner, requests: readonly LeaseRequest[]): Promise<StartLeases> {
    const plan = await this.plan(requests);
    const locked = await this.lockAll(plan);
    let fd: number | undefined;
    try {
      fd = await this.newLifeline(owner);
      // The lifeline has no name left (unlinked when made): each holder opens a description of
      // its own through this process's fd, as a hot-plug does through QEMU's.
      for (const l of locked) await this.hold(owner, l, `/proc/self/fd/${fd}`, undefined);
    } catch (err) {
      for (const l of locked) closeLocked(l);
      if (fd !== undefined) closeQuietly(fd);
      await this.releaseKeys(owner, plan.map((p) => p.key));
      throw err;
    }
    let open = true;
    const drop = (): void => { if (open) closeQuietly(fd); open = false; };
    return {
      inheritFds: [fd],
      spawned: async (qemuPid) => {
        drop();
        // The pid only makes conflict messages better: a failed write must not fail the start.
        await this.serialise(async () => {
          for (const p of plan) {
            const rec = await this.o.space.readRecord(p.key, owner.uuid);
            if (rec !== undefined) await this.o.space.writeRecord(p.key, { ...rec, qemuPid });
          }
        }).catch(() => undefined);
      },
      abort: async () => {
        drop();
        await this.releaseKeys(owner, plan.map((p) => p.key));
      },
    };
  }

  async acquireForRunning(owner: LeaseOwner, qemuPid: number, request: LeaseRequest): Promise<void> {
    const lifeline = runningLifeline(qemuPid);
    const [planned] = await this.plan([request]) as [Planned];
    const [l] = await this.lockAll([planned]) as [Locked];
    await this.hold(owner, l, lifeline, qemuPid);
  }

  /**
   * One armed holder per resource (flock.ts `armHolder`), spawned now, during the transfer; at
   * switchover each is told to lock and becomes the lease's holder, so the guest's pause pays a
   * pipe write and a small shell's fork of flock(1) instead of two spawns from this process. The
   * lock itself is tried at the same moment as before (`acquire`), so nothing is leased earlier.
   */
  async armForRunning(owner: LeaseOwner, qemuPid: number, requests: readonly LeaseRequest[]): Promise<ArmedLeases> {
    const lifeline = runningLifeline(qemuPid);
    const plan = await this.plan(requests);
    mkdirSync(this.o.space.dir, { recursive: true, mode: 0o755 });
    const armed: Array<{ p: Planned; holder: ArmedHolder }> = [];
    try {
      for (const p of plan) {
        const leaseFd = openSync(this.o.space.lockFile(p.key), constants.O_RDWR | constants.O_CREAT, 0o644);
        try {
          const lifeFd = openSync(lifeline, constants.O_RDONLY);
          try {
            armed.push({ p, holder: armHolder(this.o.flock, leaseFd, lifeFd, p.mode) });
          } finally {
            closeQuietly(lifeFd);
          }
        } finally {
          closeQuietly(leaseFd);
        }
      }
    } catch (err) {
      for (const a of armed) a.holder.disarm();
      throw VirtqError.from(err);
    }
    let used = false;
    return {
      acquire: async () => {
        if (used) throw new VirtqError('OPERATION_INVALID', 'these armed leases were used already');
        used = true;
        const taken: string[] = [];
        const locked: ProcessId[] = [];
        try {
          for (const { p, holder } of armed) {
            const r = await holder.go();
            if (r === 'conflict') throw await this.conflict(p);
            if (r === 'locked') {
              taken.push(p.resource);
              locked.push(holder.id);
              // In the source's pause: the lockspace's files read and written synchronously (Lockspace.writeRecordSync says why).
              await this.sweep(p, true);
              await this.record(owner, p, holder.id, qemuPid, true);
              continue;
            }
            // The armed holder died before it locked (killed by hand?): the usual path.
            await this.acquireForRunning(owner, qemuPid, { path: p.resource, mode: p.mode });
            taken.push(p.resource);
          }
        } catch (err) {
          for (const a of armed) a.holder.disarm();
          await this.releaseAll(owner, taken, qemuPid).catch(() => undefined);
          // A holder that locked before a sweep or record failed has no record: stopped by its pid.
          for (const id of locked) await stopHolder(id, this.o.clock);
          throw err;
        }
      },
      disarm: () => { for (const a of armed) a.holder.disarm(); },
    };
  }

  async release(owner: LeaseOwner, path: string): Promise<void> {
    await this.releaseKeys(owner, [await this.resourceKey(path)]);
  }

  async releaseAll(owner: LeaseOwner, paths: readonly string[], qemuPid?: number): Promise<void> {
    const keys = await Promise.all(paths.map((p) => this.resourceKey(p)));
    await this.releaseKeys(owner, keys, qemuPid);
  }

  async holdExclusive<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const [planned] = await this.plan([{ path, mode: 'exclusive' }]) as [Planned];
    const [l] = await this.lockAll([planned]) as [Locked];
    try {
      return await fn();
    } finally {
      closeLocked(l);
    }
  }

  // --- internals -----------------------------------------------------------------------

  /** Canonicalises, merges requests for one resource (exclusive wins) and sorts by key. */
  private async plan(requests: readonly LeaseRequest[]): Promise<Planned[]> {
    const byKey = new Map<string, Planned>();
    for (const r of requests) {
      const resource = await canonicalPath(r.path);
      const key = resourceKey(resource);
      const seen = byKey.get(key);
      byKey.set(key, { key, resource, mode: seen?.mode === 'exclusive' ? 'exclusive' : r.mode });
    }
    return [...byKey.values()].sort((a, b) => a.key.localeCompare(b.key));
  }

  /** Locks every planned resource on fds of its own, or none (throws LOCK_CONFLICT). */
  private async lockAll(plan: readonly Planned[]): Promise<Locked[]> {
    const locked: Locked[] = [];
    try {
      mkdirSync(this.o.space.dir, { recursive: true, mode: 0o755 });
      for (const p of plan) {
        const file = this.o.space.lockFile(p.key);
        // Read-write: over NFS an exclusive flock is a write lock and needs a writable fd.
        const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o644);
        locked.push({ ...p, fd });
        if (await tryLock(this.o.flock, fd, p.mode) === 'conflict') throw await this.conflict(p);
        await this.sweep(p);
      }
      return locked;
    } catch (err) {
      for (const l of locked) closeLocked(l);
      if (err instanceof VirtqError) throw err;
      throw new VirtqError('OPERATION_FAILED', `cannot lock in lockspace ${this.o.space.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * A fresh, exclusively locked lifeline (QEMU inherits its fd): the spare a warm pool shim locked
   * while it waited (spare-lifeline.ts), else one made now the same way: created and unlinked at
   * once, so no lifeline file is ever left behind, then locked.
   */
  private async newLifeline(owner: LeaseOwner): Promise<number> {
    const spare = this.o.spare?.take();
    if (spare !== undefined) return spare;
    mkdirSync(this.o.lifelineDir, { recursive: true, mode: 0o700 });
    const path = lifelineFile(this.o.lifelineDir, owner.shimPid);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    unlinkQuietly(path);
    try {
      if (await tryLock(this.o.flock, fd, 'exclusive') === 'locked') return fd;
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    closeQuietly(fd);
    throw new VirtqError('OPERATION_FAILED', `cannot lock the new lifeline ${path}`);
  }

  /** Hands `l` to a holder bound to the lifeline at `lifelinePath`, and records the lease. */
  private async hold(owner: LeaseOwner, l: Locked, lifelinePath: string, qemuPid: number | undefined): Promise<void> {
    let holder: ProcessId;
    try {
      const lifeFd = openSync(lifelinePath, constants.O_RDONLY);
      try {
        holder = spawnHolder(this.o.flock, l.fd, lifeFd);
      } finally {
        closeQuietly(lifeFd);
      }
    } finally {
      closeLocked(l);
    }
    await this.record(owner, l, holder, qemuPid);
  }

  /** Records `holder`'s lease on `p`; a record that cannot be written stops the holder (no lease without one). */
  private async record(owner: LeaseOwner, p: Planned, holder: ProcessId, qemuPid: number | undefined, now = false): Promise<void> {
    const record: HolderRecord = {
      format: 1, resource: p.resource, mode: p.mode, host: this.o.host, vm: owner.vm, uuid: owner.uuid, shimPid: owner.shimPid,
      ...(qemuPid === undefined ? {} : { qemuPid }), holderPid: holder.pid, holderStart: holder.start, since: this.o.clock.now(),
    };
    try {
      // `now`: written synchronously, still after any write in flight (a microtask when none is).
      await this.serialise(now ? async () => this.o.space.writeRecordSync(p.key, record) : () => this.o.space.writeRecord(p.key, record));
    } catch (err) {
      await stopHolder(holder, this.o.clock);
      throw err;
    }
  }

  /** Stops `owner`'s holders on `keys` (their QEMU is gone or the disk detached) and drops the records. */
  private async releaseKeys(owner: LeaseOwner, keys: readonly string[], qemuPid?: number): Promise<void> {
    await this.writes;
    // The records are read and removed synchronously (Lockspace.writeRecordSync says why): a
    // migration's source releases here in its guest's pause, and every other release is a VM's stop.
    await Promise.all([...new Set(keys)].map(async (key) => {
      const rec = this.o.space.readRecordSync(key, owner.uuid);
      if (rec === undefined) return;
      // The same VM's other QEMU (a migration's destination) holds it now: not ours to give back.
      if (qemuPid !== undefined && rec.qemuPid !== undefined && rec.qemuPid !== qemuPid) return;
      if (rec.host === this.o.host) {
        const gone = await stopHolder({ pid: rec.holderPid, start: rec.holderStart }, this.o.clock);
        if (!gone) throw new VirtqError('OPERATION_FAILED', `lease holder ${rec.holderPid} for ${rec.resource} did not exit`);
      }
      this.o.space.removeRecordSync(key, owner.uuid);
    }));
  }

  /**
   * Drops records the lock just won proves stale: with an exclusive lock every other record, with
   * a shared one every exclusive record and local ones whose holder is gone (a VM whose shim died
   * before its QEMU leaves its record behind).
   */
  private async sweep(p: Planned, now = false): Promise<void> {
    const space = this.o.space;
    for (const r of now ? space.recordsSync(p.key) : await space.records(p.key)) {
      const stale = p.mode === 'exclusive' || r.mode === 'exclusive' || (r.host === this.o.host && !isAlive({ pid: r.holderPid, start: r.holderStart }));
      if (!stale) continue;
      if (now) space.removeRecordSync(p.key, r.uuid);
      else await space.removeRecord(p.key, r.uuid);
    }
  }

  /** The LOCK_CONFLICT for `p`, naming the live holders from the records. */
  private async conflict(p: Planned): Promise<VirtqError> {
    const holders: LeaseHolder[] = [];
    for (const r of await this.o.space.records(p.key)) {
      if (r.host === this.o.host && !isAlive({ pid: r.holderPid, start: r.holderStart })) {
        await this.o.space.removeRecord(p.key, r.uuid); // a stale record of a holder that is gone
        continue;
      }
      holders.push({ vm: r.vm, uuid: r.uuid, host: r.host, mode: r.mode, ...(r.qemuPid === undefined ? {} : { qemuPid: r.qemuPid }) });
    }
    const who = holders.length === 0
      ? `a holder that left no record (lock file ${this.o.space.lockFile(p.key)})`
      : holders.map(describeHolder).join('; ');
    return new VirtqError('LOCK_CONFLICT', `cannot lease disk ${p.resource} (${p.mode}): it is in use by ${who}`, {
      details: { resource: p.resource, mode: p.mode, lockFile: this.o.space.lockFile(p.key), holders },
    });
  }

  private serialise(fn: () => Promise<void>): Promise<void> {
    const run = this.writes.then(fn);
    this.writes = run.catch(() => undefined);
    return run;
  }
}

/** QEMU's lifeline as a holder opens it; LOCK_MANAGER_UNAVAILABLE when QEMU has none. */
function runningLifeline(qemuPid: number): string {
  const lifeline = `/proc/${qemuPid}/fd/${QEMU_LIFELINE_FD}`;
  let target = '';
  try {
    target = readlinkSync(lifeline);
  } catch {
    // handled below
  }
  if (!LIFELINE_SUFFIX.test(target)) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `QEMU pid ${qemuPid} holds no lease lifeline (it was started without the lockfile plugin?); restart the VM to hot-plug disks with leases`);
  }
  return lifeline;
}

function describeHolder(h: LeaseHolder): string {
  const qemu = h.qemuPid === undefined ? 'QEMU starting' : `QEMU pid ${h.qemuPid}`;
  return `VM "${h.vm}" (uuid ${h.uuid}, ${qemu} on host ${h.host}, ${h.mode} lease)`;
}

// An fd number is closed exactly once: a second close could hit a file opened since.
function closeLocked(l: Locked): void {
  if (l.fd < 0) return;
  closeQuietly(l.fd);
  l.fd = -1;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
