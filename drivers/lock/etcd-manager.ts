// The etcd lock manager: every lease is taken twice, first in the local lockspace (the lockfile
// manager: an fd lease QEMU inherits, so it lives exactly as long as QEMU on this host), then as
// an etcd key bound to the host's lease, so no other host of the fleet can take the disk. While a
// VM holds keys it watches the host lease virtqemud publishes: past its end it tells the shim to
// pause (fencing), and once a live lease is back it re-asserts the keys and tells it to resume.
import type { Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import type { DiskKeyRequest, EtcdDiskKeys } from './etcd-disk-keys.js';
import type { HostLeaseFile } from './etcd-host-lease.js';
import { canonicalPath } from './lockspace.js';
import type { LeaseMode, LeaseOwner, LeaseRequest, LeaseWatch, LockManager, StartLeases } from './types.js';
import { randomUuid } from '../../protocol/node-crypto.js';

/** What the manager is built from. */
export interface EtcdManagerOptions {
  local: LockManager;
  keys: EtcdDiskKeys;
  host: string;
  clock: Clock;
  /** The host lease as virtqemud last published it (undefined: none). */
  readLease: () => HostLeaseFile | undefined;
  /** Host-wide monotonic ms, the clock of HostLeaseFile.aliveUntil. */
  hostNow: () => number;
}

/** A key this manager holds for a VM. */
interface Held {
  owner: LeaseOwner;
  req: DiskKeyRequest;
  lease: string;
  qemuPid?: number;
}

/** How often the watch looks at the host lease, and how long before its end it fences. */
export function fenceTiming(ttlSec: number): { periodMs: number; marginMs: number } {
  const periodMs = Math.min(1000, Math.max(100, (ttlSec * 1000) / 8));
  return { periodMs, marginMs: Math.max(2 * periodMs, (ttlSec * 1000) / 4) };
}

/** The etcd manager. */
export class EtcdLockManager implements LockManager {
  private readonly held = new Map<string, Held>();
  private fence: 'ok' | 'lost' | 'taken' = 'ok';

  constructor(private readonly o: EtcdManagerOptions) {}

  resourceKey(path: string): Promise<string> {
    return this.o.local.resourceKey(path);
  }

  async acquireForStart(owner: LeaseOwner, requests: readonly LeaseRequest[]): Promise<StartLeases> {
    const plan = await this.plan(requests);
    const lease = this.liveLease(`lease disks for VM "${owner.vm}"`);
    const local = await this.o.local.acquireForStart(owner, requests);
    try {
      await this.takeKeys(owner, plan, lease, undefined);
    } catch (err) {
      await local.abort();
      throw err;
    }
    return {
      inheritFds: local.inheritFds,
      spawned: async (qemuPid) => {
        await local.spawned(qemuPid);
        // The pid only sharpens conflict messages and migration hand-overs: best effort.
        for (const r of plan) {
          const h = this.held.get(slot(owner, r.hash));
          if (h === undefined) continue;
          h.qemuPid = qemuPid;
          await this.o.keys.acquire(owner, r, h.lease, qemuPid).catch(() => undefined);
        }
      },
      abort: async () => {
        await local.abort();
        await this.dropKeys(owner, plan.map((r) => r.hash), undefined);
      },
    };
  }

  async acquireForRunning(owner: LeaseOwner, qemuPid: number, request: LeaseRequest): Promise<void> {
    const plan = await this.plan([request]);
    const lease = this.liveLease(`lease disk ${request.path} for VM "${owner.vm}"`);
    await this.o.local.acquireForRunning(owner, qemuPid, request);
    try {
      // A running QEMU of this VM may take over a key its migration's source handed over.
      await this.takeKeys(owner, plan, lease, qemuPid, true);
    } catch (err) {
      await this.o.local.release(owner, request.path).catch(() => undefined);
      throw err;
    }
  }

  async release(owner: LeaseOwner, path: string): Promise<void> {
    const [r] = await this.plan([{ path, mode: 'shared' }]) as [DiskKeyRequest];
    await this.dropKeys(owner, [r.hash], undefined);
    await this.o.local.release(owner, path);
  }

  async releaseAll(owner: LeaseOwner, paths: readonly string[], qemuPid?: number): Promise<void> {
    await this.o.local.releaseAll(owner, paths, qemuPid);
    const plan = await this.plan(paths.map((path) => ({ path, mode: 'shared' as const })));
    await this.dropKeys(owner, plan.map((r) => r.hash), qemuPid);
  }

  /**
   * A migration's switchover (docs/decisions/0030): the keys stay bound to this host's lease,
   * marked for the VM's QEMU on the destination to take over in one Txn; the local half is given
   * back. All or nothing: on a failure the keys marked so far are re-asserted as this VM's.
   */
  async handOver(owner: LeaseOwner, paths: readonly string[]): Promise<void> {
    // Every key of the VM on these disks, held in this process or not (a re-attached shim's).
    const plan = await this.plan(paths.map((path) => ({ path, mode: 'shared' as const })));
    const marked: DiskKeyRequest[] = [];
    try {
      for (const r of plan) {
        marked.push(r);
        await this.o.keys.handOver(owner, r.hash);
      }
      await this.o.local.releaseAll(owner, paths);
    } catch (err) {
      // Marked (or perhaps marked: a lost answer) keys become this VM's again.
      for (const r of marked) {
        const h = this.held.get(slot(owner, r.hash));
        if (h !== undefined) await this.o.keys.acquire(owner, h.req, h.lease, h.qemuPid).catch(() => undefined);
      }
      throw err;
    }
    // Not ours to re-assert or fence for any more: the destination takes them, or the source's
    // rollback takes them back (acquireForRunning, which finds them still this host's).
    for (const r of plan) this.held.delete(slot(owner, r.hash));
    if (this.held.size === 0 && this.fence !== 'ok') this.fence = 'ok';
  }

  async holdExclusive<T>(path: string, fn: () => Promise<T>): Promise<T> {
    if (this.o.local.holdExclusive === undefined) throw new VirtqError('NOT_SUPPORTED', 'the local lock manager cannot hold a resource');
    const owner: LeaseOwner = { vm: '(volume change)', uuid: randomUuid(), shimPid: process.pid };
    const plan = await this.plan([{ path, mode: 'exclusive' }]);
    return this.o.local.holdExclusive(path, async () => {
      await this.takeKeys(owner, plan, this.liveLease(`change volume ${path}`), undefined);
      try {
        return await fn();
      } finally {
        await this.dropKeys(owner, plan.map((r) => r.hash), undefined).catch(() => undefined);
      }
    });
  }

  watchLeases(_owner: LeaseOwner, watch: LeaseWatch): { dispose(): void } {
    let stopped = false;
    let timer: { dispose(): void } | undefined;
    const loop = (): void => {
      if (stopped) return;
      const ttl = this.o.readLease()?.ttlSec ?? 10;
      void this.check(watch).finally(() => {
        if (!stopped) timer = this.o.clock.setTimeout(loop, fenceTiming(ttl).periodMs);
      });
    };
    loop();
    return { dispose: () => { stopped = true; timer?.dispose(); } };
  }

  // --- internals -----------------------------------------------------------------------

  // One look at the host lease: fence when it ends, re-bind keys to a new lease, re-assert them
  // when a lease is back after a fence. A key another host took meanwhile is never overwritten.
  private async check(watch: LeaseWatch): Promise<void> {
    if (this.held.size === 0 || this.fence === 'taken') return;
    const lease = this.currentLease();
    try {
      if (lease === undefined) {
        if (this.fence === 'ok') {
          this.fence = 'lost';
          await watch.lost('lease-lost');
        }
        return;
      }
      const stale = [...this.held.values()].filter((h) => h.lease !== lease);
      if (this.fence === 'ok' && stale.length === 0) return;
      for (const h of this.fence === 'lost' ? [...this.held.values()] : stale) {
        await this.o.keys.acquire(h.owner, h.req, lease, h.qemuPid);
        h.lease = lease;
      }
      if (this.fence === 'lost') {
        this.fence = 'ok';
        await watch.regained();
      }
    } catch (err) {
      const e = VirtqError.from(err);
      if (e.code !== 'LOCK_CONFLICT') return; // etcd unreachable: tried again next time
      const was = this.fence;
      this.fence = 'taken';
      if (was === 'ok') await watch.lost('lease-lost');
      watch.takenOver(e.message);
    }
  }

  /** The host lease id while it is certainly alive (with the fencing margin to spare), else undefined. */
  private currentLease(): string | undefined {
    let f: HostLeaseFile | undefined;
    try {
      f = this.o.readLease();
    } catch {
      return undefined;
    }
    if (f?.lease === undefined) return undefined;
    return this.o.hostNow() < f.aliveUntil - fenceTiming(f.ttlSec).marginMs ? f.lease : undefined;
  }

  private liveLease(action: string): string {
    const lease = this.currentLease();
    if (lease !== undefined && this.fence === 'ok') return lease;
    const why = this.fence === 'taken' ? 'a disk lease of this VM was taken by another host while this host was away' : 'this host has no live lease in its etcd fleet';
    throw new VirtqError('CLUSTER_UNAVAILABLE', `cannot ${action}: ${why} (host ${this.o.host}); retry when etcd is reachable and virtqemud has its lease`);
  }

  /** Canonicalises, merges requests on one resource (exclusive wins). */
  private async plan(requests: readonly LeaseRequest[]): Promise<DiskKeyRequest[]> {
    const byHash = new Map<string, DiskKeyRequest>();
    for (const r of requests) {
      const resource = await canonicalPath(r.path);
      const hash = await this.o.local.resourceKey(r.path);
      const mode: LeaseMode = byHash.get(hash)?.mode === 'exclusive' ? 'exclusive' : r.mode;
      byHash.set(hash, { hash, resource, mode });
    }
    return [...byHash.values()].sort((a, b) => a.hash.localeCompare(b.hash));
  }

  // All or nothing: on a conflict (or etcd failing) the keys taken so far are dropped.
  private async takeKeys(owner: LeaseOwner, plan: readonly DiskKeyRequest[], lease: string, qemuPid: number | undefined, takeOver = false): Promise<void> {
    const taken: string[] = [];
    try {
      for (const r of plan) {
        await this.o.keys.acquire(owner, r, lease, qemuPid, takeOver);
        this.held.set(slot(owner, r.hash), { owner, req: r, lease, ...(qemuPid === undefined ? {} : { qemuPid }) });
        taken.push(r.hash);
      }
    } catch (err) {
      await this.dropKeys(owner, taken, undefined).catch(() => undefined);
      throw err;
    }
  }

  private async dropKeys(owner: LeaseOwner, hashes: readonly string[], qemuPid: number | undefined): Promise<void> {
    let failed: unknown;
    for (const hash of new Set(hashes)) {
      const h = this.held.get(slot(owner, hash));
      // Another QEMU of this VM (a migration's destination) holds it now: not ours to give back.
      if (qemuPid !== undefined && h?.qemuPid !== undefined && h.qemuPid !== qemuPid) continue;
      try {
        await this.o.keys.release(owner, hash, qemuPid);
        this.held.delete(slot(owner, hash));
      } catch (err) {
        failed ??= err;
      }
    }
    if (this.held.size === 0 && this.fence !== 'ok') this.fence = 'ok';
    if (failed !== undefined) throw failed;
  }
}

const slot = (owner: LeaseOwner, hash: string): string => `${owner.uuid}/${hash}`;
