// Prometheus HTTP service discovery for an etcd fleet (GET /sd/fleet on any host's --http): one
// target group per host whose entry (under its lease) advertises a metrics address, so a host
// drops out of the targets when its lease expires. Each host's /metrics already carries every
// one of its VMs, so one target per host covers the whole fleet.
import { hostname } from 'node:os';
import type { HostEntry } from '../../protocol/cluster.js';

/** One target group of Prometheus's http_sd_config format. */
export interface SdGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** The target groups of the fleet under `prefix`, in host order. */
export function fleetSdGroups(entries: readonly HostEntry[], prefix: string): SdGroup[] {
  return entries
    .filter((e): e is HostEntry & { metrics: string } => e.metrics !== undefined)
    .sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0))
    .map((e) => ({ targets: [e.metrics], labels: { __metrics_path__: '/metrics', host: e.host, cluster: prefix } }));
}

/**
 * The address a host advertises for its --http: the address it listens on with the port it got;
 * a wildcard address (0.0.0.0, ::) names no reachable host, so the machine's host name stands in.
 */
export function advertisedHttp(listenHost: string, port: number, machine: string = hostname()): string {
  const host = listenHost === '' || listenHost === '0.0.0.0' || listenHost === '::' ? machine : listenHost;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
