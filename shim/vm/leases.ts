// Disk leases of one VM: turns its disks into lease requests for the configured lock manager,
// takes them before QEMU starts or a disk is hot-plugged and gives them back once QEMU has
// exited or a disk is detached. With a lock manager that failed its checks, every acquire refuses.
import { VirtqError, type Logger, type ResolvedDefinition, type ResolvedDisk } from '../../protocol/index.js';
import type { LoadedLock } from '../../drivers/lock/loader.js';
import type { ArmedLeases, LeaseOwner, LeaseRequest, LeaseWatch, LockManager, LockStatus, StartLeases } from '../../drivers/lock/types.js';
import type { DiskHooks } from './vm-disks.js';
import { leaseRequest, tellLeases, type LeaseChange, type LeaseListener } from './lease-events.js';

export { leaseRequest } from './lease-events.js';

/** One lease request per resource of `def`, exclusive when any disk on it is writable. */
async function runningRequests(manager: LockManager, def: ResolvedDefinition): Promise<LeaseRequest[]> {
  const byKey = new Map<string, LeaseRequest>();
  for (const d of def.disks) {
    const key = await manager.resourceKey(d.path);
    const req = leaseRequest(d);
    const seen = byKey.get(key);
    byKey.set(key, { path: seen?.path ?? req.path, mode: seen?.mode === 'exclusive' ? 'exclusive' : req.mode });
  }
  return [...byKey.values()];
}

/** The VM as the hot-plug hooks see it. */
export interface LeasedVm {
  readonly def: ResolvedDefinition;
  readonly qemuPid: number | undefined;
}

/** One VM's leases. */
export class VmLeases {
  /** Told of every lease taken or given back (the shim journals them). */
  onChange: LeaseListener | undefined;
  /** Why fencing holds the VM paused (its disk leases may be lost); undefined when it does not. */
  fenced: string | undefined;
  /** Set by a migration's handover until a lease is taken again: every lease is then the destination's. */
  private handedOver = false;

  constructor(private readonly lock: LoadedLock, private readonly owner: LeaseOwner, private readonly log: Logger) {}

  /** The lock manager's status, for server info. */
  get status(): LockStatus {
    return this.lock.status;
  }

  /** A user's resume of a fenced VM would write without its leases: refused with CLUSTER_UNAVAILABLE. */
  refuseWhileFenced(vm: string): void {
    if (this.fenced !== undefined) throw new VirtqError('CLUSTER_UNAVAILABLE', `cannot resume VM "${vm}": ${this.fenced}`);
  }

  /** Subscribes to lease loss when the plugin can lose leases behind QEMU's back (fencing). */
  watch(watch: LeaseWatch): { dispose(): void } | undefined {
    return this.lock.manager?.watchLeases?.(this.owner, watch);
  }

  /**
   * Leases every disk of `def` for a QEMU about to be spawned; throws LOCK_CONFLICT naming the
   * holder. `armLater`: its disks are leased by `armForRunning` later (a migration's destination).
   */
  async acquireForStart(def: ResolvedDefinition, opts?: { armLater?: boolean }): Promise<StartLeases> {
    const taken = await this.manager().acquireForStart(this.owner, def.disks.map(leaseRequest), opts);
    await this.tell('lease-acquired', def.disks);
    return { inheritFds: taken.inheritFds, spawned: (pid) => taken.spawned(pid), abort: async () => { await taken.abort(); await this.tell('lease-released', def.disks); } };
  }

  /**
   * QEMU has exited (or hands its disks over in a migration): resolves once no disk of `def` is
   * leased to it any more. With `qemuPid`, leases another QEMU of this VM holds stay.
   */
  async releaseAll(def: ResolvedDefinition, qemuPid?: number): Promise<void> {
    // Without a usable manager this shim took no lease; its QEMU's holders exit with QEMU. After a
    // handover (a migrated source's QEMU exiting) none is left here: handOver gave them all up and
    // told so, and the manager would only find the destination's and leave them (issue 16: this
    // no-op's path lookups and second `lease-released` events sat between the exit and the reply).
    if (this.lock.manager === undefined || this.handedOver) return;
    await this.lock.manager.releaseAll(this.owner, def.disks.map((d) => d.path), qemuPid);
    this.fenced = undefined;
    await this.tell('lease-released', def.disks);
  }

  /**
   * A migration's switchover, the guest paused: gives this QEMU's leases up for the destination
   * to take (a plugin with `handOver` keeps its fleet-wide leases held and marked for it, so the
   * disk is never unleased). Nothing is given up when it throws.
   */
  async handOver(def: ResolvedDefinition): Promise<void> {
    const manager = this.lock.manager;
    if (manager === undefined) return;
    const paths = def.disks.map((d) => d.path);
    await (manager.handOver !== undefined ? manager.handOver(this.owner, paths) : manager.releaseAll(this.owner, paths));
    this.fenced = undefined;
    this.handedOver = true;
    await this.tell('lease-released', def.disks);
  }

  /**
   * Leases every disk of `def` for the running QEMU `qemuPid` (a migration's switchover: the
   * destination taking them, or the source taking them back). All or nothing: LOCK_CONFLICT
   * naming the holder, with nothing kept.
   */
  async acquireAllForRunning(def: ResolvedDefinition, qemuPid: number, armed?: ArmedLeases): Promise<void> {
    const manager = this.manager();
    if (armed !== undefined) {
      // Readied by armForRunning for the same disks: all or nothing by itself.
      await armed.acquire();
      await this.tell('lease-acquired', def.disks);
      return;
    }
    const taken: string[] = [];
    try {
      for (const req of await runningRequests(manager, def)) {
        await manager.acquireForRunning(this.owner, qemuPid, req);
        taken.push(req.path);
      }
    } catch (err) {
      await manager.releaseAll(this.owner, taken, qemuPid).catch((e: unknown) => this.log.error({ err: e, msgId: 'LEASE_RELEASE_FAILED' }, 'cannot give back disk leases'));
      throw err;
    }
    await this.tell('lease-acquired', def.disks);
  }

  /**
   * A migration's destination, during the transfer: readies the leases `acquireAllForRunning`
   * will take at switchover (when the plugin can), so the guest's pause is shorter. Undefined
   * when the plugin cannot; nothing is held until they are taken.
   */
  async armForRunning(def: ResolvedDefinition, qemuPid: number): Promise<ArmedLeases | undefined> {
    const manager = this.lock.manager;
    if (manager?.armForRunning === undefined) return undefined;
    return manager.armForRunning(this.owner, qemuPid, await runningRequests(manager, def));
  }

  /**
   * The image under a new overlay is read-only in the chain now: its lease becomes shared, as a
   * read-only disk's is (another VM may then use it read-only, as a base).
   */
  async downgrade(disk: ResolvedDisk, qemuPid: number): Promise<void> {
    const manager = this.manager();
    await manager.release(this.owner, disk.path);
    await this.tell('lease-released', [disk]);
    const ro = { ...disk, readonly: true };
    await manager.acquireForRunning(this.owner, qemuPid, leaseRequest(ro));
    await this.tell('lease-acquired', [ro]);
  }

  /**
   * Deleting an external snapshot merges the overlay into the image under it: that image is
   * written again and its lease becomes exclusive, before the overlay's is given back. A shared
   * lease cannot turn exclusive in place (flock), so it is released first: the image is read-only
   * in QEMU's chain meanwhile. When the exclusive lease cannot be had (LOCK_CONFLICT: another VM
   * reads the image), the shared one is taken back before the error is thrown.
   */
  async upgrade(disk: ResolvedDisk, qemuPid: number): Promise<void> {
    const manager = this.manager();
    const ro = { ...disk, readonly: true };
    await manager.release(this.owner, disk.path);
    await this.tell('lease-released', [ro]);
    const rw = { ...disk, readonly: false };
    try {
      await manager.acquireForRunning(this.owner, qemuPid, leaseRequest(rw));
    } catch (err) {
      await manager.acquireForRunning(this.owner, qemuPid, leaseRequest(ro)).then(() => this.tell('lease-acquired', [ro]), (e: unknown) => {
        this.log.error({ err: e, msgId: 'LEASE_REACQUIRE_FAILED', path: disk.path }, 'cannot take back the shared lease of an image under an overlay');
      });
      throw err;
    }
    await this.tell('lease-acquired', [rw]);
  }

  private tell(kind: LeaseChange['kind'], disks: readonly ResolvedDisk[]): Promise<void> {
    return tellLeases(this.onChange, this.lock.manager, this.lock.status.plugin, kind, disks);
  }

  /** The hooks around hot-plug: lease before attach, give back after detach or a failed attach. */
  diskHooks(vm: LeasedVm): DiskHooks {
    return {
      beforeAttach: async (disk) => {
        const manager = this.manager();
        const pid = vm.qemuPid;
        if (pid === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" has no QEMU process`);
        const same = await this.sameResource(manager, vm.def.disks, disk);
        if (same === undefined) {
          await manager.acquireForRunning(this.owner, pid, leaseRequest(disk));
          return this.tell('lease-acquired', [disk]);
        }
        // One QEMU holds one lease per resource: a second shared use rides on the first.
        if (leaseRequest(same).mode === 'shared' && leaseRequest(disk).mode === 'shared') return;
        throw new VirtqError('LOCK_CONFLICT', `disk ${disk.path} is already used by VM "${vm.def.name}" as ${same.target}`, {
          details: { resource: disk.path, holders: [{ vm: vm.def.name, uuid: vm.def.uuid, qemuPid: pid }] },
        });
      },
      afterDetach: (disk) => this.releaseUnlessUsed(vm, disk),
      attachFailed: (disk) => this.releaseUnlessUsed(vm, disk),
    };
  }

  // Every path that takes a lease comes here first: from then on releaseAll has work again.
  private manager(): LockManager {
    this.handedOver = false;
    const { manager, status } = this.lock;
    if (manager === undefined) {
      throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `lock manager "${status.plugin}" is unavailable: ${status.error ?? 'not loaded'}; no VM may start and no disk may be hot-plugged until it is fixed`);
    }
    return manager;
  }

  private async sameResource(manager: LockManager, disks: readonly ResolvedDisk[], disk: ResolvedDisk): Promise<ResolvedDisk | undefined> {
    const key = await manager.resourceKey(disk.path);
    for (const d of disks) if (await manager.resourceKey(d.path) === key) return d;
    return undefined;
  }

  // `disk` has left the definition (or never joined it); another disk may still use its resource.
  private async releaseUnlessUsed(vm: LeasedVm, disk: ResolvedDisk): Promise<void> {
    const manager = this.lock.manager;
    if (manager === undefined) {
      this.log.warn({ msgId: 'LEASE_NOT_RELEASED', path: disk.path }, 'lock manager unavailable: the lease is given back only when QEMU exits');
      return;
    }
    try {
      if (await this.sameResource(manager, vm.def.disks, disk) !== undefined) return;
      await manager.release(this.owner, disk.path);
      await this.tell('lease-released', [disk]);
    } catch (err) {
      this.log.error({ err, msgId: 'LEASE_RELEASE_FAILED', path: disk.path }, 'cannot give back a disk lease');
    }
  }
}
