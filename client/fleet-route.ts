// Where a fleet-mode command goes (docs/guide-cluster.md): the host holding a VM's name and the
// virtqemud a host advertises in its entry, both read from etcd. `virtq migrate NAME --to-host H`
// uses it to call the source host's virtqemud with the destination host's virtqemud as target.
import { EtcdReader } from './etcd-reader.js';
import { VirtqError, type Clock } from '../protocol/index.js';
import type { ClusterTls } from '../protocol/etcd-options.js';
import { clusterKeys, parseClaim, parseHostEntry, type ClusterUri, type HostEntry } from '../protocol/cluster.js';

/** The two ends of a migration between hosts of a fleet. */
export interface FleetMigrationRoute {
  /** The host holding the VM's name now, and its entry. */
  from: HostEntry;
  to: HostEntry;
  /** The URI of each end's virtqemud (on one machine: its unix socket). */
  fromUri: string;
  toUri: string;
}

/** The URI of a host's virtqemud as its entry advertises it. */
export function hostUri(e: HostEntry): string {
  return `qemu:///system?socket=${encodeURIComponent(e.socket)}`;
}

/** Resolves `name`'s host and `toHost`'s virtqemud; typed errors for a name or host the fleet does not have live. */
export async function routeMigration(cluster: ClusterUri, name: string, toHost: string, clock: Clock, tls?: ClusterTls): Promise<FleetMigrationRoute> {
  // Read-only, as the fleet view: etcd-reader.ts, without loading etcd3 and gRPC.
  const etcd = new EtcdReader({ endpoints: cluster.endpoints, callMs: 5000, ...(tls === undefined ? {} : { tls }) }, clock);
  const keys = clusterKeys(cluster.prefix);
  let claimText: string | null;
  let toText: string | null;
  let fromText: string | null = null;
  try {
    [claimText, toText] = await Promise.all([etcd.get(keys.name(name)), etcd.get(keys.host(toHost))]);
    const claim = claimText === null ? undefined : parseClaim(claimText);
    if (claim !== undefined) fromText = await etcd.get(keys.host(claim.host));
  } catch (err) {
    throw new VirtqError('CLUSTER_UNAVAILABLE', `the etcd fleet at ${cluster.endpoints.join(',')} did not answer (${err instanceof Error ? err.message : String(err)}): cannot find the hosts of the migration`, { cause: err });
  } finally {
    etcd.close();
  }
  const claim = claimText === null ? undefined : parseClaim(claimText);
  if (claim === undefined) throw new VirtqError('NO_DOMAIN', `no host of the fleet holds a VM named "${name}"`);
  const from = fromText === null ? undefined : parseHostEntry(fromText);
  if (from === undefined) throw new VirtqError('CLUSTER_UNAVAILABLE', `host ${claim.host}, which holds VM "${name}", has no live lease in the fleet: it cannot migrate now`, { details: { host: claim.host } });
  const to = toText === null ? undefined : parseHostEntry(toText);
  if (to === undefined) throw new VirtqError('INVALID_ARG', `--to-host ${toHost}: no such host with a live lease in the fleet (see virtq hosts)`);
  if (to.host === from.host) throw new VirtqError('OPERATION_INVALID', `VM "${name}" already runs on host ${toHost}`);
  return { from, to, fromUri: hostUri(from), toUri: hostUri(to) };
}
