// Opening connections from URIs: the default URI, socket resolution per mode, NO_CONNECT errors
// that name the socket tried, and the admin connection to a daemon's or a shim's admin socket.
import {
  RpcClient, VirtqError, adminProgram, parseUri, systemClock, typedClient,
  type AdminProgram, type CallOptions, type Clock, type TypedClient,
} from '../protocol/index.js';
import { Connection } from './connection.js';
import { EmbedRouter, defaultShimCommand } from './embed.js';
import { resolveSocket, type Endpoint, type ResolvedSocket } from './resolve.js';
import { SocketRouter } from './router.js';
import { resolveDefaultUri } from './default-uri.js';
import { DEFAULT_CALL_TIMEOUT_MS, dialResolved } from './dial.js';
import { dialSsh } from './ssh-transport.js';
import { dialTls } from './tls-transport.js';

/** Options of `connect` and `connectAdmin`. */
export interface ConnectOptions {
  /** Deadline of each call that sets none, in ms (default 120 000). */
  timeoutMs?: number;
  /** Environment for the default URI and session paths (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** The user id that picks the default URI (default `process.getuid()`). */
  uid?: number;
  /** The clock for deadlines (default the real one). */
  clock?: Clock;
  /** Embedded mode: the command that runs virtq-shim (default: the one installed beside this library). */
  shimCommand?: readonly string[];
  /** Embedded mode: how long a new VM's shim may take to report it running, in ms (default 120 000). */
  startTimeoutMs?: number;
  /**
   * Embedded mode: the virtstoraged and virtsecretd its VMs' volume and encrypted disks use
   * (default: the host's, `storage:///system` and `secret:///system` for root, else session);
   * `storage:///system?root=DIR` for daemons of the application's own under DIR.
   */
  storageUri?: string;
  secretUri?: string;
  /** Embedded mode: the virtnetworkd its VMs' network interfaces get ports from (default: the host's, as above). */
  networkUri?: string;
  /**
   * Embedded mode: keep this many shims started ahead (default 0: none; at most 16), so a plain
   * create skips Node's start (docs/decisions/0026-warm-shim-pool.md). Each idle one costs a
   * shim's memory; closing the connection kills them, and they exit if this process dies.
   */
  shimPool?: number;
}

/** The embed pool's size: a whole number up to 16 (as virtqemud's --shim-pool). */
function embedPoolSize(n: number | undefined): number {
  if (n === undefined) return 0;
  if (!Number.isInteger(n) || n < 0 || n > 16) throw new VirtqError('INVALID_ARG', `shimPool must be a whole number from 0 to 16, not ${String(n)} (each idle shim holds a shim's memory)`);
  return n;
}

// The host's own daemon of `daemon`'s kind, for embedded VMs: the system one for root, else the session one.
function hostDaemonUri(scheme: 'storage' | 'secret' | 'network', opts: ConnectOptions): string {
  return `${scheme}:///${(opts.uid ?? process.getuid?.() ?? 0) === 0 ? 'system' : 'session'}`;
}

/** A connection to a daemon's or a shim's admin socket. */
export interface AdminConnection {
  /** The URI this connection was opened with. */
  readonly uri: string;
  /** The admin socket dialled. */
  readonly socket: string;
  /** What serves it. */
  readonly peer: 'daemon' | 'shim';
  /** The `admin` program's procedures as typed methods: `adm.admin.serverInfo({})`. */
  readonly admin: TypedClient<AdminProgram>;
  /** Calls an admin procedure by name with unchecked argument types (for generic callers such as the CLI). */
  call(procedure: keyof AdminProgram['procs'], args: unknown, opts?: CallOptions): Promise<unknown>;
  /** Closes the connection. */
  close(): void;
}

export { resolveDefaultUri } from './default-uri.js';

/**
 * Connects to virtq at `uri` (default: `resolveDefaultUri()`):
 * `qemu:///system`, `qemu:///session`, `qemu:///system?root=DIR` (virtqemud),
 * `qemu+shim:///PATH/TO/NAME.sock`, `shim:///NAME?root=DIR` (one VM's shim), or
 * `qemu:///embed?root=DIR` (no daemon: this process starts shims for its private VMs),
 * `qemu+ssh://[USER@]HOST[:PORT]/system` (another host's virtqemud through ssh and `virtq proxy`);
 * `?mode=ro` picks the read-only socket. Fails with NO_CONNECT naming the socket tried.
 */
export async function connect(uri?: string, opts: ConnectOptions = {}): Promise<Connection> {
  const env = opts.env ?? process.env;
  const chosen = uri ?? resolveDefaultUri(opts);
  const target = parseUri(chosen, env);
  const clock = opts.clock ?? systemClock();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  if (target.kind === 'embed') {
    const router = new EmbedRouter({
      root: target.root, layout: target.layout, clock, defaultTimeoutMs: timeoutMs,
      shimCommand: opts.shimCommand ?? defaultShimCommand(process.execPath), startTimeoutMs: opts.startTimeoutMs ?? 120_000,
      storageUri: opts.storageUri ?? hostDaemonUri('storage', opts), secretUri: opts.secretUri ?? hostDaemonUri('secret', opts),
      networkUri: opts.networkUri ?? hostDaemonUri('network', opts),
      shimPool: embedPoolSize(opts.shimPool),
    });
    return new Connection(chosen, 'embed', false, router);
  }
  if ((target.kind === 'daemon' || target.kind === 'ssh' || target.kind === 'remote') && target.daemon !== 'virtqemud') {
    throw new VirtqError('INVALID_ARG', `${chosen} reaches ${target.daemon}, which does not serve VMs; use qemu:///system (or connectStorage/connectSecret for its own program)`);
  }
  if (target.kind === 'ssh') {
    const rpc = await dialSsh(target, { clock, timeoutMs, env });
    return new Connection(chosen, 'daemon', target.readOnly, new SocketRouter(rpc));
  }
  if (target.kind === 'remote') return new Connection(chosen, 'daemon', false, new SocketRouter(await dialTls(target, { clock, defaultTimeoutMs: timeoutMs })));
  const resolved = await resolveSocket(target, 'api' satisfies Endpoint);
  const rpc = await dialResolved(resolved, clock, timeoutMs);
  return new Connection(chosen, resolved.peer, resolved.readOnly, new SocketRouter(rpc));
}

/**
 * Connects to the admin socket of the daemon or shim that `uri` names (virtqemud's
 * `virtqemud-admin.sock`, or a shim's `NAME-admin.sock`). Embedded mode has no admin socket.
 */
export async function connectAdmin(uri?: string, opts: ConnectOptions = {}): Promise<AdminConnection> {
  const chosen = uri ?? resolveDefaultUri(opts);
  const target = parseUri(chosen, opts.env ?? process.env);
  if (target.kind === 'embed') {
    throw new VirtqError('INVALID_ARG', `${chosen}: embedded mode has no daemon to administer; use shim:///NAME?root=DIR for one VM's shim`);
  }
  if (target.kind === 'remote') {
    throw new VirtqError('INVALID_ARG', `${chosen}: the admin API is served on the daemon's local admin socket only; run virtq admin on ${target.host}`);
  }
  const clock = opts.clock ?? systemClock();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  let rpc: RpcClient;
  let socket = chosen;
  let peer: AdminConnection['peer'] = 'daemon';
  if (target.kind === 'ssh') {
    rpc = await dialSsh(target, { clock, timeoutMs, env: opts.env ?? process.env, admin: true });
  } else {
    const resolved = await resolveSocket(target, 'admin');
    rpc = await dialResolved(resolved, clock, timeoutMs);
    ({ socket, peer } = resolved);
  }
  return {
    uri: chosen, socket, peer, admin: typedClient(adminProgram, rpc),
    call: (procedure, args, callOpts) => rpc.call(adminProgram.name, procedure, args, callOpts ?? {}),
    close: () => rpc.close(),
  };
}
