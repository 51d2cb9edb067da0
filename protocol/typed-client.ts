// A typed facade over RpcClient derived from a program table: one method per procedure, with
// the argument and result types of its schemas. Nothing here is written per procedure.
import type { ArgsOf, Program, RetOf } from './catalogue.js';
import type { RpcClient } from './client.js';

/** Per-call options. */
export interface CallOptions {
  timeoutMs?: number;
}

/** One typed method per procedure of `P`. */
export type TypedClient<P extends Program> = {
  [K in keyof P['procs']]: (args: ArgsOf<P['procs'][K]>, opts?: CallOptions) => Promise<RetOf<P['procs'][K]>>;
};

/** Builds the typed methods of `program` over `rpc`. */
export function typedClient<P extends Program>(program: P, rpc: RpcClient): TypedClient<P> {
  const methods: Record<string, (args: unknown, opts?: CallOptions) => Promise<unknown>> = {};
  for (const name of Object.keys(program.procs)) {
    methods[name] = (args, opts) => rpc.call(program.name, name, args, opts ?? {});
  }
  return methods as TypedClient<P>;
}
