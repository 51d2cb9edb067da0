// The RPC server: listeners per access level, per-connection state, caps on clients and calls
// in flight, and dispatch through the catalogue (program -> procedure -> access check ->
// argument validation -> handler -> reply). The server-level admin procedures are answered
// here, so every daemon serves them the same way.
import { createServer, type Server, type Socket } from 'node:net';
import type { Static, TSchema } from '@sinclair/typebox';
import { refusal, type ArgsOf, type Program, type ProcSpec, type RetOf, type ServerRole } from './catalogue.js';
import { ByteBudget } from './byte-budget.js';
import { DEFAULT_CALL_LIMITS, type CborLimits } from './cbor-limits.js';
import type { Clock } from './clock.js';
import { FramedConnection, readInto } from './connection.js';
import { adoptReadingInto } from './adopt-socket.js';
import { DEFAULT_MAX_FRAME_BYTES } from './framing.js';
import { VirtqError } from './errors.js';
import type { Logger } from './logger.js';
import { errorReply, type Message } from './message.js';
import { ServerClient, type Access, type Peer } from './server-client.js';
import { listenInherited, listenUnix, unlinkIfOurs, type BoundSocket } from './unix-listener.js';
import { STREAM_PIECES_FROM, type ByteStream } from './byte-stream.js';
import type { CallContext, Fallback, Handler, Handlers } from './handlers.js';
import type { Limits } from './admin-program.js';
import { serverAdminHandlers } from './server-admin.js';
import { DAEMONS, daemonServing } from './services.js';
import type { AccessPolicy } from './acl-policy.js';

export { ServerClient, type Access, type Peer } from './server-client.js';
export type { CallContext, Fallback, Handler, Handlers } from './handlers.js';
export type ServerLimits = Static<typeof Limits>;

/** Server configuration. */
export interface RpcServerOptions {
  daemon: string;
  version: string;
  role: ServerRole;
  clock: Clock;
  log: Logger;
  limits?: Partial<ServerLimits>;
  maxFrameBytes?: number;
  partialFrameTimeoutMs?: number;
  /** Bytes of unfinished frames the connections of one socket may hold together (default PARTIAL_FRAME_BUDGET_BYTES). */
  partialFrameBudgetBytes?: number;
  /** Bounds on the CBOR of each incoming frame (default DEFAULT_CALL_LIMITS). */
  decodeLimits?: CborLimits;
  /** Extra facts for admin serverInfo. */
  info?: () => Record<string, unknown>;
  /** Learns a unix client's peer credentials (daemon/acl/peer-creds.ts); asked only when access rules need them. */
  peerCreds?: (socket: Socket) => Promise<{ uid: number; gid: number; pid: number } | undefined>;
  /** Called once per answered call: for RPC metrics. `code` is 'OK' or the error code. */
  onCallDone?: (prog: string, proc: string, code: string, seconds: number) => void;
}

interface Registered { program: Program; handlers: Record<string, Handler<ProcSpec> | undefined>; fallback: Fallback | undefined }

const ADMIN_CLIENT_CAP = 32;
/** A client's unread replies past which the server stops reading its calls until they drain. */
const READ_PAUSE_BYTES = 1024 * 1024;
/**
 * The largest frame a read-only client may send: its calls are read-only procedures with small
 * arguments (a name, a filter), so a frame of a MiB is generous; the full frame limit is for
 * read-write clients (definitions, console input) and for what the server sends to anyone.
 */
export const RO_MAX_FRAME_BYTES = 1024 * 1024;
/**
 * What the connections of one socket may hold together in frames they have started and not
 * finished: without it, maxClients connections could each park a frame of up to the frame limit
 * for the partial-frame timeout (5,000 × 16 MiB).
 */
export const PARTIAL_FRAME_BUDGET_BYTES = 64 * 1024 * 1024;

/** A virtq RPC server. */
export class RpcServer {
  readonly limits: ServerLimits;
  /** Access rules checked on every call after the socket's own check (none: the socket decides alone). */
  accessPolicy: AccessPolicy | undefined;
  private readonly programs = new Map<string, Registered>();
  private readonly clientsById = new Map<number, ServerClient>();
  private readonly listeners: Array<{ server: Server; bound: BoundSocket; access: Access }> = [];
  private nextClientId = 1;
  private readonly startedAt: number;
  private inFlight = 0;
  private drainWaiters: Array<() => void> = [];
  private readonly partialBudgets: Record<Access | 'tls', ByteBudget>;

  constructor(private readonly opts: RpcServerOptions) {
    const budget = opts.partialFrameBudgetBytes ?? PARTIAL_FRAME_BUDGET_BYTES;
    this.partialBudgets = { rw: new ByteBudget(budget), ro: new ByteBudget(budget), admin: new ByteBudget(budget), tls: new ByteBudget(budget) };
    this.limits = { maxClients: 5000, maxInflightPerClient: 128, workerConcurrency: 8, ...opts.limits };
    this.startedAt = opts.clock.now();
    this.register(serverAdminHandlers(this, opts));
  }

  /** Serves `program` with `handlers`; `fallback` takes procedures without a handler. */
  register<P extends Program>(entry: { program: P; handlers: Handlers<P>; fallback?: Fallback }): void {
    const existing = this.programs.get(entry.program.name);
    const handlers = { ...(existing?.handlers ?? {}), ...(entry.handlers as Record<string, Handler<ProcSpec>>) };
    this.programs.set(entry.program.name, { program: entry.program, handlers, fallback: entry.fallback ?? existing?.fallback });
  }

  /**
   * Listens on a unix socket for one access level: binds `path` itself, or, given `inheritedFd`,
   * serves the listening socket a service manager passed for it (then never unlinks `path`).
   */
  async listen(path: string, access: Access, mode: number, inheritedFd?: number, owned = false): Promise<void> {
    // Paused until adoptReadingInto has moved the connection to a socket reading into our buffers.
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: true }, (accepted) => {
      let conn: FramedConnection | undefined;
      conn = this.accept(adoptReadingInto(accepted, readInto(() => conn).onread), access);
    });
    const bound = inheritedFd === undefined ? await listenUnix(server, path, mode) : await listenInherited(server, inheritedFd, path, owned);
    this.listeners.push({ server, bound, access });
  }

  /** The listening servers by access level (a shim upgrade hands their fds to its successor). */
  listening(): Array<{ access: Access; server: Server }> {
    return this.listeners.map(({ access, server }) => ({ access, server }));
  }

  /** Calls in flight on every connection. */
  get callsInFlight(): number {
    return this.inFlight;
  }

  /**
   * Stops listening WITHOUT removing the socket files (a successor serves them now) and drops
   * every client but those `keep` names (the one waiting for the upgrade's reply).
   */
  release(keep: (c: ServerClient) => boolean = () => false): void {
    for (const { server } of this.listeners.splice(0)) server.close();
    for (const c of this.clientsById.values()) if (!keep(c)) c.conn.close();
  }

  /** The connected clients. */
  clients(): ServerClient[] {
    return [...this.clientsById.values()];
  }

  /** Finds a client by id. */
  client(id: number): ServerClient | undefined {
    return this.clientsById.get(id);
  }

  /** Seconds since the server was created. */
  uptimeSec(): number {
    return (this.opts.clock.now() - this.startedAt) / 1000;
  }

  /** Resolves once no call is in flight (at once when none is). */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Pushes an event to every client for which `wants` is true. */
  publish(prog: string, name: string, body: unknown, wants: (c: ServerClient) => boolean): void {
    for (const c of this.clientsById.values()) if (wants(c)) c.pushEvent(prog, name, body);
  }

  /** Stops listening, removes our socket files and drops every client. */
  async close(): Promise<void> {
    // Last bound, first released: the first socket a process binds is its claim on the name (a
    // daemon's admin socket, a shim's read-write one), so a successor that wins it finds the rest free.
    for (const { server, bound } of this.listeners.splice(0).reverse()) {
      await unlinkIfOurs(bound);
      server.close();
    }
    for (const c of this.clientsById.values()) c.conn.close();
  }

  /**
   * Serves a connected socket at `access`: the unix listeners' connections, and those a TLS
   * listener hands over once their certificate verified (`peer` says which). Returns the
   * connection: a socket made with readInto() reads into its buffers.
   */
  accept(socket: Socket, access: Access, peer?: Peer): FramedConnection {
    const id = this.nextClientId++;
    const socketClass = peer?.transport === 'tls' ? 'tls' : access;
    const maxFrameBytes = this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const conn: FramedConnection = new FramedConnection(socket, {
      clock: this.opts.clock,
      maxFrameBytes: access === 'ro' ? Math.min(RO_MAX_FRAME_BYTES, maxFrameBytes) : maxFrameBytes,
      // The read-only bound is on what the client sends: its answers (listings, download chunks) go out in full.
      maxSendFrameBytes: maxFrameBytes,
      partialBudget: this.partialBudgets[socketClass],
      partialFrameTimeoutMs: this.opts.partialFrameTimeoutMs ?? 30_000,
      decodeLimits: this.opts.decodeLimits ?? DEFAULT_CALL_LIMITS,
      readPauseBytes: READ_PAUSE_BYTES,
      // An upload's 1 MiB chunks reach its stream as the socket's reads, not joined into fresh
      // memory: the join was the daemon's largest cost of an upload (a copy and page faults per MiB).
      bytePiecesFrom: STREAM_PIECES_FROM,
      onMessage: (msg) => this.onMessage(client, msg),
      onBadMessage: (err, serial) => this.send(client, errorReply('', '', serial ?? 0, err.toWire())),
      onClose: (err) => {
        this.clientsById.delete(id);
        client.closed(err);
        if (err !== undefined) this.opts.log.debug({ client: id, code: err.code }, 'client dropped');
      },
    });
    const client = new ServerClient(id, access, this.opts.clock.now(), conn, peer);
    client.hides = (prog, body) => this.accessPolicy?.hidesEvent(client, prog, body) === true;
    const peerCreds = this.opts.peerCreds;
    if (peer === undefined && access !== 'ro' && peerCreds !== undefined) client.lookupCreds = () => peerCreds(socket);
    // Each socket has its own cap: a flood of the world-writable read-only socket must not lock
    // root's read-write clients (the CLI, shims registering) out, as the admin socket is not.
    // The TLS port is a socket of its own.
    const count = this.countClass(socketClass);
    const cap = access === 'admin' ? ADMIN_CLIENT_CAP : this.limits.maxClients;
    if (count >= cap) {
      conn.fail(new VirtqError('TOO_MANY_CLIENTS', `the server already has ${count} clients on its ${socketClass} socket (limit ${cap}); try again later`));
      return conn;
    }
    this.clientsById.set(id, client);
    return conn;
  }

  private countClass(socketClass: Access | 'tls'): number {
    let n = 0;
    for (const c of this.clientsById.values()) if ((c.peer.transport === 'tls' ? 'tls' : c.access) === socketClass) n++;
    return n;
  }

  private onMessage(client: ServerClient, msg: Message): void {
    if (msg.type === 'stream') return client.streamData(msg.serial, msg.body, msg.status);
    if (msg.type !== 'call') return;
    if (client.inFlight >= this.limits.maxInflightPerClient) {
      this.send(client, errorReply(msg.prog, msg.proc, msg.serial, new VirtqError('TOO_MANY_CALLS',
        `this connection already has ${client.inFlight} calls in flight (limit ${this.limits.maxInflightPerClient})`).toWire()));
      return;
    }
    client.inFlight++;
    client.calls++;
    this.inFlight++;
    let stream: ByteStream | undefined;
    const onDone = this.opts.onCallDone;
    const started = onDone === undefined ? 0 : this.opts.clock.monotonic();
    const ctx: CallContext = {
      client, serial: msg.serial, prog: msg.prog, proc: msg.proc,
      openStream: () => (stream ??= client.createStream(msg.prog, msg.proc, msg.serial)),
    };
    const done = (result: unknown): void => {
      client.inFlight--;
      this.callDone();
      const body = this.accessPolicy === undefined ? result : this.accessPolicy.filterReply(client, msg.prog, msg.proc, result);
      this.send(client, { prog: msg.prog, proc: msg.proc, type: 'reply', serial: msg.serial, status: 'ok', body: body ?? {} });
      if (stream !== undefined) client.streamOpened(msg.serial);
      onDone?.(msg.prog, msg.proc, 'OK', (this.opts.clock.monotonic() - started) / 1000);
    };
    const failed = (err: unknown): void => {
      client.inFlight--;
      this.callDone();
      stream?.remoteEnded(undefined);
      const e = VirtqError.from(err);
      if (e.code === 'INTERNAL') this.opts.log.error({ err, proc: msg.proc }, 'handler failed');
      this.send(client, errorReply(msg.prog, msg.proc, msg.serial, e.toWire()));
      onDone?.(msg.prog, msg.proc, e.code, (this.opts.clock.monotonic() - started) / 1000);
    };
    // Every call settles through one promise: a synchronous fast path for handlers that return
    // plain values measured slower under load (bench/RESULTS.md, issue #2 notes).
    // Rules matching on uid/gid need the peer's credentials: looked up once, before its first call.
    const run = (): unknown => this.dispatch(client, msg, ctx);
    const wait = this.accessPolicy?.needsUnixCreds === true && client.unixCreds === undefined && client.lookupCreds !== undefined;
    (wait ? client.credentials().then(run) : new Promise<unknown>((resolve) => resolve(run()))).then(done, failed);
  }

  /** Checks and runs one call; throws the checks' errors, returns the handler's value or promise. */
  private dispatch(client: ServerClient, msg: Message, ctx: CallContext): unknown {
    const reg = this.programs.get(msg.prog);
    if (reg === undefined) throw unservedProgram(msg.prog, this.opts.daemon);
    const spec: ProcSpec | undefined = Object.hasOwn(reg.program.procs, msg.proc) ? reg.program.procs[msg.proc] : undefined;
    if (spec === undefined) throw new VirtqError('UNKNOWN_PROCEDURE', `program "${msg.prog}" has no procedure "${msg.proc}"`);
    checkAccess(client.access, reg.program, msg.proc, spec);
    if (!spec.servers.includes(this.opts.role)) {
      throw new VirtqError('NOT_SUPPORTED', `${msg.prog}.${msg.proc} is not served by ${this.opts.daemon}`);
    }
    const args = (reg.program.argValidators.get(msg.proc) as { parse(v: unknown, what: string): unknown }).parse(msg.body, `arguments of ${msg.proc}`);
    this.accessPolicy?.check(client, reg.program, msg.proc, spec, args);
    const handler = reg.handlers[msg.proc];
    if (handler !== undefined) return handler(args as never, ctx);
    if (reg.fallback !== undefined) return reg.fallback(reg.program, msg.proc, args, ctx);
    throw new VirtqError('NOT_SUPPORTED', `${msg.prog}.${msg.proc} is not implemented by ${this.opts.daemon} yet`);
  }

  private callDone(): void {
    if (--this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  private send(client: ServerClient, msg: Message): void {
    try {
      client.conn.send(msg);
    } catch (err) {
      const e = VirtqError.from(err);
      try {
        client.conn.send(errorReply(msg.prog, msg.proc, msg.serial, e.toWire()));
      } catch {
        client.conn.close();
      }
    }
  }
}


/** Why `prog` is not served here: another daemon's program (WRONG_DAEMON, naming it), or no program at all. */
function unservedProgram(prog: string, here: string): VirtqError {
  const owner = daemonServing(prog);
  // A shim serves the per-VM part of `virtq` (once its VM's name is claimed).
  const shimsOwn = here === 'virtq-shim' && prog === 'virtq';
  if (owner === undefined || owner === here || shimsOwn) return new VirtqError('UNKNOWN_PROGRAM', `${here} does not serve program "${prog}"${shimsOwn ? ' yet' : ''}`);
  const uri = `${DAEMONS[owner].scheme}:///system`;
  return new VirtqError('WRONG_DAEMON', `program "${prog}" (${DAEMONS[owner].serves}) is served by ${owner}, not ${here}: connect to ${uri} (or ?root=DIR)`, { details: { daemon: owner, scheme: DAEMONS[owner].scheme } });
}

/** The ACL: derived from the socket classes the program is served on and the procedure's `readonly`. */
function checkAccess(access: Access, program: Program, proc: string, spec: ProcSpec<TSchema, TSchema>): void {
  const why = refusal(program, proc, spec, access);
  if (why !== undefined) throw new VirtqError('PERMISSION_DENIED', why);
}
