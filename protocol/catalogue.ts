// The declarative procedure catalogue: the table type every program is written in and the
// helpers that derive validators from it. Dispatch, the typed client, the socket ACL, the
// shim's per-state operations, virtqemud's host-cache answers, embed mode, the CLI and
// docs/protocol.md all read these tables; nobody keeps a second list of procedure names.
import type { Static, TSchema } from '@sinclair/typebox';
import { lazyValidator, type Validator } from './schema.js';
import type { DomainState } from './types.js';

import type { ServerRole } from './services.js';

export type { ServerRole } from './services.js';

/** The socket classes a daemon listens on; a program names the ones it is served on. */
export type SocketClass = 'rw' | 'ro' | 'admin';

/** When virtqemud answers a per-VM call from its registry instead of forwarding it to the shim. */
export type HostCache = 'inactive' | 'active';

/**
 * How embedded mode (no virtqemud) serves a procedure: forwarded to the VM's shim, answered by the
 * embed router itself, or refused because it needs virtqemud's persistent definitions.
 */
export type EmbedMode = 'shim' | 'router' | 'unavailable';

/** One procedure as declared in a program table. */
export interface ProcSpec<A extends TSchema = TSchema, R extends TSchema = TSchema> {
  readonly args: A;
  readonly ret: R;
  /** The daemons that serve it. virtqemud forwards per-VM procedures to the shim by `args.name`. */
  readonly servers: readonly ServerRole[];
  /** Read-only procedures may be called on the read-only socket. */
  readonly readonly: boolean;
  /** Per-VM procedures carry the VM's `name` in their arguments. */
  readonly perVm: boolean;
  /** After an ok reply the call's serial carries a byte stream in both directions. */
  readonly stream: boolean;
  /** The VM states the shim runs this operation in; absent when it does not depend on the state. */
  readonly states?: readonly DomainState[];
  /** When virtqemud answers it from its registry (per-VM procedures only). */
  readonly hostCache?: readonly HostCache[];
  /** How embedded mode serves it; defaults to 'shim'. */
  readonly embed?: EmbedMode;
  /** Its result holds what read-only clients may not read (a secret's value, a volume's bytes): never served on the read-only socket though it changes nothing. */
  readonly revealsSecret?: boolean;
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
  /** The socket classes the program is served on; the server's ACL is derived from them. */
  readonly sockets: readonly SocketClass[];
  /** Argument validators, by procedure name; each compiles its schema on first use. */
  readonly argValidators: ReadonlyMap<string, Validator<TSchema>>;
}

type ProcInput<A extends TSchema, R extends TSchema> = Omit<ProcSpec<A, R>, 'perVm' | 'stream'> &
  Partial<Pick<ProcSpec<A, R>, 'perVm' | 'stream'>>;

type Defaults = { readonly perVm: false; readonly stream: false };

/**
 * Declares one procedure; `perVm` and `stream` default to false. The result
 * keeps the literal types of what was given (`stream: true`, `states`, `embed`…) so types such as
 * the client's stream procedures or the shim's operations are derived from the table.
 */
export function proc<A extends TSchema, R extends TSchema, const I extends ProcInput<A, R>>(spec: I & ProcInput<A, R>): ProcSpec<A, R> & Omit<Defaults, keyof I> & I {
  return { perVm: false, stream: false, ...spec } as ProcSpec<A, R> & Omit<Defaults, keyof I> & I;
}

/** Declares one event. */
export function event<B extends TSchema>(spec: EventSpec<B>): EventSpec<B> {
  return spec;
}


/**
 * Builds a program, served on the read-write and read-only sockets unless `sockets` says
 * otherwise; each argument validator is compiled once, on its first call.
 */
export function defineProgram<P extends Record<string, ProcSpec>, E extends Record<string, EventSpec>>(
  name: string,
  description: string,
  procs: P,
  events: E,
  sockets: readonly SocketClass[] = ['rw', 'ro'],
): Program<P, E> {
  const argValidators = new Map<string, Validator<TSchema>>();
  for (const [procName, spec] of Object.entries(procs)) argValidators.set(procName, lazyValidator(spec.args, `${name}.${procName}`));
  return { name, description, procs, events, sockets, argValidators };
}

/** The names of a table's procedures whose spec has `field` set (a derived set, typed). */
export type ProcsWith<P extends Record<string, ProcSpec>, F extends keyof ProcSpec, V = unknown> = {
  [K in keyof P]: P[K] extends { readonly [X in F]: V } ? K : never;
}[keyof P] & string;

/** The names of a table's procedures that satisfy `pick`, in table order. */
export function procNames<P extends Record<string, ProcSpec>>(procs: P, pick: (spec: ProcSpec) => boolean): (keyof P & string)[] {
  return Object.entries(procs).filter(([, s]) => pick(s)).map(([n]) => n);
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

/**
 * Why a call of `program.proc` is refused on a socket of class `socket`, or undefined when it is
 * allowed: the program must be served on that socket class, and the read-only socket takes only
 * read-only procedures.
 */
export function refusal(program: Pick<Program, 'name' | 'sockets'>, proc: string, spec: ProcSpec, socket: SocketClass): string | undefined {
  // The usual case first, before any message is made: this runs on every call.
  if (program.sockets.includes(socket) && (socket !== 'ro' || spec.readonly)) return undefined;
  const id = `${program.name}.${proc}`;
  const changesState = `${id} ${spec.revealsSecret === true ? 'reveals data read-only clients may not read' : 'changes state'} and is refused on the read-only socket; use the read-write socket`;
  if (program.sockets.includes(socket)) return socket === 'ro' && !spec.readonly ? changesState : undefined;
  if (socket === 'admin') return `${id} is not served on the admin socket`;
  if (program.sockets.every((s) => s === 'admin')) return `${id} is served on the admin socket only`;
  // A program kept off the read-only socket (the registry) is refused there as any write is.
  return socket === 'ro' ? changesState : `${id} is not served on the ${socket} socket`;
}
