// Where a Connection's calls go: one RPC connection (virtqemud or a shim), or the embed router
// that talks to many shims. A router is a protocol `Caller`, so protocol's typedClient binds a
// program's procedures to it as typed methods.
import type { ByteStream, CallOptions, PushedEvent, RpcClient, VirtqError } from '../protocol/index.js';

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
