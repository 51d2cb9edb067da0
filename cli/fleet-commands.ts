// `virtq fleet` and `virtq hosts`: the fleet view of an etcd fleet of virtqemuds
// (docs/guide-cluster.md). The fleet is named by --cluster, else by -c cluster:///?etcd=...&prefix=P,
// else by $VIRTQ_CLUSTER; it is read from etcd and from each live host's virtqemud.
import { VirtqError } from '../protocol/index.js';
import { FleetDomain, FleetHost, parseFleetUri, readFleet } from '../client/fleet-view.js';
import { clusterTls, type ClusterTls } from '../protocol/etcd-options.js';
import { Type } from '@sinclair/typebox';
import type { CommandSpec, RunContext } from './command.js';
import type { Input } from './derive.js';
import { table } from './render.js';

export const CLUSTER_OPTION = {
  flags: '--cluster <uri>', key: 'cluster',
  description: 'the fleet: etcd://HOST:PORT[,HOST:PORT...]/PREFIX or cluster:///?etcd=HOST:PORT,...&prefix=PREFIX (default: -c when it is a cluster: URI, else $VIRTQ_CLUSTER)',
} as const;
// TLS to etcd, as virtqemud's options of the same names.
export const TLS_OPTIONS = [
  { flags: '--cluster-cacert <file>', key: 'clusterCacert', description: 'talk TLS to etcd, checking its certificates against this CA (PEM)' },
  { flags: '--cluster-cert <file>', key: 'clusterCert', description: 'client certificate for etcd (with --cluster-key; when etcd runs --client-cert-auth)' },
  { flags: '--cluster-key <file>', key: 'clusterKey', description: 'the key of --cluster-cert' },
] as const;

export function tlsOf(input: Input): ClusterTls | undefined {
  const opt = (k: string): string | undefined => (typeof input.opts[k] === 'string' ? input.opts[k] : undefined);
  return clusterTls(opt('clusterCacert'), opt('clusterCert'), opt('clusterKey'));
}

/** The fleet a command names: --cluster, else -c cluster:..., else $VIRTQ_CLUSTER. */
export function fleetOf(ctx: RunContext, input: Input): string {
  const given = input.opts['cluster'];
  if (typeof given === 'string') return given;
  if (ctx.uri.startsWith('cluster:')) return ctx.uri;
  const env = ctx.io.env['VIRTQ_CLUSTER'];
  if (env !== undefined && env !== '') return env;
  throw new VirtqError('INVALID_ARG', 'no fleet named: give --cluster etcd://HOST:PORT/PREFIX, -c cluster:///?etcd=HOST:PORT&prefix=PREFIX or $VIRTQ_CLUSTER');
}

/** `virtq fleet` and `virtq hosts`. */
export function fleetCommands(): CommandSpec[] {
  return [{
    name: 'fleet', program: 'virtq',
    description: 'List every VM of every host of an etcd fleet (virtqemud --cluster), with the host holding its name.',
    arguments: [], options: [CLUSTER_OPTION, ...TLS_OPTIONS],
    output: Type.Array(FleetDomain),
    notes: 'A VM whose host does not answer (or whose host lease expired) is listed from its claim in etcd with state "unknown": its name stays held.',
    run: async (ctx, input) => {
      const tls = tlsOf(input);
      const view = await readFleet(parseFleetUri(fleetOf(ctx, input)), ctx.io.clock, tls === undefined ? {} : { tls });
      if (ctx.json) ctx.printJson(view.domains);
      else ctx.print(table(['Host', 'Name', 'UUID', 'State'], view.domains.map((d) => [d.host, d.name, d.uuid, d.state])));
    },
  }, {
    name: 'hosts', program: 'virtq',
    description: 'List the hosts of an etcd fleet with their state: up, unreachable (lease live, virtqemud silent), no-lease (names held, lease expired) or gone (names freed after --cluster-reclaim-after).',
    arguments: [], options: [CLUSTER_OPTION, ...TLS_OPTIONS],
    output: Type.Array(FleetHost),
    run: async (ctx, input) => {
      const tls = tlsOf(input);
      const view = await readFleet(parseFleetUri(fleetOf(ctx, input)), ctx.io.clock, tls === undefined ? {} : { tls });
      if (ctx.json) ctx.printJson(view.hosts);
      else ctx.print(table(['Host', 'State', 'VMs', 'Pid', 'Since', 'Conflicts'], view.hosts.map((h) => [h.host, h.state, String(h.vms), h.pid === undefined ? '-' : String(h.pid), h.since ?? '-', String(h.conflicts)])));
    },
  }];
}
