// What shell completion knows, derived from the command tree (itself derived from the
// catalogues): commands and admin subcommands, each one's options and which take a value, and
// what kind of value each positional argument and option takes. The bash and zsh scripts are
// renderings of this one model; dynamic kinds are asked of the daemons through `virtq __complete`.
import type { CommandSpec } from '../command.js';

/**
 * The kind of a value: `file`, `none`, `=a,b` (these literal choices), or a dynamic kind asked
 * of a daemon (`domain`, `pool`, `network`, `secret`, `nodedev`), optionally with the words that
 * give its context (`volume:--backing-vol-pool,@1` = volumes of the pool given by that option,
 * else by the first positional). Alternatives are separated by `|`: `volume:--pool|file`.
 */
export type ValueKind = string;

/** The dynamic kinds, as `virtq __complete KIND [CONTEXT]` takes them. */
export const DYNAMIC_KINDS = ['domain', 'pool', 'volume', 'network', 'secret', 'nodedev', 'disk-target', 'mac'] as const;
export type DynamicKind = (typeof DYNAMIC_KINDS)[number];

/** One option as completion sees it. */
export interface CompletionOption {
  /** Every spelling, e.g. `-c`, `--connect`. */
  readonly names: readonly string[];
  /** The kind of its value, or undefined for a flag. */
  readonly value: ValueKind | undefined;
  readonly description: string;
}

/** One command (`name`, or `admin name`). */
export interface CompletionCommand {
  /** The words that name it: `list`, or `admin limits`. */
  readonly key: string;
  readonly name: string;
  readonly description: string;
  readonly options: readonly CompletionOption[];
  /** The kind of each positional argument, in order. */
  readonly args: readonly ValueKind[];
}

/** Everything the completion scripts know. */
export interface CompletionModel {
  readonly globals: readonly CompletionOption[];
  /** `virtq NAME` commands, including `admin` and `help`. */
  readonly top: readonly CompletionCommand[];
  /** `virtq admin NAME` commands. */
  readonly admin: readonly CompletionCommand[];
}

// Arguments whose kind is not what their name says: new names, nested values, files.
const ARG_KINDS: Readonly<Record<string, ValueKind>> = {
  'vol-create-as name': 'none',
  'vol-clone name': 'none',
  'vol-clone source': 'volume:@1',
  'pool-define-as name': 'none',
  'pool-define-as path': 'file',
  'detach-disk target': 'disk-target:@1',
  'detach-interface mac': 'mac:@1',
  'attach-disk path': 'volume:--pool|file',
  'attach-disk target': 'none',
  'secret-set-value base64': 'none',
  'completion shell': '=bash,zsh',
};

// An argument called `name` names an object of the command's program.
function nameKind(spec: CommandSpec): ValueKind {
  switch (spec.program) {
    case 'virtq': return 'domain';
    case 'storage': return spec.name.startsWith('vol-') ? 'volume:@1' : 'pool';
    case 'network': return 'network';
    case 'nodedev': return 'nodedev';
    default: return 'none';
  }
}

/** The kind of positional argument `arg` of `spec`. */
export function argumentKind(spec: CommandSpec, arg: string): ValueKind {
  const own = ARG_KINDS[`${spec.name} ${arg}`];
  if (own !== undefined) return own;
  if (arg === 'name') return nameKind(spec);
  if (arg === 'file') return 'file';
  if (arg === 'pool') return 'pool';
  if (arg === 'network') return 'network';
  if (arg === 'uuid') return 'secret';
  return 'none';
}

const OPTION_KINDS: Readonly<Record<string, ValueKind>> = {
  pool: 'pool',
  backingVolPool: 'pool',
  backingVol: 'volume:--backing-vol-pool,@1',
  encrypt: 'secret',
  network: 'network',
  file: 'file',
};

/** The spellings of commander flags (`-c, --connect <uri>` -> `-c`, `--connect`) and whether they take a value. */
export function parseFlags(flags: string): { names: string[]; valued: boolean } {
  return { names: flags.split(/[\s,|]+/).filter((w) => w.startsWith('-')), valued: /[<[]/.test(flags) };
}

function commandOf(spec: CommandSpec, key: string): CompletionCommand {
  const options: CompletionOption[] = spec.options.map((o) => {
    const { names, valued } = parseFlags(o.flags);
    const value = !valued ? undefined : o.choices !== undefined ? `=${o.choices.join(',')}` : OPTION_KINDS[o.key] ?? 'none';
    return { names, value, description: o.description };
  });
  options.push({ names: ['-h', '--help'], value: undefined, description: 'show help' });
  return { key, name: spec.name, description: spec.description, options, args: spec.arguments.map((a) => argumentKind(spec, a.name)) };
}

/** The model of `commands` (as allCommands() lists them). */
export function completionModel(commands: readonly CommandSpec[]): CompletionModel {
  const top = commands.filter((c) => c.program !== 'admin').map((c) => commandOf(c, c.name));
  const admin = commands.filter((c) => c.program === 'admin').map((c) => commandOf(c, `admin ${c.name}`));
  const help = (name: string, description: string, args: ValueKind[]): CompletionCommand => ({ key: name, name, description, options: [{ names: ['-h', '--help'], value: undefined, description: 'show help' }], args });
  return {
    globals: [
      { names: ['-c', '--connect'], value: 'none', description: 'connection URI' },
      { names: ['--json'], value: undefined, description: 'print the result as JSON' },
      { names: ['-h', '--help'], value: undefined, description: 'show help' },
      { names: ['-V', '--version'], value: undefined, description: 'print the version' },
    ],
    top: [...top, help('admin', 'Commands of the admin socket of the daemon or shim that -c names', []), help('help', 'show help for a command', ['command'])],
    admin,
  };
}
