// virtqemud's --cluster options and their parsing, apart from the membership they set up
// (cluster-member.ts): every virtqemud parses them, but only one in a fleet loads the membership,
// which compose.ts imports on demand. Kept apart so a virtqemud outside a fleet never evaluates the
// etcd membership's modules, nor holds them in its startup snapshot's heap (issue 15 target 4).
import { hostname } from 'node:os';
import { VirtqError } from '../../protocol/index.js';
import { HOST_ID, parseClusterUri } from '../../protocol/cluster.js';
import { wholeNumber, stringOption, type OptionValues } from '../../daemon/options.js';
import { clusterTls, type ClusterTls } from '../../protocol/etcd-options.js';

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
