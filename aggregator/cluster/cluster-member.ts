// virtqemud's side of --cluster: the options that set up a fleet membership, and the member
// virtqemud holds, which joins once recovery has rebuilt the registry (the VMs it must claim).
import { hostname } from 'node:os';
import { VirtqError, daemonSockets, type Clock, type Layout, type Logger } from '../../protocol/index.js';
import { HOST_ID, parseClusterUri } from '../../protocol/cluster.js';
import { wholeNumber, stringOption, type OptionValues } from '../../daemon/options.js';
import { EtcdMembership, type ClusterGate } from './etcd-membership.js';
import { clusterTls, type ClusterTls } from '../../client/etcd-client.js';
import type { DomainRegistry } from '../registry.js';
import { advertisedHttp, fleetSdGroups, type SdGroup } from './fleet-sd.js';

/** The --cluster options as parsed. */
export interface ClusterOptions {
  uri: string;
  hostId: string;
  ttlSec: number;
  tls: ClusterTls | undefined;
}

/** virtqemud's --cluster options. */
export const CLUSTER_OPTIONS = {
  cluster: { type: 'string' }, 'cluster-host': { type: 'string' }, 'cluster-ttl': { type: 'string' },
  'cluster-cacert': { type: 'string' }, 'cluster-cert': { type: 'string' }, 'cluster-key': { type: 'string' },
} as const;

/** Their usage lines. */
export const CLUSTER_USAGE = `  --cluster etcd://HOST:PORT[,HOST:PORT...]/PREFIX
                      join an etcd fleet: VM names and UUIDs become unique across its hosts
  --cluster-host ID   this host's id in the fleet (default: the machine's host name)
  --cluster-ttl S     the host lease's TTL in seconds (default 10; heartbeats every TTL/3)
  --cluster-cacert FILE  talk TLS to etcd, checking its certificates against this CA (PEM)
  --cluster-cert FILE, --cluster-key FILE
                      this host's client certificate and key for etcd (--client-cert-auth)`;

/** Parses the --cluster options; undefined without --cluster (the other two are refused alone). */
export function parseClusterOptions(values: OptionValues): ClusterOptions | undefined {
  const uri = stringOption(values, 'cluster');
  const host = stringOption(values, 'cluster-host');
  const ttl = stringOption(values, 'cluster-ttl');
  const tls = clusterTls(stringOption(values, 'cluster-cacert'), stringOption(values, 'cluster-cert'), stringOption(values, 'cluster-key'));
  if (uri === undefined) {
    if (host !== undefined || ttl !== undefined || tls !== undefined) throw new VirtqError('INVALID_ARG', '--cluster-host, --cluster-ttl and --cluster-cacert/-cert/-key need --cluster etcd://HOST:PORT/PREFIX');
    return undefined;
  }
  parseClusterUri(uri);
  const hostId = host ?? hostname().split('.')[0] ?? 'localhost';
  if (!HOST_ID.test(hostId)) throw new VirtqError('INVALID_ARG', `--cluster-host "${hostId.slice(0, 80)}": a host id is 1-63 letters, digits, . _ - (no slash)`);
  return { uri, hostId, ttlSec: wholeNumber(ttl, 'cluster-ttl', 10, 1), tls };
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
  return {
    join: async (registry) => {
      membership = await EtcdMembership.create({
        uri: parseClusterUri(opts.uri), ...(opts.tls === undefined ? {} : { tls: opts.tls }), hostId: opts.hostId, ttlSec: opts.ttlSec, clock, log,
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
