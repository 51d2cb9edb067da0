// Connections to one host daemon's program (virtstoraged's `storage`, virtsecretd's `secret`,
// ...): the URI must reach the daemon that serves it; typed methods from the catalogue, streams
// and pushed events over one RPC connection. Daemons start in any order, so a caller may wait
// for one to come up (connect with retry, under a deadline).
import {
  DAEMONS, RpcClient, VirtqError, daemonServing, parseUri, siblingUri, systemClock, typedClient,
  type ByteStream, type CallOptions, type Clock, type DaemonName, type Program, type PushedEvent, type TypedClient,
} from '../protocol/index.js';
import { dialSsh } from './ssh-transport.js';
import { dialTls } from './tls-transport.js';
import { dialDaemonSocket } from './daemon-dial.js';

/** Options of a daemon connection. */
export interface DaemonConnectOptions {
  /** Deadline of each call that sets none, in ms (default 120 000). */
  timeoutMs?: number;
  /** Keep trying to connect this long while nothing answers (a daemon still starting); 0: once (default). */
  waitMs?: number;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
}

/** A connection to the daemon serving program `P`. */
export interface DaemonConnection<P extends Program> {
  readonly uri: string;
  readonly daemon: DaemonName;
  readonly socket: string;
  readonly readOnly: boolean;
  /** The program's call procedures as typed methods. */
  readonly api: TypedClient<P>;
  /** Calls a procedure by name with unchecked arguments (generic callers such as the CLI). */
  call(procedure: keyof P['procs'] & string, args: unknown, opts?: CallOptions): Promise<unknown>;
  /** Calls a stream procedure; the stream's `opened` holds the reply. */
  openStream(procedure: keyof P['procs'] & string, args: unknown, opts?: CallOptions): Promise<ByteStream>;
  /** Events pushed to this connection. One consumer only. */
  events(): AsyncIterable<PushedEvent>;
  readonly closed: Promise<VirtqError>;
  close(): void;
}

/** The daemon URI serving `program` on the host `uri` names (`qemu:///system?root=/r` → `storage:///system?root=/r`). */
export function uriForProgram(program: string, uri: string, env: NodeJS.ProcessEnv = {}): string {
  const daemon = daemonServing(program);
  if (daemon === undefined) throw new VirtqError('INVALID_ARG', `no daemon serves program "${program}"`);
  return siblingUri(uri, daemon, env);
}

/** Connects to the daemon at `uri`, which must be the one serving `program`. */
export async function connectDaemon<P extends Program>(program: P, uri: string, opts: DaemonConnectOptions = {}): Promise<DaemonConnection<P>> {
  const env = opts.env ?? process.env;
  const target = parseUri(uri, env);
  const wanted = daemonServing(program.name);
  if ((target.kind !== 'daemon' && target.kind !== 'ssh' && target.kind !== 'remote') || wanted === undefined || target.daemon !== wanted) {
    const scheme = wanted === undefined ? '?' : DAEMONS[wanted].scheme;
    throw new VirtqError('INVALID_ARG', `${uri} does not reach ${wanted ?? 'a daemon'} (which serves ${program.name}); use ${scheme}:///system or ${scheme}:///system?root=DIR`);
  }
  const clock = opts.clock ?? systemClock();
  const rpcOpts = { clock, defaultTimeoutMs: opts.timeoutMs ?? 120_000 };
  let rpc: RpcClient;
  if (target.kind === 'ssh') {
    // Over ssh the far side's proxy dials once; waitMs (a daemon still starting) applies to local sockets.
    rpc = await dialSsh(target, { clock, timeoutMs: rpcOpts.defaultTimeoutMs, env });
    return daemonConnection(program, uri, target.daemon, uri, target.readOnly, rpc);
  }
  if (target.kind === 'remote') rpc = await dialTls(target, rpcOpts);
  else rpc = await dialDaemonSocket(target.socket, target.daemon, uri, { ...rpcOpts, ...(opts.waitMs === undefined ? {} : { waitMs: opts.waitMs }) });
  return daemonConnection(program, uri, target.daemon, target.kind === 'remote' ? `${target.host}:${target.port}` : target.socket, target.readOnly, rpc);
}

function daemonConnection<P extends Program>(program: P, uri: string, daemon: DaemonName, socket: string, readOnly: boolean, rpc: RpcClient): DaemonConnection<P> {
  return {
    uri, daemon, socket, readOnly,
    api: typedClient(program, rpc),
    call: (procedure, args, callOpts) => rpc.call(program.name, procedure, args, callOpts ?? {}),
    openStream: (procedure, args, callOpts) => rpc.openStream(program.name, procedure, args, callOpts ?? {}),
    events: () => rpc.events(),
    closed: rpc.closed,
    close: () => rpc.close(),
  };
}
