// Remote URIs over ssh (contract, docs/guide-remote-ssh.md): `qemu+ssh://[USER@]HOST[:PORT]/system`
// and the same for `storage+ssh:`, `secret+ssh:`, `network+ssh:`, `nodedev+ssh:`. Parsing is pure:
// it yields what the client passes to the system `ssh` and the local URI the far side's
// `virtq proxy` dials, which never carries the ssh-only options.
import { isAbsolute } from 'node:path';
import { VirtqError } from './errors.js';
import { DAEMONS, DAEMON_NAMES, daemonForScheme, type DaemonName } from './services.js';

/** A URI that reaches a daemon on another host through `ssh HOST virtq proxy URI`. */
export interface SshTarget {
  kind: 'ssh';
  daemon: DaemonName;
  host: string;
  user?: string;
  port?: number;
  /** The private key for `ssh -i` (`?keyfile=`). */
  keyfile?: string;
  /** The known_hosts file that host keys are checked against (`?known_hosts=`; default ssh's own). */
  knownHosts?: string;
  /** `?no_verify=1`: accept a host key not yet known (a changed one is still refused), as libvirt does. */
  noVerify: boolean;
  /** The far side's virtq command (`?command=`; default `virtq` on the remote PATH). */
  command: string;
  /** The URI the far side's proxy connects to: `qemu:///system?root=…` (with `mode=ro` when read-only). */
  remoteUri: string;
  readOnly: boolean;
  uri: string;
}

/** Query keys that only the client uses; every other known key travels to the far side. */
const SSH_KEYS = ['keyfile', 'known_hosts', 'no_verify', 'command', 'readonly'] as const;
const REMOTE_KEYS = ['root', 'mode', 'socket'] as const;

/** True for any `+ssh` scheme (protocol with its colon); parseSshUri refuses those of no daemon. */
export function isSshProtocol(protocol: string): boolean {
  return protocol.endsWith('+ssh:');
}

function flag(q: URLSearchParams, key: string, uri: string): boolean {
  const v = q.get(key);
  if (v === null) return false;
  if (v === '' || v === '1' || v === 'yes' || v === 'true') return true;
  if (v === '0' || v === 'no' || v === 'false') return false;
  throw new VirtqError('INVALID_ARG', `${uri}: ${key} must be 0 or 1`);
}

function decoded(text: string, uri: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new VirtqError('INVALID_ARG', `${uri}: bad percent-encoding in "${text}"`);
  }
}

function absolutePath(q: URLSearchParams, key: string, uri: string): string | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  if (!isAbsolute(v)) throw new VirtqError('INVALID_ARG', `${uri}: ${key} must be an absolute path`);
  return v;
}

/** Parses a `SCHEME+ssh://[USER@]HOST[:PORT]/system|session[?…]` URI; throws INVALID_ARG saying what is wrong. */
export function parseSshUri(url: URL, uri: string): SshTarget {
  const scheme = url.protocol.slice(0, -'+ssh:'.length);
  const daemon = daemonForScheme(scheme);
  if (daemon === undefined) {
    const known = DAEMON_NAMES.map((d) => `${DAEMONS[d].scheme}+ssh:`).join(', ');
    throw new VirtqError('INVALID_ARG', `${uri}: unknown scheme ${url.protocol} (expected one of ${known})`);
  }
  // ssh takes an IPv6 address bare: `qemu+ssh://[::1]/system` → `::1`.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  // A host starting with '-' would reach ssh as an option.
  if (host === '' || host.startsWith('-')) throw new VirtqError('INVALID_ARG', `${uri}: expected ${scheme}+ssh://[USER@]HOST[:PORT]/system`);
  const user = url.username === '' ? undefined : decoded(url.username, uri);
  if (user !== undefined && (user.startsWith('-') || /[\s@:]/.test(user))) throw new VirtqError('INVALID_ARG', `${uri}: "${user}" is not a user name`);
  if (url.password !== '') throw new VirtqError('INVALID_ARG', `${uri}: passwords are not taken in URIs; use ssh keys (?keyfile=PATH)`);
  const path = decodeURIComponent(url.pathname);
  if (path !== '/system' && path !== '/session') throw new VirtqError('INVALID_ARG', `${uri}: unknown path ${path} (expected /system or /session)`);
  const q = url.searchParams;
  for (const key of q.keys()) {
    if (!(SSH_KEYS as readonly string[]).includes(key) && !(REMOTE_KEYS as readonly string[]).includes(key)) {
      throw new VirtqError('INVALID_ARG', `${uri}: unknown option "${key}" (known: ${[...REMOTE_KEYS, ...SSH_KEYS].join(', ')})`);
    }
  }
  const mode = q.get('mode');
  if (mode !== null && mode !== 'ro' && mode !== 'rw') throw new VirtqError('INVALID_ARG', `${uri}: mode must be ro or rw`);
  const readOnly = mode === 'ro' || flag(q, 'readonly', uri);
  const remote = new URLSearchParams();
  const root = absolutePath(q, 'root', uri);
  const socket = absolutePath(q, 'socket', uri);
  if (root !== undefined) remote.set('root', root);
  if (socket !== undefined) remote.set('socket', socket);
  if (readOnly) remote.set('mode', 'ro');
  const rest = remote.toString().replace(/%2F/g, '/');
  const command = q.get('command') ?? 'virtq';
  if (command === '' || command.startsWith('-')) throw new VirtqError('INVALID_ARG', `${uri}: command must name the far side's virtq`);
  const target: SshTarget = {
    kind: 'ssh', daemon, host, noVerify: flag(q, 'no_verify', uri), command, readOnly, uri,
    remoteUri: `${scheme}://${path}${rest === '' ? '' : `?${rest}`}`,
  };
  if (user !== undefined) target.user = user;
  if (url.port !== '') target.port = Number(url.port);
  const keyfile = absolutePath(q, 'keyfile', uri);
  if (keyfile !== undefined) target.keyfile = keyfile;
  const knownHosts = absolutePath(q, 'known_hosts', uri);
  if (knownHosts !== undefined) target.knownHosts = knownHosts;
  return target;
}

/** The same remote host's URI for `daemon`: `qemu+ssh://h/system?keyfile=k` → `storage+ssh://h/system?keyfile=k` (a `socket` override is dropped). */
export function sshSiblingUri(url: URL, daemon: DaemonName): string {
  const copy = new URL(url.href);
  copy.searchParams.delete('socket');
  const query = copy.searchParams.toString().replace(/%2F/g, '/');
  const auth = copy.username === '' ? '' : `${copy.username}@`;
  return `${DAEMONS[daemon].scheme}+ssh://${auth}${copy.host}${copy.pathname}${query === '' ? '' : `?${query}`}`;
}
