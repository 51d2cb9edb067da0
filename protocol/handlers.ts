// What a procedure handler is: the shapes dispatch calls and a daemon implements. Apart from
// server.ts so that handler tables (the server's own admin handlers among them) need not
// import the server that runs them.
import type { ArgsOf, Program, ProcSpec, RetOf } from './catalogue.js';
import type { ByteStream } from './byte-stream.js';
import type { ServerClient } from './server-client.js';

/** What a handler learns about its call. */
export interface CallContext {
  client: ServerClient;
  serial: number;
  prog: string;
  proc: string;
  /** For stream procedures: the server end of the stream, usable once the handler returns. */
  openStream(): ByteStream;
}

/** A handler for one procedure. */
export type Handler<S extends ProcSpec> = (args: ArgsOf<S>, ctx: CallContext) => Promise<RetOf<S>> | RetOf<S>;
/** Handlers for (some of) a program's procedures. */
export type Handlers<P extends Program> = { [K in keyof P['procs']]?: Handler<P['procs'][K]> };

/** Called for a procedure of `prog` that has no handler; lets virtqemud forward per-VM calls. */
export type Fallback = (prog: Program, procName: string, args: unknown, ctx: CallContext) => Promise<unknown>;
