// Whether a running VM uses a volume, asked of the lock manager the shims lease disks from (the
// same etc/lock.json, the same lockspace): a volume is deleted or shrunk only while holding its
// lease exclusively, so no VM can start on it meanwhile, and a pool is stopped only when none of
// its volumes is leased. Fail closed: without a usable lock manager those changes are refused.
import { VirtqError, type Logger } from '../protocol/index.js';
import type { LoadedLock } from '../drivers/lock/loader.js';
import type { ProcLocksProbe } from '../drivers/lock/proc-locks.js';

/** Thrown by a removal's confirm() when a lease appeared meanwhile: the file is put back, the lock manager asked. */
class LeaseAppeared extends Error {}

/**
 * Called by a removal after it moved the volume aside, before it frees it: throws when a lease
 * may have been taken meanwhile (the remover then puts the file back under its name).
 */
export type ConfirmFree = () => Promise<void>;

/** The lease check of one virtstoraged. Paths are volumes' resolved paths, as the pool gives them. */
export class InUseGuard {
  /** Paths this daemon holds now, and for what: its own operations are not "a VM" holding them. */
  private readonly held = new Map<string, string>();

  /**
   * `probe` (drivers/lock/proc-locks.ts) answers "nobody leases it" without a flock(1) process;
   * without it every check takes the lease through the lock manager.
   */
  constructor(private readonly lock: LoadedLock, private readonly log: Logger, private readonly probe?: ProcLocksProbe) {}

  /** IN_USE when this daemon is changing `path` already. */
  private refuseBusy(path: string, what: string): void {
    const busy = this.held.get(path);
    if (busy !== undefined) {
      throw new VirtqError('IN_USE', `cannot ${what}: virtstoraged is still working on it (${busy}); wait for that to finish or cancel it`, { details: { path, operation: busy } });
    }
  }

  /** True when the probe says no lease can be held on `path` now (false: ask the lock manager). */
  private async surelyFree(path: string): Promise<boolean> {
    // Every path given to the guard is a pool's resolved path (DirPool.path(), a listing's
    // `path`): already canonical, so the probe does not take its realpath again.
    return this.probe !== undefined && this.lock.manager?.holdExclusive !== undefined && !(await this.probe.mayBeHeld(path, { canonical: true }));
  }

  /**
   * Throws as exclusive() would when a VM uses `path` now, holding nothing afterwards (an
   * up-front check). Without a process when the probe says nobody leases it.
   */
  async check(path: string, what: string): Promise<void> {
    this.refuseBusy(path, what);
    if (await this.surelyFree(path)) return;
    await this.exclusive(path, what, async () => undefined);
  }

  /**
   * Runs a removal of `path` (delete) while no VM may use it. With the probe, and nobody leasing
   * it, no lease is taken: `fn` moves the file away from its name, then calls `confirm`, which
   * reads the lock table again. A VM leasing the disk after that finds no file and fails to
   * start; a lease taken in between makes `confirm` throw, `fn` puts the file back, and the lock
   * manager is asked as without the probe (LOCK_CONFLICT naming the VM). So the removal is as
   * safe as under the lease, without its flock(1) process.
   */
  async removing<T>(path: string, what: string, fn: (confirm: ConfirmFree) => Promise<T>): Promise<T> {
    this.refuseBusy(path, what);
    const unconfirmed: ConfirmFree = async () => undefined;
    if (!(await this.surelyFree(path))) return this.exclusive(path, what, () => fn(unconfirmed));
    this.held.set(path, what);
    try {
      return await fn(async () => {
        if (await this.surelyFree(path)) return;
        throw new LeaseAppeared(`a lease on ${path} may have been taken`);
      });
    } catch (err) {
      // The pool maps what its removal throws to a typed error: the marker may be its cause.
      if (!(err instanceof LeaseAppeared) && !(err instanceof Error && err.cause instanceof LeaseAppeared)) throw err;
    } finally {
      this.held.delete(path);
    }
    return this.exclusive(path, what, () => fn(unconfirmed));
  }

  /**
   * Runs `fn` while no VM may use `path`; LOCK_CONFLICT naming the VM when one does, IN_USE naming
   * the operation when this daemon is already changing it (an upload under way, say).
   */
  async exclusive<T>(path: string, what: string, fn: () => Promise<T>): Promise<T> {
    this.refuseBusy(path, what);
    const manager = this.lock.manager;
    if (manager?.holdExclusive === undefined) {
      throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot ${what}: lock manager "${this.lock.status.plugin}" ${this.lock.status.ok ? 'cannot hold a disk for virtstoraged' : `is unavailable: ${this.lock.status.error ?? 'not loaded'}`}; virtstoraged will not change a volume a VM might be using`);
    }
    // Marked before the lease is asked for, so a second change of the path meanwhile is told what is under way.
    this.held.set(path, what);
    try {
      return await manager.holdExclusive(path, fn);
    } catch (err) {
      const e = VirtqError.from(err);
      if (e.code !== 'LOCK_CONFLICT') throw err;
      const holders = (e.details?.['holders'] ?? []) as Array<{ vm?: string }>;
      const vms = holders.map((h) => h.vm).filter((v): v is string => typeof v === 'string');
      this.log.info({ path, vms, msgId: 'VOLUME_IN_USE' }, `refused to ${what}`);
      throw new VirtqError('LOCK_CONFLICT', `cannot ${what}: ${vms.length === 0 ? 'a VM' : vms.map((v) => `VM "${v}"`).join(', ')} is using it (${e.message})`, { details: { ...e.details, vms }, cause: err });
    } finally {
      this.held.delete(path);
    }
  }

  /** The VMs using any of `paths` (empty when none); IN_USE when this daemon is changing one, for `what`. */
  async users(paths: readonly string[], what = 'check a volume'): Promise<string[]> {
    const vms = new Set<string>();
    for (const path of paths) {
      try {
        await this.check(path, what);
      } catch (err) {
        const e = VirtqError.from(err);
        if (e.code !== 'LOCK_CONFLICT') throw err;
        for (const vm of (e.details?.['vms'] ?? []) as string[]) vms.add(vm);
        if ((e.details?.['vms'] as string[] | undefined)?.length === 0) vms.add('a VM');
      }
    }
    return [...vms];
  }
}
