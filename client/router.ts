// Where a Connection's calls go: one RPC connection (virtqemud or a shim), or the embed router
// that talks to many shims. Also binds a program's procedures to a router as typed methods,
// exactly as protocol's typedClient does for a single RpcClient.
import type { ByteStream, CallOptions, Program, PushedEvent, RpcClient, TypedClient, VirtqError } from '../protocol/index.js';

/** Carries a Connection's calls, streams and events. */
export interface Router {
  /** Calls one procedure and resolves with its result. */
  call(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<unknown>;
  /** Calls a stream procedure; resolves with the open stream. */
  openStream(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<ByteStream>;
  /** Events pushed to this connection, in order; ends when it closes. */
  events(): AsyncIterable<PushedEvent>;
  /** Settles with the reason once the connection has closed. */
  readonly closed: Promise<VirtqError>;
  close(): void;
}

/** A router over one RPC connection. */
export class SocketRouter implements Router {
  constructor(readonly rpc: RpcClient) {}

  get closed(): Promise<VirtqError> {
    return this.rpc.closed;
  }

  call(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<unknown> {
    return this.rpc.call(prog, proc, args, opts);
  }

  openStream(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<ByteStream> {
    return this.rpc.openStream(prog, proc, args, opts);
  }

  events(): AsyncIterable<PushedEvent> {
    return this.rpc.events();
  }

  close(): void {
    this.rpc.close();
  }
}

/** The names of `program`'s procedures that open a byte stream. */
export function streamProcedures(program: Program): string[] {
  return Object.entries(program.procs).filter(([, s]) => s.stream).map(([n]) => n);
}

/**
 * One typed method per procedure of `program`, calling through `router`. Stream procedures are
 * left out (they need `openStream`); the caller's type says which ones.
 */
export function bindProgram<P extends Program, Omitted extends keyof P['procs'] = never>(program: P, router: Router): Omit<TypedClient<P>, Omitted> {
  const methods: Record<string, (args: unknown, opts?: CallOptions) => Promise<unknown>> = {};
  for (const [name, spec] of Object.entries(program.procs)) {
    if (spec.stream) continue;
    methods[name] = (args, opts) => router.call(program.name, name, args, opts ?? {});
  }
  return methods as unknown as Omit<TypedClient<P>, Omitted>;
}
