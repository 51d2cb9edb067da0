// virtqemud's side of --cluster: the options that set up a fleet membership, and the member
// virtqemud holds, which joins once recovery has rebuilt the registry (the VMs it must claim).
import { hostname } from 'node:os';
import { VirtqError, daemonSockets, type Clock, type Layout, type Logger } from '../../protocol/index.js';
import { HOST_ID, parseClusterUri } from '../../protocol/cluster.js';
import { wholeNumber, stringOption, type OptionValues } from '../../daemon/options.js';
import { EtcdMembership, type ClusterGate } from './etcd-membership.js';
import { clusterTls, type ClusterTls } from '../../protocol/etcd-options.js';
import type { DomainRegistry } from '../registry.js';
import { hostMonotonicMs, writeHostLease, type HostLeaseFile } from '../../drivers/lock/etcd-host-lease.js';
import { advertisedHttp, fleetSdGroups, type SdGroup } from './fleet-sd.js';

/** The --cluster options as parsed. */
export interface ClusterOptions {
  uri: string;
  hostId: string;
  ttlSec: number;
  /** --cluster-reclaim-after: free the names of hosts gone this long past their lease (undefined: never). */
  reclaimAfterSec?: number;
  /** --cluster-sync-period: how often the claims are synced without cause (undefined: every 10 s). */
  syncPeriodSec?: number;
  tls: ClusterTls | undefined;
}

/** virtqemud's --cluster options. */
export const CLUSTER_OPTIONS = {
  cluster: { type: 'string' }, 'cluster-host': { type: 'string' }, 'cluster-ttl': { type: 'string' }, 'cluster-reclaim-after': { type: 'string' },
  'cluster-sync-period': { type: 'string' }, 'cluster-cacert': { type: 'string' }, 'cluster-cert': { type: 'string' }, 'cluster-key': { type: 'string' },
} as const;

/** Their usage lines. */
export const CLUSTER_USAGE = `  --cluster etcd://HOST:PORT[,HOST:PORT...]/PREFIX
                      join an etcd fleet: VM names and UUIDs become unique across its hosts
  --cluster-host ID   this host's id in the fleet (default: the machine's host name)
  --cluster-ttl S     the host lease's TTL in seconds (default 10; heartbeats every TTL/3)
  --cluster-reclaim-after S
                      free the VM names of a host whose lease expired and that stayed away S
                      more seconds (default: never; only with fencing or hosts known dead)
  --cluster-sync-period S
                      re-assert this host's claims and release its stale ones every S seconds
                      (default 10; also at each heartbeat for 10 s after a failed etcd call)
  --cluster-cacert FILE  talk TLS to etcd, checking its certificates against this CA (PEM)
  --cluster-cert FILE, --cluster-key FILE
                      this host's client certificate and key for etcd (--client-cert-auth)`;

/** Parses the --cluster options; undefined without --cluster (the other two are refused alone). */
export function parseClusterOptions(values: OptionValues): ClusterOptions | undefined {
  const uri = stringOption(values, 'cluster');
  const host = stringOption(values, 'cluster-host');
  const ttl = stringOption(values, 'cluster-ttl');
  const reclaim = stringOption(values, 'cluster-reclaim-after');
  const sync = stringOption(values, 'cluster-sync-period');
  const tls = clusterTls(stringOption(values, 'cluster-cacert'), stringOption(values, 'cluster-cert'), stringOption(values, 'cluster-key'));
  if (uri === undefined) {
    if (host !== undefined || ttl !== undefined || reclaim !== undefined || sync !== undefined || tls !== undefined) throw new VirtqError('INVALID_ARG', '--cluster-host, --cluster-ttl, --cluster-reclaim-after, --cluster-sync-period and --cluster-cacert/-cert/-key need --cluster etcd://HOST:PORT/PREFIX');
    return undefined;
  }
  parseClusterUri(uri);
  const hostId = host ?? hostname().split('.')[0] ?? 'localhost';
  if (!HOST_ID.test(hostId)) throw new VirtqError('INVALID_ARG', `--cluster-host "${hostId.slice(0, 80)}": a host id is 1-63 letters, digits, . _ - (no slash)`);
  return { uri, hostId, ttlSec: wholeNumber(ttl, 'cluster-ttl', 10, 1), tls, ...(reclaim === undefined ? {} : { reclaimAfterSec: wholeNumber(reclaim, 'cluster-reclaim-after', 0, 1) }),
    ...(sync === undefined ? {} : { syncPeriodSec: wholeNumber(sync, 'cluster-sync-period', 10, 1) }) };
}

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
