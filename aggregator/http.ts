// virtqemud's HTTP routes for Prometheus: GET /metrics (the whole host), GET
// /metrics/domain/NAME (one VM), GET /sd (Prometheus HTTP service discovery: one target per VM,
// all served by this daemon), and in a fleet (--cluster) GET /sd/fleet (one target per live host of
// the fleet: its virtqemud's /metrics). Read-only; bind it to loopback or a management network.
import type { HttpRoute } from '../daemon/http-server.js';
import type { DaemonMetrics } from './metrics.js';
import type { DomainRegistry } from './registry.js';
import type { SdGroup } from './cluster/fleet-sd.js';
import { VirtqError } from '../protocol/index.js';

const TEXT = 'text/plain; version=0.0.4; charset=utf-8';

/** The routes of virtqemud's --http endpoint. */
export function hostRoutes(metrics: DaemonMetrics, domains: DomainRegistry, fleet?: () => Promise<SdGroup[]>): HttpRoute {
  return async (path, host) => {
    if (path === '/sd/fleet' && fleet !== undefined) {
      // etcd unreachable: an error, never an empty list (Prometheus keeps its last targets on an error).
      try {
        return { status: 200, type: 'application/json', body: JSON.stringify(await fleet()) };
      } catch (err) {
        return { status: 503, type: TEXT, body: `${VirtqError.from(err).code}: ${VirtqError.from(err).message}\n` };
      }
    }
    const domain = /^\/metrics\/domain\/([^/]+)$/.exec(path)?.[1];
    if (path === '/metrics' || domain !== undefined) {
      return { status: 200, type: TEXT, body: await metrics.scrape(domain === undefined ? undefined : decodeURIComponent(domain)) };
    }
    if (path !== '/sd') return undefined;
    const targets = [...domains.all()].map((d) => ({
      targets: [host],
      labels: { __metrics_path__: `/metrics/domain/${encodeURIComponent(d.name)}`, domain: d.name, uuid: d.uuid },
    }));
    return { status: 200, type: 'application/json', body: JSON.stringify(targets) };
  };
}
