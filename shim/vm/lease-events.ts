// Lease changes as journal events (issue #17): which disk's lease was taken or given back, with
// the lock manager's resource (the canonical identity two paths to one file share) and the mode.
// The shim journals them like its lifecycle events, so a VM's history says when it held a disk.
import type { ResolvedDisk } from '../../protocol/index.js';
import type { LeaseRequest, LockManager } from '../../drivers/lock/types.js';

/** Writable disks are leased exclusively; read-only and shareable disks shared. */
export function leaseRequest(disk: Pick<ResolvedDisk, 'path' | 'readonly' | 'shareable'>): LeaseRequest {
  return { path: disk.path, mode: disk.readonly || disk.shareable ? 'shared' : 'exclusive' };
}

/** One lease change. */
export interface LeaseChange {
  kind: 'lease-acquired' | 'lease-released';
  details: { disk: string; path: string; resource: string; mode: 'exclusive' | 'shared'; plugin: string };
}

/** Receives lease changes (the shim journals them); none set: nobody is told. */
export type LeaseListener = (change: LeaseChange) => void;

/** Tells `listener` that `disks` changed lease, in their order, each with its resource key. */
export async function tellLeases(listener: LeaseListener | undefined, manager: LockManager | undefined, plugin: string, kind: LeaseChange['kind'], disks: readonly ResolvedDisk[]): Promise<void> {
  if (listener === undefined || manager === undefined) return;
  for (const d of disks) {
    // The key is what the lock manager leased: a path it cannot canonicalise any more (a file
    // removed under a running VM) is reported by its path.
    const resource = await manager.resourceKey(d.path).catch(() => d.path);
    listener({ kind, details: { disk: d.target, path: d.path, resource, mode: leaseRequest(d).mode, plugin } });
  }
}
