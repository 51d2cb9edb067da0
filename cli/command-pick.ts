// Which command a command line runs, found before commander parses it, so the program registers
// only that one: building all ~100 subcommands costs more than running most of them
// (bench/RESULTS.md, "CLI start"). Anything this cannot tell for sure gets the whole tree.
import type { CommandSpec } from './command.js';

/** The command specs, `virtq` ones and admin ones (built once; a startup snapshot keeps them). */
export interface CommandTree {
  readonly top: readonly CommandSpec[];
  readonly admin: readonly CommandSpec[];
}

/** What to register: every command, none (only the root's own options), or the one named. */
export type Pick = { readonly kind: 'all' } | { readonly kind: 'none' } | { readonly kind: 'one'; readonly name: string };

const ALL: Pick = { kind: 'all' };

/**
 * The command `argv` names after the global options (`-c URI`, `--connect[=]URI`, `-cURI`,
 * `--json`); `none` for a bare `--version`; `all` for help, an unknown name or an unknown option.
 */
export function pickCommand(argv: readonly string[], tree: CommandTree): Pick {
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '-c' || a === '--connect') { i++; continue; }
    if (a.startsWith('--connect=') || (a.startsWith('-c') && !a.startsWith('--')) || a === '--json') continue;
    if (a === '-V' || a === '--version') { version = true; continue; }
    if (a.startsWith('-')) return ALL;
    const known = a === 'admin' || a === '__complete' || tree.top.some((s) => s.name === a);
    return known ? { kind: 'one', name: a } : ALL;
  }
  return version ? { kind: 'none' } : ALL;
}

/** Whether the command called `name` is registered under `pick`. */
export function picked(pick: Pick, name: string): boolean {
  return pick.kind === 'all' || (pick.kind === 'one' && pick.name === name);
}
