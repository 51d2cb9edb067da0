// One CLI command as data (name, procedure, arguments, options, --json output schema, run), and
// the generic builder that makes a command from a catalogue procedure: arguments derived from
// its schema, one call, output rendered by shape. Adapters only say what differs.
import type { TSchema } from '@sinclair/typebox';
import type { CallOptions, Program } from '../protocol/index.js';
import { deriveFromSchema, type ArgumentSpec, type DeriveHints, type Derived, type Input, type OptionSpec } from './derive.js';
import type { CliAdminConnection, CliConnection, CliIo, CliServiceConnection } from './io.js';
import { renderGeneric } from './render.js';
import { withSpinner } from './spinner.js';

/** What a running command can use. */
export interface RunContext {
  readonly io: CliIo;
  /** `--json` was given. */
  readonly json: boolean;
  /** The URI in use (`-c`, else the default). */
  readonly uri: string;
  /** Connects to the `virtq` program (closed for the command when it ends). */
  connect(): Promise<CliConnection>;
  /** Connects to the admin socket (closed for the command when it ends). */
  connectAdmin(): Promise<CliAdminConnection>;
  /** Connects to the daemon serving the command's program (closed for the command when it ends). */
  connectService(): Promise<CliServiceConnection>;
  /** Connects to the daemon serving `program` (storage, secret, ...) on the host the URI names (closed when the command ends). */
  connectProgram(program: string): Promise<CliServiceConnection>;
  /** Writes human output. */
  print(text: string): void;
  /** Writes one JSON document (or, for streaming commands, one line). */
  printJson(value: unknown, compact?: boolean): void;
}

/** One CLI command. */
export interface CommandSpec {
  readonly name: string;
  /** The program the command calls: `admin` commands run as `virtq admin NAME`, the others as `virtq NAME`. */
  readonly program: string;
  /** The catalogue procedure the command is built on (its description is the command's); absent for a command that calls no daemon. */
  readonly procedure?: string;
  readonly description: string;
  readonly arguments: readonly ArgumentSpec[];
  readonly options: readonly OptionSpec[];
  /** Schema of the `--json` output; undefined when the command prints raw bytes. */
  readonly output: TSchema | undefined;
  /** True when `--json` prints one line per item (events) rather than one document. */
  readonly jsonLines?: boolean;
  /** What the command prints when it has no `--json` output (`output` undefined). */
  readonly outputNote?: string;
  /** More help, shown after the options (and in docs/cli.md). */
  readonly notes?: string;
  /** Command lines showing the command in use, each with what it does (`virtq help COMMAND`, docs/cli.md). */
  readonly examples?: readonly Example[];
  run(ctx: RunContext, input: Input): Promise<void>;
}

/** One example of a command: the line, without the leading `virtq`, and what it does. */
export interface Example {
  readonly line: string;
  readonly does: string;
}

/** What a command built on one procedure changes from the derived default. */
export interface CallAdapter {
  /** The command name when the catalogue has none. */
  readonly name?: string;
  readonly hints?: DeriveHints;
  /** The schema to derive arguments and options from (default: the procedure's args). */
  readonly schema?: TSchema;
  /** Arguments to use instead of the derived ones. */
  readonly arguments?: readonly ArgumentSpec[];
  /** Options added to the derived ones. */
  readonly options?: readonly OptionSpec[];
  /** Builds the call's arguments (default: the derived mapping). */
  toArgs?(input: Input, derived: Derived, ctx: RunContext): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Picks another procedure of the program for these arguments (e.g. a getter when nothing is set). */
  procedureFor?(callArgs: Record<string, unknown>): string;
  /** Turns the result into what is printed, as JSON and as text (default: the result itself). */
  present?(result: unknown): unknown;
  /** Human output of the presented result (default: renderGeneric). */
  render?(result: unknown, callArgs: Record<string, unknown>, input: Input): string;
  /** The spinner label for a long call, or undefined for none. */
  progress?(callArgs: Record<string, unknown>): string | undefined;
  /** Schema of the `--json` output (default: the procedure's result). */
  readonly output?: TSchema;
  /** Replaces the whole call-and-print step. */
  run?(ctx: RunContext, input: Input): Promise<void>;
  readonly jsonLines?: boolean;
  readonly notes?: string;
}

/**
 * The call deadline: a call that carries a timeout in seconds (`timeoutSec`) may take that long
 * on the server, so the client waits a minute longer; otherwise the client's default.
 */
export function callDeadline(callArgs: Record<string, unknown>): CallOptions {
  const secs = Object.entries(callArgs).filter(([k, v]) => k.endsWith('Sec') && typeof v === 'number').map(([, v]) => v as number);
  return secs.length === 0 ? {} : { timeoutMs: (Math.max(...secs) + 60) * 1000 };
}

/** Builds the command for `procName` of `program` with `adapter`'s changes. */
export function callCommand(program: Program, procName: string, adapter: CallAdapter = {}): CommandSpec {
  const spec = program.procs[procName];
  if (spec === undefined) throw new Error(`${program.name} has no procedure ${procName}`);
  const name = adapter.name ?? spec.cli;
  if (name === undefined) throw new Error(`${program.name}.${procName} has no CLI name`);
  const schema = adapter.schema ?? spec.args;
  // Arguments given by the adapter replace the derived positionals: derive the options only.
  const replaced = adapter.arguments === undefined ? [] : [
    ...(((schema as { required?: unknown }).required ?? []) as string[]),
    ...adapter.arguments.flatMap((a) => (a.field === undefined ? [] : [a.field])),
  ];
  const options = deriveFromSchema(schema, { ...adapter.hints, skip: [...(adapter.hints?.skip ?? []), ...replaced] });
  // Arguments the adapter gives fill their schema fields as derived ones do.
  const derived: Derived = {
    ...options,
    toArgs: (input) => {
      const out = options.toArgs(input);
      for (const a of adapter.arguments ?? []) if (a.field !== undefined && input.args[a.name] !== undefined) out[a.field] = input.args[a.name];
      return out;
    },
  };
  const which = program.name;
  const run = adapter.run ?? (async (ctx: RunContext, input: Input): Promise<void> => {
    const callArgs = adapter.toArgs === undefined ? derived.toArgs(input) : await adapter.toArgs(input, derived, ctx);
    const conn = which === 'admin' ? await ctx.connectAdmin() : which === 'virtq' ? await ctx.connect() : await ctx.connectService();
    const proc = adapter.procedureFor?.(callArgs) ?? procName;
    const raw = await withSpinner(ctx.io.stderr, ctx.io.clock, adapter.progress?.(callArgs), conn.call(proc, callArgs, callDeadline(callArgs)));
    const result = adapter.present === undefined ? raw : adapter.present(raw);
    if (ctx.json) ctx.printJson(result);
    else ctx.print((adapter.render ?? renderGeneric)(result, callArgs, input));
  });
  return {
    name, program: which, procedure: procName, description: spec.description,
    arguments: adapter.arguments ?? derived.arguments,
    options: [...derived.options, ...(adapter.options ?? [])],
    output: adapter.output ?? spec.ret,
    ...(adapter.jsonLines === undefined ? {} : { jsonLines: adapter.jsonLines }),
    ...(adapter.notes === undefined ? {} : { notes: adapter.notes }),
    run,
  };
}
