// The command lines the CLI's fast path runs (cli/fast-main.ts, decision 0028): `--version`,
// `list` with its filters and `dominfo NAME`, with the global `-c/--connect URI` and `--json`.
// Anything else — help, another command, an option spelt another way, a repeated option, a
// value commander would reject — is undefined here, and the full CLI runs the command line
// unchanged. test/unit/cli/fast-argv.test.ts holds these tables against the full command specs.

/** `list`'s flags (besides --state) and the keys commander stores them under. */
export const LIST_FLAGS: Readonly<Record<string, string>> = {
  '--all': 'all', '--active': 'active', '--inactive': 'inactive', '--persistent': 'persistent', '--transient': 'transient',
};

/** The values `list --state` accepts (the catalogue's DomainState, checked by the test above). */
export const LIST_STATES: readonly string[] = ['starting', 'running', 'paused', 'shutting-down', 'shutoff', 'crashed'];

/** A command line the fast path runs. */
export type FastCommand =
  | { readonly kind: 'version' }
  | { readonly kind: 'list'; readonly connect: string | undefined; readonly json: boolean; readonly opts: Readonly<Record<string, unknown>> }
  | { readonly kind: 'dominfo'; readonly connect: string | undefined; readonly json: boolean; readonly name: string };

/** `--name=value` or `--name value`: the value, or undefined when there is none commander would take as is. */
function valueOf(argv: readonly string[], i: number, name: string): { value: string; next: number } | undefined {
  const t = argv[i] ?? '';
  if (t.startsWith(`${name}=`)) return { value: t.slice(name.length + 1), next: i + 1 };
  const v = argv[i + 1];
  return v === undefined || v.startsWith('-') ? undefined : { value: v, next: i + 2 };
}

/** The global options a fast grammar has read so far. */
export interface GlobalsSeen { connect: string | undefined; json: boolean }

/**
 * Reads the global option at argv[i] (`-c URI`, `--connect URI`, `--connect=URI`, `--json`, each at
 * most once) into `seen`: the index after it; 'other' when argv[i] is not one; undefined when
 * commander would read it otherwise (a repeat, a missing value): the full CLI's business.
 */
export function readGlobal(argv: readonly string[], i: number, seen: GlobalsSeen): number | 'other' | undefined {
  const t = argv[i] ?? '';
  if (t === '-c' || t === '--connect' || t.startsWith('--connect=')) {
    const v = valueOf(argv, i, '--connect');
    if (v === undefined || seen.connect !== undefined) return undefined;
    seen.connect = v.value;
    return v.next;
  }
  if (t !== '--json') return 'other';
  if (seen.json) return undefined;
  seen.json = true;
  return i + 1;
}

/**
 * Walks argv: the global options into `seen`, every other word to `word` (its index; it returns the
 * index after what it read, or undefined to give the command line up). False when given up.
 */
export function scanArgv(argv: readonly string[], seen: GlobalsSeen, word: (t: string, i: number) => number | undefined): boolean {
  for (let i = 0; i < argv.length;) {
    const next = readGlobal(argv, i, seen);
    const after = next === 'other' ? word(argv[i] ?? '', i) : next;
    if (after === undefined) return false;
    i = after;
  }
  return true;
}

/** The command line as a fast-path command, or undefined when the full CLI must run it. */
export function parseFastArgv(argv: readonly string[]): FastCommand | undefined {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) return { kind: 'version' };
  let command: 'list' | 'dominfo' | undefined;
  const seen: GlobalsSeen = { connect: undefined, json: false };
  const opts: Record<string, unknown> = {};
  const names: string[] = [];
  const ok = scanArgv(argv, seen, (t, i) => {
    if (command === undefined) {
      if (t !== 'list' && t !== 'dominfo') return undefined;
      command = t;
    } else if (command === 'list' && LIST_FLAGS[t] !== undefined) {
      const key = LIST_FLAGS[t] ?? '';
      if (opts[key] !== undefined) return undefined;
      opts[key] = true;
    } else if (command === 'list' && (t === '--state' || t.startsWith('--state='))) {
      const v = valueOf(argv, i, '--state');
      if (v === undefined || opts['state'] !== undefined || !LIST_STATES.includes(v.value)) return undefined;
      opts['state'] = v.value;
      return v.next;
    } else if (command === 'dominfo' && t !== '' && !t.startsWith('-')) {
      names.push(t);
    } else {
      return undefined;
    }
    return i + 1;
  });
  if (!ok) return undefined;
  const { connect, json } = seen;
  if (command === 'list') return { kind: 'list', connect, json, opts };
  const [name] = names;
  if (command === 'dominfo' && names.length === 1 && name !== undefined) return { kind: 'dominfo', connect, json, name };
  return undefined;
}
