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
export function valueOf(argv: readonly string[], i: number, name: string): { value: string; next: number } | undefined {
  const t = argv[i] ?? '';
  if (t.startsWith(`${name}=`)) return { value: t.slice(name.length + 1), next: i + 1 };
  const v = argv[i + 1];
  return v === undefined || v.startsWith('-') ? undefined : { value: v, next: i + 2 };
}

/** The command line as a fast-path command, or undefined when the full CLI must run it. */
export function parseFastArgv(argv: readonly string[]): FastCommand | undefined {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) return { kind: 'version' };
  let command: 'list' | 'dominfo' | undefined;
  let connect: string | undefined;
  let json = false;
  const opts: Record<string, unknown> = {};
  const names: string[] = [];
  for (let i = 0; i < argv.length;) {
    const t = argv[i] ?? '';
    if (t === '-c' || t === '--connect' || t.startsWith('--connect=')) {
      const v = valueOf(argv, i, '--connect');
      if (v === undefined || connect !== undefined) return undefined;
      connect = v.value;
      i = v.next;
      continue;
    }
    i += 1;
    if (t === '--json') {
      if (json) return undefined;
      json = true;
    } else if (command === undefined) {
      if (t !== 'list' && t !== 'dominfo') return undefined;
      command = t;
    } else if (command === 'list' && LIST_FLAGS[t] !== undefined) {
      const key = LIST_FLAGS[t] ?? '';
      if (opts[key] !== undefined) return undefined;
      opts[key] = true;
    } else if (command === 'list' && (t === '--state' || t.startsWith('--state='))) {
      const v = valueOf(argv, i - 1, '--state');
      if (v === undefined || opts['state'] !== undefined || !LIST_STATES.includes(v.value)) return undefined;
      opts['state'] = v.value;
      i = v.next;
    } else if (command === 'dominfo' && t !== '' && !t.startsWith('-')) {
      names.push(t);
    } else {
      return undefined;
    }
  }
  if (command === 'list') return { kind: 'list', connect, json, opts };
  const [name] = names;
  if (command === 'dominfo' && names.length === 1 && name !== undefined) return { kind: 'dominfo', connect, json, name };
  return undefined;
}
