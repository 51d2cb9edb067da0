// virtqemud's side of --cluster: the member virtqemud holds, which joins once recovery has rebuilt
// the registry (the VMs it must claim). Its options are parsed in cluster-options.ts.
import { VirtqError, daemonSockets, type Clock, type Layout, type Logger } from '../../protocol/index.js';
import { parseClusterUri } from '../../protocol/cluster.js';
import { EtcdMembership, type ClusterGate } from './etcd-membership.js';
import type { ClusterOptions } from './cluster-options.js';
import type { DomainRegistry } from '../registry.js';
import { hostMonotonicMs, writeHostLease, type HostLeaseFile } from '../../drivers/lock/etcd-host-lease.js';
import { advertisedHttp, fleetSdGroups, type SdGroup } from './fleet-sd.js';

/** The fleet membership virtqemud holds. */
export interface ClusterMember extends ClusterGate {
  /** Joins the fleet with the registry's VMs as this host's claims (waits a bounded time for etcd). */
  join(registry: DomainRegistry): Promise<void>;
  /** Advertises this host's --http (bound to `port`) in its host entry, for GET /sd/fleet. */
  advertiseHttp(port: number): void;
  /** GET /sd/fleet: a target group per live host advertising its --http; CLUSTER_UNAVAILABLE when etcd does not answer. */
  sdGroups(): Promise<SdGroup[]>;
  close(): Promise<void>;
}

/** A member of the fleet `opts` names; `httpHost` is the host of virtqemud's --http address, if any. */
export function etcdClusterMember(opts: ClusterOptions, layout: Layout, clock: Clock, log: Logger, pid: number, httpHost?: string): ClusterMember {
  let membership: EtcdMembership | undefined;
  const notJoined = (action: string): VirtqError => new VirtqError('CLUSTER_UNAVAILABLE', `cannot ${action}: this host has not joined its etcd fleet yet`);
  const sockets = daemonSockets(layout);
  const uri = parseClusterUri(opts.uri);
  // The host lease as the shims' etcd lock plugin reads it (docs/decisions/0030): they bind their
  // disk keys to it and fence when it ends, whether this daemon is alive to tell them or not.
  const publish = (lease: string | undefined, aliveUntil: number): void => {
    const file: HostLeaseFile = {
      format: 1, endpoints: uri.endpoints, prefix: uri.prefix, host: opts.hostId, ttlSec: opts.ttlSec, pid,
      ...(opts.tls === undefined ? {} : { tls: opts.tls }),
      ...(lease === undefined ? {} : { lease }), aliveUntil: hostMonotonicMs() + Math.max(0, aliveUntil - clock.monotonic()),
    };
    try {
      writeHostLease(layout.runtime, file);
    } catch (err) {
      log.error({ err: VirtqError.from(err).message, msgId: 'CLUSTER_LEASE_FILE_FAILED' }, 'cannot publish the host lease to the shims (they will fence)');
    }
  };
  return {
    join: async (registry) => {
      publish(undefined, 0);
      membership = await EtcdMembership.create({
        onLease: publish,
        uri, ...(opts.tls === undefined ? {} : { tls: opts.tls }), hostId: opts.hostId, ttlSec: opts.ttlSec, clock, log,
        ...(opts.reclaimAfterSec === undefined ? {} : { reclaimAfterSec: opts.reclaimAfterSec }),
        ...(opts.syncPeriodSec === undefined ? {} : { syncPeriodMs: opts.syncPeriodSec * 1000 }),
        self: { socket: sockets.rw, roSocket: sockets.ro, pid },
        local: () => [...registry.all()].map((r) => ({ name: r.name, uuid: r.uuid })),
      });
      await membership.start(opts.ttlSec * 1000);
    },
    requireAvailable: (action) => {
      if (membership === undefined) throw notJoined(action);
      membership.requireAvailable(action);
    },
    claim: async (name, uuid) => {
      if (membership === undefined) throw notJoined(`claim "${name}"`);
      await membership.claim(name, uuid);
    },
    release: (name, uuid) => membership?.release(name, uuid),
    expectIncoming: async (name, uuid) => {
      if (membership === undefined) throw notJoined(`take in VM "${name}" by migration`);
      return membership.expectIncoming(name, uuid);
    },
    takeIncoming: async (name) => {
      if (membership === undefined) throw notJoined(`take over the claim of VM "${name}"`);
      await membership.takeIncoming(name);
    },
    settleIncoming: (name) => membership?.settleIncoming(name),
    returnIncoming: async (name) => membership?.returnIncoming(name),
    // Before the join, the join's sync claims it with the rest of the registry.
    adopted: (name, uuid) => membership?.adopted(name, uuid),
    advertiseHttp: (port) => {
      if (httpHost !== undefined) membership?.advertise(advertisedHttp(httpHost, port));
    },
    sdGroups: async () => {
      if (membership === undefined) throw notJoined('list the fleet\'s hosts');
      return fleetSdGroups(await membership.hosts(), parseClusterUri(opts.uri).prefix);
    },
    close: async () => membership?.close(),
  };
}
