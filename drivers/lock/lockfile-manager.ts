// The lockfile lock manager: a lease is a flock on the resource's lock file, held by a small
// holder process that exits when QEMU does. QEMU inherits only a lifeline (an exclusively locked
// private file); holders wait for it, so the kernel, not the shim, ties leases to QEMU's life.
import { closeSync, constants, mkdirSync, openSync, readlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { isAlive, spawnHolder, stopHolder, tryLock, type ProcessId } from './flock.js';
import { canonicalPath, resourceKey, type HolderRecord, type Lockspace } from './lockspace.js';
import type { LeaseHolder, LeaseMode, LeaseOwner, LeaseRequest, LockManager, StartLeases } from './types.js';
import { tempSuffix } from '../../protocol/node-crypto.js';

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

  async resourceKey(path: string): Promise<string> {
    return resourceKey(await canonicalPath(path));
  }

  async acquireForStart(owner: LeaseOwner, requests: readonly LeaseRequest[]): Promise<StartLeases> {
    const plan = await this.plan(requests);
    const locked = await this.lockAll(plan);
    let lifeline: { path: string; fd: number } | undefined;
    try {
      lifeline = await this.newLifeline(owner);
      for (const l of locked) await this.hold(owner, l, lifeline.path, undefined);
    } catch (err) {
      for (const l of locked) closeLocked(l);
      if (lifeline !== undefined) {
        closeQuietly(lifeline.fd);
        unlinkQuietly(lifeline.path);
      }
      await this.releaseKeys(owner, plan.map((p) => p.key));
      throw err;
    }
    // Every holder has its own description of the lifeline now; the name is no longer needed.
    unlinkQuietly(lifeline.path);
    const fd = lifeline.fd;
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
    const [planned] = await this.plan([request]) as [Planned];
    const [l] = await this.lockAll([planned]) as [Locked];
    await this.hold(owner, l, lifeline, qemuPid);
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

  /** A fresh, exclusively locked lifeline file; QEMU inherits its fd. */
  private async newLifeline(owner: LeaseOwner): Promise<{ path: string; fd: number }> {
    mkdirSync(this.o.lifelineDir, { recursive: true, mode: 0o700 });
    const path = join(this.o.lifelineDir, `${owner.uuid}.${tempSuffix()}.lifeline`);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    if (await tryLock(this.o.flock, fd, 'exclusive') !== 'locked') {
      closeQuietly(fd);
      throw new VirtqError('OPERATION_FAILED', `cannot lock the new lifeline ${path}`);
    }
    return { path, fd };
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
    const record: HolderRecord = {
      format: 1, resource: l.resource, mode: l.mode, host: this.o.host, vm: owner.vm, uuid: owner.uuid, shimPid: owner.shimPid,
      ...(qemuPid === undefined ? {} : { qemuPid }), holderPid: holder.pid, holderStart: holder.start, since: this.o.clock.now(),
    };
    try {
      await this.serialise(() => this.o.space.writeRecord(l.key, record));
    } catch (err) {
      await stopHolder(holder, this.o.clock);
      throw err;
    }
  }

  /** Stops `owner`'s holders on `keys` (their QEMU is gone or the disk detached) and drops the records. */
  private async releaseKeys(owner: LeaseOwner, keys: readonly string[], qemuPid?: number): Promise<void> {
    await this.writes;
    await Promise.all([...new Set(keys)].map(async (key) => {
      const rec = await this.o.space.readRecord(key, owner.uuid);
      if (rec === undefined) return;
      // The same VM's other QEMU (a migration's destination) holds it now: not ours to give back.
      if (qemuPid !== undefined && rec.qemuPid !== undefined && rec.qemuPid !== qemuPid) return;
      if (rec.host === this.o.host) {
        const gone = await stopHolder({ pid: rec.holderPid, start: rec.holderStart }, this.o.clock);
        if (!gone) throw new VirtqError('OPERATION_FAILED', `lease holder ${rec.holderPid} for ${rec.resource} did not exit`);
      }
      await this.o.space.removeRecord(key, owner.uuid);
    }));
  }

  /**
   * Drops records the lock just won proves stale: with an exclusive lock every other record, with
   * a shared one every exclusive record and local ones whose holder is gone (a VM whose shim died
   * before its QEMU leaves its record behind).
   */
  private async sweep(p: Planned): Promise<void> {
    for (const r of await this.o.space.records(p.key)) {
      const stale = p.mode === 'exclusive' || r.mode === 'exclusive' || (r.host === this.o.host && !isAlive({ pid: r.holderPid, start: r.holderStart }));
      if (stale) await this.o.space.removeRecord(p.key, r.uuid);
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
