// A typed facade derived from a program table: one method per call procedure, with the argument
// and result types of its schemas, over anything that carries calls (one RpcClient, or the
// client's routers). Nothing here is written per procedure.
import type { ArgsOf, Program, ProcsWith, RetOf } from './catalogue.js';

/** Per-call options. */
export interface CallOptions {
  timeoutMs?: number;
}

/** What carries a typed client's calls: RpcClient, or a router over several. */
export interface Caller {
  call(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<unknown>;
}

/** The procedures of `P` that open a byte stream (declared `stream: true`). */
export type StreamProcs<P extends Program> = ProcsWith<P['procs'], 'stream', true>;

/** One typed method per call procedure of `P`; stream procedures need `openStream`. */
export type TypedClient<P extends Program> = {
  [K in Exclude<keyof P['procs'], StreamProcs<P>>]: (args: ArgsOf<P['procs'][K]>, opts?: CallOptions) => Promise<RetOf<P['procs'][K]>>;
};

/** Builds the typed methods of `program`'s call procedures over `caller`. */
export function typedClient<P extends Program>(program: P, caller: Caller): TypedClient<P> {
  const methods: Record<string, (args: unknown, opts?: CallOptions) => Promise<unknown>> = {};
  for (const [name, spec] of Object.entries(program.procs)) {
    if (spec.stream) continue;
    methods[name] = (args, opts) => caller.call(program.name, name, args, opts ?? {});
  }
  return methods as TypedClient<P>;
}
