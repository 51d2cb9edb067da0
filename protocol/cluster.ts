// The etcd fleet's shared vocabulary (docs/decisions/0024): the --cluster URI and the keys and
// values every virtqemud of a fleet and the fleet view read and write under one prefix.
//   PREFIX/hosts/HOST  -> HostEntry, bound to the host's lease (gone when the host stops heartbeating)
//   PREFIX/names/NAME  -> NameClaim, no lease: held until the host that claimed it releases it
//   PREFIX/uuids/UUID  -> UuidClaim, no lease, written and deleted with the name claim
//   PREFIX/gone/HOST   -> GoneEntry, written when a host gone past --cluster-reclaim-after had its names freed
// Claims outlive the lease on purpose: a host that stops heartbeating may still run its QEMUs, so
// its names are never handed to another host until it (or an operator) releases them.
import { NAME_PATTERN } from './definition.js';
import { VirtqError } from './errors.js';

/** A parsed `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. */
export interface ClusterUri {
  /** host:port of each etcd member, as given. */
  endpoints: string[];
  /** The key prefix, without slashes at either end. */
  prefix: string;
}

const ENDPOINT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):(\d{1,5})$/;
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?:\/[A-Za-z0-9][A-Za-z0-9._-]{0,63}){0,7}$/;
/** Host ids name a key: the VM-name alphabet, never a slash. */
export const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Parses the endpoints and prefix of a cluster; throws INVALID_ARG naming what is wrong. */
export function parseClusterEndpoints(hosts: string, prefix: string, shown: string): ClusterUri {
  const endpoints = hosts.split(',');
  if (endpoints.length > 16) throw new VirtqError('INVALID_ARG', `${shown}: at most 16 etcd endpoints`);
  for (const e of endpoints) {
    const port = ENDPOINT.exec(e)?.[1];
    if (port === undefined || Number(port) < 1 || Number(port) > 65535) throw new VirtqError('INVALID_ARG', `${shown}: "${e}" is not an etcd endpoint HOST:PORT`);
  }
  const p = prefix.replace(/^\/+|\/+$/g, '');
  if (!PREFIX.test(p)) throw new VirtqError('INVALID_ARG', `${shown}: the key prefix "${prefix}" must be 1-8 segments of letters, digits, . _ -`);
  return { endpoints, prefix: p };
}

/** Parses `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. */
export function parseClusterUri(uri: string): ClusterUri {
  const m = /^etcd:\/\/([^/?#]+)\/([^?#]*)$/.exec(uri);
  if (m === null) throw new VirtqError('INVALID_ARG', `--cluster ${JSON.stringify(uri.slice(0, 200))}: expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX`);
  return parseClusterEndpoints(m[1] as string, m[2] as string, `--cluster ${uri}`);
}

/** What a host publishes under its lease. */
export interface HostEntry {
  host: string;
  pid: number;
  /** virtqemud's read-write and read-only sockets on that host (the fleet view lists through them). */
  socket: string;
  roSocket: string;
  /** When it (re)joined, ms since the epoch. */
  since: number;
  /** HOST:PORT of its virtqemud's --http (Prometheus scrapes /metrics there); absent without --http. */
  metrics?: string;
  /** Local VMs whose name or UUID another host claimed while this one was away: reported, never overwritten. */
  conflicts: Array<{ name: string; uuid: string; heldBy: string }>;
}

/** What is left of a host whose names were freed after it stayed without its lease (aggregator/cluster/host-reaper.ts). */
export interface GoneEntry {
  host: string;
  /** When its names were freed (ms since the epoch), how many, and by which host. */
  at: number;
  released: number;
  by: string;
}

/** Reads a gone-host record; undefined when it is not one. */
export function parseGoneEntry(text: string): GoneEntry | undefined {
  try {
    const v = JSON.parse(text) as Partial<GoneEntry>;
    return typeof v.host === 'string' && typeof v.at === 'number' ? { host: v.host, at: v.at, released: typeof v.released === 'number' ? v.released : 0, by: typeof v.by === 'string' ? v.by : '?' } : undefined;
  } catch {
    return undefined;
  }
}

/** The value of a name claim. */
export interface NameClaim {
  host: string;
  uuid: string;
}

/** The value of a UUID claim. */
export interface UuidClaim {
  host: string;
  name: string;
}

/** The keys of one fleet. */
export function clusterKeys(prefix: string): {
  hostsDir: string; namesDir: string; uuidsDir: string; goneDir: string;
  host(id: string): string; name(name: string): string; uuid(uuid: string): string; gone(id: string): string;
} {
  return {
    hostsDir: `${prefix}/hosts/`,
    goneDir: `${prefix}/gone/`,
    gone: (id) => `${prefix}/gone/${id}`,
    namesDir: `${prefix}/names/`,
    uuidsDir: `${prefix}/uuids/`,
    host: (id) => `${prefix}/hosts/${id}`,
    name: (name) => `${prefix}/names/${name}`,
    uuid: (uuid) => `${prefix}/uuids/${uuid.toLowerCase()}`,
  };
}

/** The exact bytes of a name claim: compared byte for byte when it is released. */
export function nameClaimValue(host: string, uuid: string): string {
  return JSON.stringify({ host, uuid: uuid.toLowerCase() } satisfies NameClaim);
}

/** The exact bytes of a UUID claim. */
export function uuidClaimValue(host: string, name: string): string {
  return JSON.stringify({ host, name } satisfies UuidClaim);
}

/** Reads a claim or host value written by another process; undefined when it is not one. */
export function parseClaim(text: string): NameClaim | undefined {
  try {
    const v = JSON.parse(text) as Partial<NameClaim>;
    return typeof v.host === 'string' && typeof v.uuid === 'string' ? { host: v.host, uuid: v.uuid } : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a host entry; undefined when it is not one. */
export function parseHostEntry(text: string): HostEntry | undefined {
  try {
    const v = JSON.parse(text) as Partial<HostEntry>;
    if (typeof v.host !== 'string' || typeof v.socket !== 'string' || typeof v.roSocket !== 'string' || typeof v.pid !== 'number') return undefined;
    return {
      host: v.host, pid: v.pid, socket: v.socket, roSocket: v.roSocket, since: typeof v.since === 'number' ? v.since : 0, conflicts: Array.isArray(v.conflicts) ? v.conflicts : [],
      ...(typeof v.metrics === 'string' ? { metrics: v.metrics } : {}),
    };
  } catch {
    return undefined;
  }
}

/** True when `name` may be a VM name (claims of other names are never written). */
export function isClaimableName(name: string): boolean {
  return new RegExp(NAME_PATTERN).test(name);
}
