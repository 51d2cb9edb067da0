// The declarative procedure catalogue: the table type every program is written in and the
// helpers that derive validators from it. Dispatch, the typed client, the read-only ACL, the
// CLI and docs/protocol.md all read these tables; nobody keeps a second list.
import type { Static, TSchema } from '@sinclair/typebox';
import { lazyValidator, type Validator } from './schema.js';

/** Which daemons implement a procedure. */
export type ServerRole = 'shim' | 'aggregator';

/** One procedure as declared in a program table. */
export interface ProcSpec<A extends TSchema = TSchema, R extends TSchema = TSchema> {
  readonly args: A;
  readonly ret: R;
  /** The daemons that serve it. virtqemud forwards per-VM procedures to the shim by `args.name`. */
  readonly servers: readonly ServerRole[];
  /** Read-only procedures may be called on the read-only socket. */
  readonly readonly: boolean;
  /** High-priority procedures answer from cached state and never wait for a VM's job. */
  readonly priority: 'high' | 'low';
  /** Per-VM procedures carry the VM's `name` in their arguments. */
  readonly perVm: boolean;
  /** After an ok reply the call's serial carries a byte stream in both directions. */
  readonly stream: boolean;
  readonly since: string;
  /** One line, shown in `--help` and the protocol reference. */
  readonly description: string;
  /** The CLI command name, when one command maps to the procedure. */
  readonly cli?: string;
}

/** One event a program can push. */
export interface EventSpec<B extends TSchema = TSchema> {
  readonly body: B;
  readonly since: string;
  readonly description: string;
}

/** A program: a named table of procedures and events. */
export interface Program<P extends Record<string, ProcSpec> = Record<string, ProcSpec>, E extends Record<string, EventSpec> = Record<string, EventSpec>> {
  readonly name: string;
  readonly description: string;
  readonly procs: P;
  readonly events: E;
  /** Argument validators, by procedure name; each compiles its schema on first use. */
  readonly argValidators: ReadonlyMap<string, Validator<TSchema>>;
}

type ProcInput<A extends TSchema, R extends TSchema> = Omit<ProcSpec<A, R>, 'perVm' | 'stream' | 'priority'> &
  Partial<Pick<ProcSpec<A, R>, 'perVm' | 'stream' | 'priority'>>;

/** Declares one procedure; `priority` defaults to low, `perVm` and `stream` to false. */
export function proc<A extends TSchema, R extends TSchema>(spec: ProcInput<A, R>): ProcSpec<A, R> {
  return { priority: 'low', perVm: false, stream: false, ...spec };
}

/** Declares one event. */
export function event<B extends TSchema>(spec: EventSpec<B>): EventSpec<B> {
  return spec;
}


/** Builds a program; each argument validator is compiled once, on its first call. */
export function defineProgram<P extends Record<string, ProcSpec>, E extends Record<string, EventSpec>>(
  name: string,
  description: string,
  procs: P,
  events: E,
): Program<P, E> {
  const argValidators = new Map<string, Validator<TSchema>>();
  for (const [procName, spec] of Object.entries(procs)) argValidators.set(procName, lazyValidator(spec.args));
  return { name, description, procs, events, argValidators };
}

/** The static argument type of a procedure. */
export type ArgsOf<S> = S extends ProcSpec<infer A, TSchema> ? Static<A> : never;
/** The static result type of a procedure. */
export type RetOf<S> = S extends ProcSpec<TSchema, infer R> ? Static<R> : never;
/** The static body type of an event. */
export type EventBodyOf<S> = S extends EventSpec<infer B> ? Static<B> : never;

/** True when the procedure may be called on a connection with the given access. */
export function allowedOn(spec: ProcSpec, readOnly: boolean): boolean {
  return !readOnly || spec.readonly;
}
