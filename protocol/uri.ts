// Connection URIs (contract, see ARCHITECTURE.md "Modes" and "Secondary daemons"): which daemon
// or shim a client talks to and over which socket. `qemu:` reaches virtqemud (or embed mode),
// `storage:`, `secret:`, `network:` and `nodedev:` their daemons under the same layouts.
// Parsing is pure; the client library turns a target into a socket.
import { isAbsolute } from 'node:path';
import { NAME_PATTERN } from './names.js';
import { VirtqError } from './errors.js';
import { rootLayout, serviceSockets, sessionLayout, systemLayout, type Layout } from './paths.js';
import { DAEMONS, DAEMON_NAMES, daemonForScheme, type DaemonName } from './services.js';
import { isSshProtocol, parseSshUri, sshSiblingUri, type SshTarget } from './ssh-uri.js';

export { type SshTarget } from './ssh-uri.js';
import { parseTlsUri, type RemoteTarget } from './uri-tls.js';

/** Where a URI points. */
export type Target =
  | { kind: 'daemon'; daemon: DaemonName; layout: Layout; socket: string; readOnly: boolean; admin: string; uri: string }
  | { kind: 'embed'; root: string; layout: Layout; uri: string }
  | { kind: 'shim'; socket: string; readOnly: boolean; uri: string }
  | { kind: 'shim-name'; name: string; layout: Layout; readOnly: boolean; uri: string }
  | SshTarget
  | RemoteTarget;

const SCHEMES = ['qemu+shim', 'shim', ...DAEMON_NAMES.map((d) => DAEMONS[d].scheme)].map((s) => `${s}:`).join(', ');

/** What parseUri reads of a local URI: its scheme with the colon, host, decoded path and query. */
export interface LocalParts {
  readonly protocol: string;
  readonly host: string;
  readonly path: string;
  readonly query: { get(key: string): string | null };
}

/**
 * A plain local URI: `SCHEME:///WORD`, then at most `root`, `socket` and `mode` in characters that
 * neither the URL parser nor form decoding change (no `%`, `+`, dot segments, spaces or case).
 */
const PLAIN_URI = /^([a-z]+:)\/\/\/([a-z]+)(?:\?((?:root|socket|mode)=[\w/.~,:@-]*(?:&(?:root|socket|mode)=[\w/.~,:@-]*)*))?$/;

/**
 * The parts of a plain local URI (qemu:///system, qemu:///session?root=/r, ...) split without
 * `new URL`, exactly as the URL parser and URLSearchParams give them (a repeated key: its first
 * value); undefined for any other URI, which the URL parser then reads. The URL parser and its
 * searchParams were ~2 M instructions of a `virtq list`'s ~123 M (bench/RESULTS.md, issue 15,
 * session 13), and every CLI command parses its URI.
 */
export function plainParts(uri: string): LocalParts | undefined {
  const m = PLAIN_URI.exec(uri);
  if (m === null) return undefined;
  const values = new Map<string, string>();
  for (const pair of m[3]?.split('&') ?? []) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    if (!values.has(key)) values.set(key, pair.slice(eq + 1));
  }
  return { protocol: m[1] ?? '', host: '', path: `/${m[2] ?? ''}`, query: { get: (key) => values.get(key) ?? null } };
}

/** Parses a virtq URI; throws INVALID_ARG saying what is wrong. */
export function parseUri(uri: string, env: NodeJS.ProcessEnv = {}): Target {
  let parts = plainParts(uri);
  if (parts === undefined) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new VirtqError('INVALID_ARG', `not a URI: "${uri}" (try qemu:///system or qemu:///session)`);
    }
    // `qemu+ssh://HOST/system` and the other daemons' `+ssh` URIs: protocol/ssh-uri.ts.
    if (isSshProtocol(url.protocol)) return parseSshUri(url, uri);
    const remote = url.protocol === 'cluster:' ? undefined : parseTlsUri(url, uri, env);
    if (remote !== undefined) return remote;
    parts = { protocol: url.protocol, host: url.host, path: decodeURIComponent(url.pathname), query: url.searchParams };
  }
  return localTarget(parts, uri, env);
}

/** The target of a URI that is neither ssh nor TLS. */
function localTarget(parts: LocalParts, uri: string, env: NodeJS.ProcessEnv): Target {
  if (parts.protocol === 'cluster:') throw new VirtqError('INVALID_ARG', `${uri}: a cluster: URI names an etcd fleet, read by \`virtq fleet\` and \`virtq hosts\`; reach one host with qemu:///system on it`);
  const q = parts.query;
  const readOnly = q.get('mode') === 'ro';
  const mode = q.get('mode');
  if (mode !== null && mode !== 'ro' && mode !== 'rw') throw new VirtqError('INVALID_ARG', `${uri}: mode must be ro or rw`);
  const root = q.get('root');
  if (root !== null && !isAbsolute(root)) throw new VirtqError('INVALID_ARG', `${uri}: root must be an absolute path`);
  const socketOverride = q.get('socket');
  if (parts.host !== '') {
    const scheme = parts.protocol.slice(0, -1);
    throw new VirtqError('INVALID_ARG', scheme.includes('+')
      ? `${uri}: remote hosts are not supported over ${scheme}; use SCHEME+ssh://HOST/system or SCHEME+tls://HOST/system (e.g. qemu+ssh://, qemu+tls://)`
      : `${uri}: no host in a local URI; use ${scheme}:///... here, or ${scheme}+ssh://HOST/system or ${scheme}+tls://HOST/system for a remote one`);
  }
  const path = parts.path;

  if (parts.protocol === 'qemu+shim:') {
    if (!isAbsolute(path) || path === '/') throw new VirtqError('INVALID_ARG', `${uri}: expected qemu+shim:///PATH/TO/NAME.sock`);
    return { kind: 'shim', socket: socketOverride ?? path, readOnly, uri };
  }
  if (parts.protocol === 'shim:') {
    const name = path.replace(/^\//, '');
    if (name === '' || name.includes('/')) throw new VirtqError('INVALID_ARG', `${uri}: expected shim:///NAME?root=DIR`);
    // The name becomes the state file's path: only a valid VM name may.
    if (!new RegExp(NAME_PATTERN).test(name)) throw new VirtqError('INVALID_ARG', `${uri}: "${name}" is not a valid VM name`);
    const layout = root === null ? systemLayout() : rootLayout(root);
    if (socketOverride !== null) return { kind: 'shim', socket: socketOverride, readOnly, uri };
    return { kind: 'shim-name', name, layout, readOnly, uri };
  }
  const daemon = daemonForScheme(parts.protocol.slice(0, -1));
  if (daemon === undefined) throw new VirtqError('INVALID_ARG', `${uri}: unknown scheme ${parts.protocol} (expected one of ${SCHEMES})`);

  if (path === '/embed' && daemon === 'virtqemud') {
    if (root === null) throw new VirtqError('INVALID_ARG', `${uri}: embed mode needs ?root=DIR`);
    return { kind: 'embed', root, layout: rootLayout(root), uri };
  }
  let layout: Layout;
  if (path === '/system') layout = root === null ? systemLayout() : rootLayout(root);
  else if (path === '/session') layout = root === null ? sessionLayout(env) : rootLayout(root);
  else throw new VirtqError('INVALID_ARG', `${uri}: unknown path ${path} (expected /system or /session${daemon === 'virtqemud' ? ' or /embed' : ''})`);
  const sockets = serviceSockets(layout, daemon);
  const socket = socketOverride ?? (readOnly ? sockets.ro : sockets.rw);
  return { kind: 'daemon', daemon, layout, socket, readOnly, admin: sockets.admin, uri };
}

/**
 * The URI of `daemon` on the same host as `uri`: `qemu:///system?root=/r` → `storage:///system?root=/r`
 * (same path, root and mode; a `socket` override names another daemon's socket and is dropped).
 * A URI of `daemon` itself is returned as given. Embed and shim URIs name no host daemon.
 */
export function siblingUri(uri: string, daemon: DaemonName, env: NodeJS.ProcessEnv = {}): string {
  const target = parseUri(uri, env);
  if (target.kind === 'ssh') return sshSiblingUri(new URL(uri), daemon);
  if (target.kind === 'remote') {
    if (target.daemon === daemon) return uri;
    const pki = new URL(uri).searchParams.get('pkipath');
    return `${DAEMONS[daemon].scheme}+tls://${target.host.includes(':') ? `[${target.host}]` : target.host}/system${pki === null ? '' : `?pkipath=${pki}`}`;
  }
  if (target.kind !== 'daemon') {
    throw new VirtqError('INVALID_ARG', `${uri} names no host daemon; use ${DAEMONS[daemon].scheme}:///system (or ?root=DIR) for ${daemon}`);
  }
  if (target.daemon === daemon) return uri;
  const url = new URL(uri);
  const query = new URLSearchParams();
  for (const key of ['root', 'mode']) {
    const value = url.searchParams.get(key);
    if (value !== null) query.set(key, value);
  }
  const rest = query.toString();
  return `${DAEMONS[daemon].scheme}://${decodeURIComponent(url.pathname)}${rest === '' ? '' : `?${rest.replace(/%2F/g, '/')}`}`;
}

/**
 * The default URI from the environment and uid alone: VIRTQ_DEFAULT_URI, else session for non-root
 * and system for root. Clients use `resolveDefaultUri` (client/default-uri.ts), which also reads the
 * user's client.json.
 */
export function defaultUri(env: NodeJS.ProcessEnv, uid: number): string {
  return env['VIRTQ_DEFAULT_URI'] ?? (uid === 0 ? 'qemu:///system' : 'qemu:///session');
}
