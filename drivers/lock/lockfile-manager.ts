// The lockfile lock manager: a lease is a flock on the resource's lock file, held by a small
// holder process that exits when QEMU does. QEMU inherits only a lifeline (an exclusively locked
// private file); holders wait for it, so the kernel, not the shim, ties leases to QEMU's life.
import { closeSync, constants, mkdirSync, openSync, unlinkSync } from 'node:fs';
import type { Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { armFlockHolder, isAlive, spawnHolder, stopHolder, tryLock, type PreparedHolder, type ProcessId } from './flock.js';
import { startHolder } from './perl-holder.js';
import { canonicalPath, canonicalPathSync, resourceKey, type HolderRecord, type Lockspace } from './lockspace.js';
import { KeptHolder, lifelineFile, runningLifeline, takeSpareHolder } from './spare-lifeline.js';
import type { ArmedLeases, LeaseHolder, LeaseMode, LeaseOwner, LeaseRequest, LockManager, SpareLifeline, StartLeases } from './types.js';

/** What the manager is built from. */
export interface LockfileManagerOptions {
  space: Lockspace;
  /** Host-local directory for lifeline files (under the runtime dir). */
  lifelineDir: string;
  host: string;
  clock: Clock;
  flock: string;
  /**
   * perl, for holders that lock in-process (perl-holder.ts): none spawns flock(1) for a lease.
   * Undefined: flock(1) takes each lock and becomes its holder (flock.ts).
   */
  perl?: string | undefined;
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
  private spareFd: number | undefined;
  private readonly kept = new KeptHolder();

  constructor(private readonly o: LockfileManagerOptions) {}

  // Synchronous inside: a migration's release and the lease events of its claim ask for it in the
  // source's pause, where an awaited realpath is a thread-pool round trip (Lockspace.writeRecordSync).
  async resourceKey(path: string): Promise<string> {
    return resourceKey(canonicalPathSync(path));
  }

  async acquireForStart(owner: LeaseOwner, requests: readonly LeaseRequest[], opts?: { armLater?: boolean }): Promise<StartLeases> {
    const plan = await this.plan(requests);
    const perl = this.o.perl;
    const locked = perl === undefined ? await this.lockAll(plan) : [];
    let fd: number | undefined;
    try {
      fd = await this.newLifeline(owner);
      // The lifeline has no name left (unlinked when made): each holder opens a description of
      // its own through this process's fd, as a hot-plug does through QEMU's.
      const lifeline = `/proc/self/fd/${fd}`;
      // A warm pool shim's spare lifeline comes with an idle holder bound to it: the first disk's, if this configuration's.
      const ready = fd === this.spareFd ? takeSpareHolder(this.o.spare, perl, this.o.flock) : undefined;
      // Nothing to lease now and the disks armed later (a migration's destination): kept for the arming, which then spawns nothing.
      if (ready !== undefined && plan.length === 0 && opts?.armLater === true) this.kept.keep(ready, fd);
      else if (perl !== undefined) await this.takeAll(owner, this.startHolders(plan, lifeline, ready), lifeline, undefined, false);
      else ready?.disarm();
      for (const l of locked) await this.hold(owner, l, lifeline, undefined);
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
        this.kept.drop();
        await this.releaseKeys(owner, plan.map((p) => p.key));
      },
    };
  }

  async acquireForRunning(owner: LeaseOwner, qemuPid: number, request: LeaseRequest): Promise<void> {
    const lifeline = runningLifeline(qemuPid);
    const [planned] = await this.plan([request]) as [Planned];
    if (this.o.perl !== undefined) {
      await this.takeAll(owner, this.startHolders([planned], lifeline), lifeline, qemuPid, false);
      return;
    }
    const [l] = await this.lockAll([planned]) as [Locked];
    await this.hold(owner, l, lifeline, qemuPid);
  }

  /**
   * One holder per resource (`startHolders`), started now, during the transfer; at switchover
   * each is told to lock and becomes the lease's holder, so the guest's pause pays a pipe write
   * and an flock(2) in the holder instead of process spawns. The lock itself is tried at the same
   * moment as before (`acquire`), so nothing is leased earlier.
   */
  async armForRunning(owner: LeaseOwner, qemuPid: number, requests: readonly LeaseRequest[]): Promise<ArmedLeases> {
    const lifeline = runningLifeline(qemuPid);
    const plan = await this.plan(requests);
    mkdirSync(this.o.space.dir, { recursive: true, mode: 0o755 });
    // The pause pays a pipe write and, with perl, an flock(2) per disk (else a small shell's flock(1) fork).
    const started = this.startHolders(plan, lifeline, this.kept.take(lifeline));
    let used = false;
    return {
      acquire: async () => {
        if (used) throw new VirtqError('OPERATION_INVALID', 'these armed leases were used already');
        used = true;
        // In the source's pause: the lockspace's files read and written synchronously (Lockspace.writeRecordSync says why).
        await this.takeAll(owner, started, lifeline, qemuPid, true);
      },
      disarm: () => { for (const s of started) s.h.disarm(); },
    };
  }

  async release(owner: LeaseOwner, path: string): Promise<void> {
    await this.releaseKeys(owner, [await this.resourceKey(path)]);
  }

  async releaseAll(owner: LeaseOwner, paths: readonly string[], qemuPid?: number): Promise<void> {
    this.kept.drop(); // QEMU exited before its disks were armed
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
    this.spareFd = spare;
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

  /**
   * One holder per planned resource, started now and holding nothing until told `go`, each with
   * its own description of the lifeline at `lifelinePath`: in-process with perl, else armed flock(1).
   */
  private startHolders(plan: readonly Planned[], lifelinePath: string, ready?: PreparedHolder): Array<{ p: Planned; h: PreparedHolder }> {
    mkdirSync(this.o.space.dir, { recursive: true, mode: 0o755 });
    const [first] = plan;
    if (first === undefined) ready?.disarm();
    const started: Array<{ p: Planned; h: PreparedHolder }> = first === undefined || ready === undefined ? [] : [{ p: first, h: ready }];
    try {
      for (const p of plan.slice(started.length)) {
        const lifeFd = openSync(lifelinePath, constants.O_RDONLY);
        try {
          const perl = this.o.perl;
          started.push({ p, h: perl !== undefined ? startHolder(perl, this.o.flock, lifeFd) : armFlockHolder(this.o.flock, this.o.space.lockFile(p.key), lifeFd, p.mode) });
        } finally {
          closeQuietly(lifeFd);
        }
      }
    } catch (err) {
      for (const s of started) s.h.disarm();
      throw VirtqError.from(err);
    }
    return started;
  }

  /**
   * Tells each started holder to lock, in plan order, and records its lease: all or nothing
   * (LOCK_CONFLICT naming the holder, nothing kept). A holder that died before it answered
   * (killed by hand?) is replaced by flock(1)'s way for its resource.
   */
  private async takeAll(owner: LeaseOwner, started: ReadonlyArray<{ p: Planned; h: PreparedHolder }>, lifelinePath: string, qemuPid: number | undefined, now: boolean): Promise<void> {
    const taken: string[] = [];
    try {
      for (const { p, h } of started) {
        const r = await h.go(p.mode, this.o.space.lockFile(p.key));
        if (r === 'conflict') throw await this.conflict(p);
        if (r === 'locked') {
          try {
            await this.sweep(p, now);
          } catch (err) {
            await this.stop(h.id); // locked, no record yet
            throw err;
          }
          await this.record(owner, p, h.id, qemuPid, now);
        } else {
          const [l] = await this.lockAll([p]) as [Locked];
          await this.hold(owner, l, lifelinePath, qemuPid);
        }
        taken.push(p.key);
      }
    } catch (err) {
      for (const s of started) s.h.disarm();
      await this.releaseKeys(owner, taken, qemuPid).catch(() => undefined);
      throw err;
    }
  }

  /** Stops the holder `id` (flock.ts): its lease is dropped once it is gone. */
  private stop(id: ProcessId): Promise<boolean> {
    return stopHolder(id, this.o.clock);
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
      await this.stop(holder);
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
        const gone = await this.stop({ pid: rec.holderPid, start: rec.holderStart });
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
