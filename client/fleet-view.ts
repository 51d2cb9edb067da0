// The fleet view of an etcd fleet (docs/guide-cluster.md): every host and every VM, read from
// etcd (host entries under their leases, name claims) and from each live host's virtqemud over
// the read-only socket its entry records. A host that does not answer is shown as such; its
// VMs are still listed from their claims, with the state unknown.
import { Type, type Static } from '@sinclair/typebox';
import {
  RpcClient, VirtqError, typedClient, virtqProgram,
  type Clock, type DomainRow,
} from '../protocol/index.js';
import { EtcdReader } from './etcd-reader.js';
import type { ClusterTls } from '../protocol/etcd-options.js';
import { clusterKeys, parseClaim, parseClusterEndpoints, parseClusterUri, parseGoneEntry, parseHostEntry, type ClusterUri, type GoneEntry, type HostEntry } from '../protocol/cluster.js';

/** One host of the fleet as the view shows it. */
export const FleetHost = Type.Object({
  host: Type.String({ description: 'the host id (virtqemud --cluster-host)' }),
  state: Type.Union([Type.Literal('up'), Type.Literal('unreachable'), Type.Literal('no-lease'), Type.Literal('gone')], {
    description: 'up: its lease is live and its virtqemud answered; unreachable: its lease is live but its virtqemud did not answer; no-lease: it holds claims but its lease expired (stopped, partitioned or gone: its names stay held); gone: it stayed without its lease past --cluster-reclaim-after and its names were freed',
  }),
  vms: Type.Integer({ description: 'names it holds in etcd' }),
  pid: Type.Optional(Type.Integer({ description: 'its virtqemud\'s pid' })),
  socket: Type.Optional(Type.String({ description: 'its virtqemud\'s socket' })),
  since: Type.Optional(Type.String({ description: 'when it (re)joined, ISO 8601; for a gone host, when its names were freed' })),
  conflicts: Type.Integer({ description: 'local VMs whose name another host holds (reported, never overwritten)' }),
});
export type FleetHost = Static<typeof FleetHost>;

/** One VM of the fleet. */
export const FleetDomain = Type.Object({
  host: Type.String({ description: 'the host holding its name' }),
  name: Type.String(),
  uuid: Type.String(),
  state: Type.String({ description: 'as its host reports it; "unknown" when the host does not answer' }),
  persistent: Type.Optional(Type.Boolean()),
});
export type FleetDomain = Static<typeof FleetDomain>;

/** The whole view. */
export const FleetView = Type.Object({ hosts: Type.Array(FleetHost), domains: Type.Array(FleetDomain) });
export type FleetView = Static<typeof FleetView>;

/**
 * Name claims per etcd request: a claim is at most ~700 bytes (an 8-segment prefix, a
 * 64-character name, a 63-character host), so a page stays under ~35 MiB and a fleet of up to
 * 50,000 VMs is read in one request (etcd-reader.ts sets no receive limit; etcd's send limit is 2 GiB).
 */
const CLAIMS_PAGE = 50_000;

/** Reads `etcd://HOST:PORT,.../PREFIX` or `cluster:///?etcd=HOST:PORT,...&prefix=PREFIX`. */
export function parseFleetUri(uri: string): ClusterUri {
  if (!uri.startsWith('cluster:')) return parseClusterUri(uri);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new VirtqError('INVALID_ARG', `not a URI: "${uri.slice(0, 200)}" (expected cluster:///?etcd=HOST:PORT,...&prefix=PREFIX)`);
  }
  const etcd = url.searchParams.get('etcd');
  const prefix = url.searchParams.get('prefix');
  if (url.host !== '' || etcd === null || prefix === null) throw new VirtqError('INVALID_ARG', `${uri.slice(0, 200)}: expected cluster:///?etcd=HOST:PORT,...&prefix=PREFIX`);
  return parseClusterEndpoints(etcd, prefix, uri.slice(0, 200));
}

/**
 * Reads the fleet: the host entries first (a small range), then every live host's listing in
 * parallel (each within `hostTimeoutMs`) while the name claims are read from etcd beside them;
 * no call per VM.
 */
export async function readFleet(cluster: ClusterUri, clock: Clock, opts: { tls?: ClusterTls; hostTimeoutMs?: number } = {}): Promise<FleetView> {
  const hostTimeoutMs = opts.hostTimeoutMs ?? 3000;
  // Read with the small reader of etcd-reader.ts, not etcd3: see there why.
  const etcd = new EtcdReader({ endpoints: cluster.endpoints, callMs: 5000, ...(opts.tls === undefined ? {} : { tls: opts.tls }) }, clock);
  const keys = clusterKeys(cluster.prefix);
  const unavailable = (err: unknown): VirtqError => new VirtqError('CLUSTER_UNAVAILABLE', `the etcd fleet at ${cluster.endpoints.join(',')} did not answer (${err instanceof Error ? err.message : String(err)}): the fleet cannot be listed now`, { cause: err });
  const entries = new Map<string, HostEntry>();
  const listings = new Map<string, Map<string, DomainRow>>();
  let claims: Array<[string, string]>;
  let goneValues: Array<[string, string]>;
  try {
    const claimsRead = etcd.rangePrefix(keys.namesDir, CLAIMS_PAGE);
    claimsRead.catch(() => undefined);
    const goneRead = etcd.rangePrefix(keys.goneDir);
    goneRead.catch(() => undefined);
    const fanOut = etcd.rangePrefix(keys.hostsDir).then((hostValues) => {
      for (const [, v] of hostValues) {
        const e = parseHostEntry(v);
        if (e !== undefined) entries.set(e.host, e);
      }
      return Promise.all([...entries.values()].map(async (e) => {
        const rows = await listHost(e.roSocket, clock, hostTimeoutMs);
        if (rows !== undefined) listings.set(e.host, new Map(rows.map((r) => [r.name, r])));
      }));
    }, (err: unknown) => { throw unavailable(err); });
    // Whichever fails first is reported; the other must not be left unhandled (it would end the process).
    fanOut.catch(() => undefined);
    claims = await claimsRead.catch((err: unknown) => { throw unavailable(err); });
    await fanOut;
    goneValues = await goneRead.catch((err: unknown) => { throw unavailable(err); });
  } finally {
    etcd.close();
  }
  const domains: FleetDomain[] = [];
  const held = new Map<string, number>();
  for (const [key, value] of claims) {
    const claim = parseClaim(value);
    if (claim === undefined) continue;
    const name = key.slice(keys.namesDir.length);
    held.set(claim.host, (held.get(claim.host) ?? 0) + 1);
    const row = listings.get(claim.host)?.get(name);
    domains.push({ host: claim.host, name, uuid: claim.uuid, state: row?.state ?? 'unknown', ...(row === undefined ? {} : { persistent: row.persistent }) });
  }
  const gone = new Map<string, GoneEntry>();
  for (const [, v] of goneValues) {
    const g = parseGoneEntry(v);
    if (g !== undefined) gone.set(g.host, g);
  }
  const hosts: FleetHost[] = [...new Set([...entries.keys(), ...held.keys(), ...gone.keys()])].map((host) => {
    const e = entries.get(host);
    const vms = held.get(host) ?? 0;
    const g = gone.get(host);
    // A gone host that rejoined (an entry) or claims again is what it is now, not gone.
    if (e === undefined && vms === 0 && g !== undefined) return { host, state: 'gone', vms, since: new Date(g.at).toISOString(), conflicts: 0 };
    if (e === undefined) return { host, state: 'no-lease', vms, conflicts: 0 };
    return { host, state: listings.has(host) ? 'up' : 'unreachable', vms, pid: e.pid, socket: e.socket, since: new Date(e.since).toISOString(), conflicts: e.conflicts.length };
  });
  // One collator for every comparison: String#localeCompare builds one per call (most of the sort of 10,000 rows).
  const collator = new Intl.Collator();
  const byHostName = (a: { host: string; name?: string }, b: { host: string; name?: string }): number => collator.compare(a.host, b.host) || collator.compare(a.name ?? '', b.name ?? '');
  return { hosts: hosts.sort(byHostName), domains: domains.sort(byHostName) };
}

async function listHost(socket: string, clock: Clock, timeoutMs: number): Promise<DomainRow[] | undefined> {
  let rpc: RpcClient | undefined;
  try {
    rpc = await RpcClient.connect(socket, { clock, defaultTimeoutMs: timeoutMs });
    return (await typedClient(virtqProgram, rpc).listDomains({})).domains;
  } catch {
    return undefined;
  } finally {
    rpc?.close();
  }
}
