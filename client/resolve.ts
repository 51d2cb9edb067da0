// Turns a parsed URI into the unix socket a client dials: a daemon's socket, a shim's socket
// given as a path, or a shim's socket read from its runtime state file (never guessed, except
// from the contract names when the state file exists but may not be read).
import { loadRuntimeState, type RuntimeState } from '../daemon/runtime-state.js';
// Value imports straight from their modules: the CLI's fast path bundles this file (client/dial.ts).
import { VirtqError } from '../protocol/errors.js';
import { shimSockets, shimStateFile } from '../protocol/paths.js';
import type { Layout, Target } from '../protocol/index.js';

/** Which of a server's sockets to dial: the API (read-write or read-only per the URI) or admin. */
export type Endpoint = 'api' | 'admin';

/** The socket to dial and what serves it. */
export interface ResolvedSocket {
  /** What serves the socket. */
  peer: 'daemon' | 'shim';
  socket: string;
  /** True when the socket is a read-only one. */
  readOnly: boolean;
  /** Added to NO_CONNECT messages: what is probably not running. */
  hint: string;
}

/** A shim's runtime state file (run/shims/NAME.json), as the one reader in daemon/ reads it. */
export type ShimStateFile = RuntimeState;
/** The sockets a shim's runtime state file records. */
export type ShimStateSockets = Pick<RuntimeState['sockets'], 'rw' | 'ro' | 'admin'>;
/** Reads a shim's state file; undefined when there is none. Other read errors are thrown as is. */
export const readShimState = loadRuntimeState;

/** The sockets of the shim running VM `name` under `layout`, from its state file. */
export async function shimSocketsOf(layout: Layout, name: string): Promise<ShimStateSockets> {
  const file = shimStateFile(layout, name);
  try {
    const state = await readShimState(file);
    if (state === undefined) throw new VirtqError('NO_DOMAIN', `no VM "${name}" under ${layout.runtime} (no readable state file ${file})`, { details: { stateFile: file } });
    return state.sockets;
  } catch (err) {
    // A read-only user may reach a 0666 socket whose 0600 state file it cannot read: the
    // contract names are the only other source (ARCHITECTURE.md, "Sockets").
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return shimSockets(layout, name);
    throw err;
  }
}

// `/x/web1.sock` -> `/x/web1-ro.sock` (or -admin): the sibling sockets of one shim.
function sibling(path: string, suffix: '-ro' | '-admin', uri: string): string {
  if (path.endsWith(`${suffix}.sock`)) return path;
  if (!path.endsWith('.sock')) throw new VirtqError('INVALID_ARG', `${uri}: cannot find the ${suffix.slice(1)} socket of ${path} (expected a path ending in .sock)`);
  return `${path.slice(0, -'.sock'.length).replace(/-(ro|admin)$/, '')}${suffix}.sock`;
}

/** The socket of a host daemon's URI (no file read: the CLI's fast path resolves with this alone). */
export function daemonSocket(target: Extract<Target, { kind: 'daemon' }>, endpoint: Endpoint): ResolvedSocket {
  const hint = `is ${target.daemon} running for ${target.uri}?`;
  return endpoint === 'admin'
    ? { peer: 'daemon', socket: target.admin, readOnly: false, hint }
    : { peer: 'daemon', socket: target.socket, readOnly: target.readOnly, hint };
}

/** Resolves the socket for `target` (any kind but embed). */
export async function resolveSocket(target: Exclude<Target, { kind: 'embed' }>, endpoint: Endpoint): Promise<ResolvedSocket> {
  switch (target.kind) {
    case 'remote':
      throw new VirtqError('INVALID_ARG', `${target.uri} is reached over TLS, not a unix socket`);
    case 'daemon':
      return daemonSocket(target, endpoint);
    case 'shim': {
      const hint = 'is the VM running?';
      if (endpoint === 'admin') return { peer: 'shim', socket: sibling(target.socket, '-admin', target.uri), readOnly: false, hint };
      return { peer: 'shim', socket: target.readOnly ? sibling(target.socket, '-ro', target.uri) : target.socket, readOnly: target.readOnly, hint };
    }
    case 'shim-name': {
      const sockets = await shimSocketsOf(target.layout, target.name);
      const hint = `is VM "${target.name}" running?`;
      if (endpoint === 'admin') return { peer: 'shim', socket: sockets.admin, readOnly: false, hint };
      return { peer: 'shim', socket: target.readOnly ? sockets.ro : sockets.rw, readOnly: target.readOnly, hint };
    }
    case 'ssh':
      throw new VirtqError('INVALID_ARG', `${target.uri} reaches another host through ssh and has no local socket`);
  }
}
