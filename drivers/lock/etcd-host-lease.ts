// The host lease as virtqemud (--cluster) publishes it to the shims of its root: `run/cluster-lease.json`,
// rewritten atomically after every renewal. Shims bind their etcd disk keys to this lease and
// fence (pause their VMs) once the host's monotonic clock passes `aliveUntil` without a newer
// renewal, whether virtqemud is alive to say so or not (docs/decisions/0030).
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { writeAllSync } from '../fs/write-all.js';
import { join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';

/** What virtqemud publishes. */
export interface HostLeaseFile {
  format: 1;
  /** etcd members host:port, and the fleet's key prefix. */
  endpoints: string[];
  prefix: string;
  /** This host's id in the fleet. */
  host: string;
  ttlSec: number;
  /** The etcd lease id (decimal), absent before the first join. */
  lease?: string;
  /** Host-wide monotonic ms (CLOCK_MONOTONIC, the same in every process) until which the lease is certainly alive. */
  aliveUntil: number;
  /** virtqemud's pid. */
  pid: number;
  /** TLS to etcd (virtqemud's --cluster-cacert/-cert/-key, file paths): the shims' plugin talks to etcd as virtqemud does. */
  tls?: { cacert: string; cert?: string; key?: string };
}

/** The file under a runtime dir. */
export function hostLeaseFile(runtimeDir: string): string {
  return join(runtimeDir, 'cluster-lease.json');
}

/** CLOCK_MONOTONIC in ms: unlike performance.now() it is one clock for every process of the host. */
export function hostMonotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** Reads the file; undefined when there is none (virtqemud runs without --cluster). */
export function readHostLease(runtimeDir: string): HostLeaseFile | undefined {
  let text: string;
  try {
    text = readFileSync(hostLeaseFile(runtimeDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot read ${hostLeaseFile(runtimeDir)}: ${(err as Error).message}`, { cause: err });
  }
  const v = JSON.parse(text) as Partial<HostLeaseFile>;
  if (v.format !== 1 || !Array.isArray(v.endpoints) || typeof v.prefix !== 'string' || typeof v.host !== 'string' || typeof v.ttlSec !== 'number' || typeof v.aliveUntil !== 'number') {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `${hostLeaseFile(runtimeDir)} is not a host lease file`);
  }
  return v as HostLeaseFile;
}

/** Writes the file atomically (temp, fsync, rename): a shim never reads half a lease. */
export function writeHostLease(runtimeDir: string, value: HostLeaseFile): void {
  const file = hostLeaseFile(runtimeDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeAllSync(fd, Buffer.from(JSON.stringify(value)));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Removes the file (virtqemud without --cluster: no stale fleet for its shims). */
export function removeHostLease(runtimeDir: string): void {
  try {
    unlinkSync(hostLeaseFile(runtimeDir));
  } catch {
    // none
  }
}
