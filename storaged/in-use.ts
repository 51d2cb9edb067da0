// Whether a running VM uses a volume, asked of the lock manager the shims lease disks from (the
// same etc/lock.json, the same lockspace): a volume is deleted or shrunk only while holding its
// lease exclusively, so no VM can start on it meanwhile, and a pool is stopped only when none of
// its volumes is leased. Fail closed: without a usable lock manager those changes are refused.
import { VirtqError, type Logger } from '../protocol/index.js';
import type { LoadedLock } from '../drivers/lock/loader.js';

/** The lease check of one virtstoraged. */
export class InUseGuard {
  /** Paths this daemon holds now, with what for: its own lease is no VM's. */
  private readonly held = new Map<string, string>();

  constructor(private readonly lock: LoadedLock, private readonly log: Logger) {}

  /**
   * Runs `fn` while no VM may use `path`; LOCK_CONFLICT naming the VM when one does, IN_USE
   * naming the other operation when this daemon already holds it for one.
   */
  async exclusive<T>(path: string, what: string, fn: () => Promise<T>): Promise<T> {
    const manager = this.lock.manager;
    if (manager?.holdExclusive === undefined) {
      throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot ${what}: lock manager "${this.lock.status.plugin}" ${this.lock.status.ok ? 'cannot hold a disk for virtstoraged' : `is unavailable: ${this.lock.status.error ?? 'not loaded'}`}; virtstoraged will not change a volume a VM might be using`);
    }
    const other = this.held.get(path);
    if (other !== undefined) throw new VirtqError('IN_USE', `cannot ${what}: another operation is under way on it (${other}); try again when it ends`, { details: { operation: other } });
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

  /** The VMs using any of `paths` (empty when none). */
  async users(paths: readonly string[]): Promise<string[]> {
    const vms = new Set<string>();
    for (const path of paths) {
      try {
        await this.exclusive(path, 'check a volume', async () => undefined);
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
