// virtqemud as a daemon of the framework: its options, and the one place its real parts (the
// process spawner for shims) are chosen.
import { fileURLToPath } from 'node:url';
import { VirtqError } from '../protocol/index.js';
import type { ServiceDefinition } from '../daemon/run-service.js';
import { LineLogHub } from '../daemon/line-log.js';
import { stringOption, wholeNumber } from '../daemon/options.js';
import { parseHttpAddress } from '../daemon/http-address.js';
import { Virtqemud } from './daemon.js';
import { storageVolumes } from './storage-volumes.js';
import { processShimSpawner } from './spawner.js';
import { readWriteToken } from './web/write-token.js';
import { parseAllowList } from '../daemon/qmp-proxy-options.js';
import { removeHostLease } from '../drivers/lock/etcd-host-lease.js';
import { CLUSTER_OPTIONS, CLUSTER_USAGE, parseClusterOptions, type ClusterOptions } from './cluster/cluster-options.js';
import type { ClusterMember } from './cluster/cluster-member.js';

/** virtqemud's own options. */
export interface VirtqemudOptions {
  shimBinary: string;
  reconcileMs: number;
  metricsRefreshMs: number;
  /** How long a shim's start waits for virtstoraged/virtsecretd and a volume's pool (passed on as --daemon-wait). */
  daemonWaitSec: number | undefined;
  /** The file holding the web view's write token (--http-write-token); undefined: the view is read-only. */
  httpWriteToken: string | undefined;
  /** Passed on to every shim: --no-qmp-proxy, --qmp-proxy-allow. */
  qmpProxyArgs: string[];
  /** Warm shims kept ready (--shim-pool, $VIRTQ_SHIM_POOL; default 1, 0: none). */
  shimPool: number;
  /** --cluster and its companions; undefined: not in a fleet. */
  cluster: ClusterOptions | undefined;
}

/** Idle shims cost a shim's memory each: more than this many is never what anyone wants. */
const MAX_SHIM_POOL = 16;
/** One idle shim: the start it saves is most of a start; its memory is one shim's (decision 0026). */
const DEFAULT_SHIM_POOL = 1;

function poolSize(value: string | undefined): number {
  const n = wholeNumber(value, 'shim-pool', DEFAULT_SHIM_POOL);
  if (n > MAX_SHIM_POOL) throw new VirtqError('INVALID_ARG', `--shim-pool must be at most ${MAX_SHIM_POOL} (each idle shim holds a shim's memory)`);
  return n;
}

/** virtqemud, defined for the framework; `shimBeside` is where the bundled virtq-shim is. */
export function virtqemudService(version: string, shimBeside: URL): ServiceDefinition<VirtqemudOptions> {
  return {
    daemon: 'virtqemud',
    version,
    // pino's lines without pino: ~10% of a restarted virtqemud's CPU before its first listing (decision 0002).
    makeLogs: (opts) => new LineLogHub(opts),
    summary: `Serves the host's VMs: registers their shims, keeps names and UUIDs unique, stores persistent
definitions, starts VMs in detached shims and answers the host listing.`,
    options: { shim: { type: 'string' }, 'reconcile-ms': { type: 'string' }, 'metrics-refresh-ms': { type: 'string' }, 'daemon-wait': { type: 'string' }, 'http-write-token': { type: 'string' }, 'no-qmp-proxy': { type: 'boolean' }, 'qmp-proxy-allow': { type: 'string' }, 'shim-pool': { type: 'string' }, ...CLUSTER_OPTIONS },
    optionsUsage: `  --shim PATH         the virtq-shim binary (default: next to this one, or $VIRTQ_SHIM)
  --reconcile-ms N    period of the reconciliation pass (default 5000)
  --metrics-refresh-ms N  how often shims' metrics are fetched in the background (default 5000)
  --daemon-wait S     how long a VM's start waits for virtstoraged, virtsecretd and its volumes' pools (default 30)
  --http-write-token FILE  let the web view at --http start, stop and reach the console of VMs for
                      whoever shows the token in FILE (default: the web view is read-only)
  --no-qmp-proxy      no VM gets a shared QMP socket (run/shims/NAME-qmp-proxy.sock)
  --qmp-proxy-allow L comma-separated QMP commands that change a VM which tools on every VM's shared
                      QMP socket may send (query-* always pass; the shim's own commands never do)
  --shim-pool N       keep N shims started ahead, waiting for a VM to start (default: $VIRTQ_SHIM_POOL
                      or 1; 0: none); each idle one costs a shim's memory and saves Node's start
${CLUSTER_USAGE}`,
    // virtqemud's own series stay unlabelled: it is the host scrape that merges the others.
    metricLabels: {},
    parseExtra: (values, env) => ({
      shimBinary: stringOption(values, 'shim') ?? env['VIRTQ_SHIM'] ?? fileURLToPath(new URL('./virtq-shim.js', shimBeside)),
      reconcileMs: wholeNumber(stringOption(values, 'reconcile-ms'), 'reconcile-ms', 5000),
      metricsRefreshMs: wholeNumber(stringOption(values, 'metrics-refresh-ms'), 'metrics-refresh-ms', 5000, 50),
      daemonWaitSec: stringOption(values, 'daemon-wait') === undefined ? undefined : wholeNumber(stringOption(values, 'daemon-wait'), 'daemon-wait', 30),
      httpWriteToken: stringOption(values, 'http-write-token'),
      shimPool: poolSize(stringOption(values, 'shim-pool') ?? env['VIRTQ_SHIM_POOL']),
      qmpProxyArgs: [
        ...(values['no-qmp-proxy'] === true ? ['--no-qmp-proxy'] : []),
        ...(stringOption(values, 'qmp-proxy-allow') === undefined ? [] : ['--qmp-proxy-allow', parseAllowList(stringOption(values, 'qmp-proxy-allow')).join(',')]),
      ],
      cluster: parseClusterOptions(values),
    }),
    build: async ({ layout, clock, logs, env, common, extra, service }) => {
      // Shims run under the same root or mode as their virtqemud.
      const placement = [
        ...(common.root !== undefined ? ['--root', common.root] : ['--mode', common.mode]),
        ...(extra.daemonWaitSec === undefined ? [] : ['--daemon-wait', String(extra.daemonWaitSec)]),
        ...extra.qmpProxyArgs,
      ];
      // Not in a fleet (any more): shims must not take an old host lease for a live one.
      if (extra.cluster === undefined) removeHostLease(layout.runtime);
      const spawner = processShimSpawner(extra.shimBinary, placement, layout, env, clock, undefined, extra.shimPool);
      if (extra.httpWriteToken !== undefined && common.httpAddress === undefined) throw new VirtqError('INVALID_ARG', '--http-write-token needs --http HOST:PORT (the web view it unlocks)');
      const web = { assetsDir: fileURLToPath(new URL('../web/', shimBeside)), token: extra.httpWriteToken === undefined ? undefined : await readWriteToken(extra.httpWriteToken) };
      // The virtstoraged a shim of this root would use (shim/compose.ts's besideUri).
      const storageUri = common.root !== undefined ? `storage:///system?root=${common.root}` : `storage:///${common.mode}`;
      const volumes = storageVolumes(storageUri, clock, (extra.daemonWaitSec ?? 30) * 1000);
      // The fleet's membership (etcd, claims, reaping) is imported only with --cluster: a virtqemud on
      // its own, and its startup snapshot, never evaluate those modules (issue 15 target 4).
      let cluster: ClusterMember | undefined;
      if (extra.cluster !== undefined) {
        const { etcdClusterMember } = await import('./cluster/cluster-member.js');
        cluster = etcdClusterMember(extra.cluster, layout, clock, logs.module('cluster'), process.pid, common.httpAddress === undefined ? undefined : parseHttpAddress(common.httpAddress).host);
      }
      const daemon = new Virtqemud({ layout, clock, logs, spawner, service, volumes, reconcileMs: extra.reconcileMs, metricsRefreshMs: extra.metricsRefreshMs, http: common.httpAddress !== undefined, web,
        ...(cluster === undefined ? {} : { cluster }) });
      return daemon.start();
    },
  };
}
