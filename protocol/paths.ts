// Where a daemon keeps its files. `--root DIR` puts everything under DIR; otherwise the mode
// decides (system: FHS paths, session: XDG paths). Socket names under the runtime dir are
// contract (ARCHITECTURE.md, "Sockets").
import { join } from 'node:path';
import { VirtqError } from './errors.js';
import { MAX_SOCKET_PATH } from './unix-listener.js';
import type { DaemonName } from './services.js';
import { sha256Hex } from './node-crypto.js';

/** The directories of one virtq instance. */
export interface Layout {
  config: string;
  state: string;
  runtime: string;
  log: string;
}

/** The layout under an explicit root. */
export function rootLayout(root: string): Layout {
  return { config: join(root, 'etc'), state: join(root, 'lib'), runtime: join(root, 'run'), log: join(root, 'log') };
}

/** The layout of qemu:///system without a root. */
export function systemLayout(): Layout {
  return { config: '/etc/virtq', state: '/var/lib/virtq', runtime: '/run/virtq', log: '/var/log/virtq' };
}

/** The layout of qemu:///session for the user whose environment is `env`. */
export function sessionLayout(env: NodeJS.ProcessEnv): Layout {
  const home = env['HOME'] ?? '/tmp';
  const runtimeBase = env['XDG_RUNTIME_DIR'] ?? join(env['TMPDIR'] ?? '/tmp', `virtq-${env['USER'] ?? 'user'}`);
  const data = env['XDG_DATA_HOME'] ?? join(home, '.local', 'share');
  const config = env['XDG_CONFIG_HOME'] ?? join(home, '.config');
  return { config: join(config, 'virtq'), state: join(data, 'virtq'), runtime: join(runtimeBase, 'virtq'), log: join(data, 'virtq', 'log') };
}

/** A daemon's three sockets under the runtime dir (contract): `NAME.sock`, `NAME-ro.sock`, `NAME-admin.sock`. */
export function serviceSockets(layout: Layout, daemon: DaemonName): { rw: string; ro: string; admin: string } {
  return {
    rw: join(layout.runtime, `${daemon}.sock`),
    ro: join(layout.runtime, `${daemon}-ro.sock`),
    admin: join(layout.runtime, `${daemon}-admin.sock`),
  };
}

/** The aggregator's sockets (`serviceSockets(layout, 'virtqemud')`). */
export function daemonSockets(layout: Layout): { rw: string; ro: string; admin: string } {
  return serviceSockets(layout, 'virtqemud');
}

/** The directory holding shims' sockets and state files. */
export function shimDir(layout: Layout): string {
  return join(layout.runtime, 'shims');
}

/** The shim's runtime state file (a regular file: no length limit). */
export function shimStateFile(layout: Layout, name: string): string {
  return join(shimDir(layout), `${name}.json`);
}

/**
 * The shim's sockets. Where `run/shims/NAME-admin.sock` would pass the unix socket limit, all
 * three get a short name from a hash of the VM name; the state file records the real paths.
 */
export function shimSockets(layout: Layout, name: string): { rw: string; ro: string; admin: string; monitor: string; console: string; qmpProxy: string } {
  const dir = shimDir(layout);
  const longest = join(dir, `${name}-console.sock`);
  const base = Buffer.byteLength(longest) <= MAX_SOCKET_PATH
    ? name
    : `h-${sha256Hex(name).slice(0, 16)}`;
  const paths = {
    rw: join(dir, `${base}.sock`),
    ro: join(dir, `${base}-ro.sock`),
    admin: join(dir, `${base}-admin.sock`),
    monitor: join(dir, `${base}-qmp.sock`),
    console: join(dir, `${base}-console.sock`),
    // The shared QMP socket (contract); its longer suffix takes the short name alone when only it would not fit.
    qmpProxy: join(dir, `${base}-qmp-proxy.sock`),
  };
  if (Buffer.byteLength(paths.qmpProxy) > MAX_SOCKET_PATH) {
    paths.qmpProxy = join(dir, `h-${sha256Hex(name).slice(0, 16)}-qmp-proxy.sock`);
  }
  if (Buffer.byteLength(paths.console) > MAX_SOCKET_PATH || Buffer.byteLength(paths.qmpProxy) > MAX_SOCKET_PATH) {
    throw new VirtqError('INVALID_ARG', `runtime directory ${dir} is too long for unix sockets even with hashed names`);
  }
  return paths;
}
