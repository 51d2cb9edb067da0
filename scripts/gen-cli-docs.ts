// Generates docs/cli.md from the CLI's command tree (itself derived from the catalogue) and
// commander's help: every command's usage, description and options, and its --json output type.
// Deterministic; test/unit/cli/cli-docs.test.ts fails when the checked-in file drifts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, type TSchema } from '@sinclair/typebox';
import type { Command } from 'commander';
import * as protocol from '../protocol/index.js';
import * as cliOutputs from '../cli/json-output.js';
import { allCommands, buildProgram } from '../cli/program.js';
import type { CommandSpec } from '../cli/command.js';
import { EXIT_HELP, URI_HELP } from '../cli/help-text.js';
import { repoRoot } from './check-wire.js';

/** The generated file, relative to the repository root. */
export const CLI_DOC_PATH = 'docs/cli.md';

type Schema = Readonly<Record<string, unknown>>;
const HELP_WIDTH = 100;

// Exported schemas by JSON text, so a result schema is shown by name: the CLI's own output types
// first (documented here), then the protocol's (documented in protocol.md, picked as gen-docs.ts
// picks them: the alphabetically first export wins an alias).
type Named = Map<string, { name: string; local: boolean }>;
function namedSchemas(withLocal: boolean): Named {
  const named: Named = new Map();
  const add = (source: Record<string, unknown>, local: boolean): void => {
    for (const [name, value] of Object.entries(source).sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (typeof value !== 'object' || value === null || !(Kind in value)) continue;
      const s = value as Schema;
      const worth = local || (s['properties'] !== undefined && Object.keys(s['properties'] as object).length > 0)
        || s['anyOf'] !== undefined || s['pattern'] !== undefined || s['description'] !== undefined;
      const key = JSON.stringify(s);
      if (worth && !named.has(key)) named.set(key, { name, local });
    }
  };
  if (withLocal) add(cliOutputs, true);
  add(protocol, false);
  return named;
}

/** Renders a schema as a one-line TypeScript-like type, naming known schemas. */
function typeText(s: Schema, named: Named, expand = false): string {
  const n = named.get(JSON.stringify(s));
  if (n !== undefined && !expand) return n.local ? `[\`${n.name}\`](#${n.name.toLowerCase()})` : `[\`${n.name}\`](protocol.md#${n.name.toLowerCase()})`;
  if (s['const'] !== undefined) return `\`${JSON.stringify(s['const'])}\``;
  if (Array.isArray(s['anyOf'])) return (s['anyOf'] as Schema[]).map((m) => typeText(m, named)).join(' \\| ');
  if (s['type'] === 'array') return `${typeText(s['items'] as Schema, named)}[]`;
  if (s['type'] === 'object') {
    const props = Object.entries((s['properties'] ?? {}) as Record<string, Schema>);
    if (props.length === 0) return s['patternProperties'] === undefined ? '`{}`' : '`Record<string, unknown>`';
    const required = new Set((s['required'] ?? []) as string[]);
    return `{ ${props.map(([k, p]) => `\`${k}${required.has(k) ? '' : '?'}\`: ${typeText(p, named)}`).join('; ')} }`;
  }
  if (typeof s['type'] === 'string') return `\`${s['type']}\``;
  return '`unknown`';
}

function helpOf(program: Command, spec: CommandSpec): string {
  const parent = spec.program === 'admin' ? program.commands.find((c) => c.name() === 'admin') : program;
  const cmd = parent?.commands.find((c) => c.name() === spec.name);
  if (cmd === undefined) throw new Error(`no commander command for ${spec.name}`);
  // The global options are documented once, with the root help.
  const help = cmd.helpInformation() + (spec.notes === undefined ? '' : `\n${spec.notes}\n`);
  return help.replace(/\nGlobal Options:\n(?: {2}.*\n)*/, '').trimEnd();
}

function renderCommand(program: Command, spec: CommandSpec, named: Named): string {
  const full = spec.program === 'admin' ? `virtq admin ${spec.name}` : `virtq ${spec.name}`;
  const json = spec.output === undefined
    ? '`--json` has no effect: the console carries raw bytes.'
    : `\`--json\` prints ${spec.jsonLines === true ? 'one line per event, each' : 'one document'}: ${typeText(spec.output as Schema, named)}.`;
  return [`### \`${full}\``, '', spec.description, '',
    `Procedure: [\`${spec.program}.${spec.procedure}\`](protocol.md#${spec.program}${spec.procedure.toLowerCase()}). ${json}`, '',
    '```text', helpOf(program, spec), '```'].join('\n');
}

function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The text of docs/cli.md. */
export function renderCliDoc(): string {
  const program = buildProgram({ env: {}, stdout: { write: () => undefined, isTTY: false }, stderr: { write: () => undefined, isTTY: false }, width: HELP_WIDTH, execute: async () => undefined });
  const named = namedSchemas(true);
  const protocolNamed = namedSchemas(false);
  const specs = allCommands();
  const section = (title: string, list: CommandSpec[]): string[] => ['', `## ${title}`, '', ...list.flatMap((s) => [renderCommand(program, s, named), ''])];
  const outputs = Object.entries(cliOutputs).sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, schema]) => {
    const same = protocolNamed.get(JSON.stringify(schema));
    const what = typeof (schema as TSchema)['description'] === 'string' ? `\`${String((schema as TSchema)['description'])}\`: ` : '';
    const body = same === undefined ? typeText(schema as Schema, protocolNamed, true) : typeText(schema as Schema, protocolNamed);
    return [`### \`${name}\``, '', `${what}${body}`, ''].join('\n');
  });
  return [
    '<!-- Generated by scripts/gen-cli-docs.ts from cli/ and protocol/: do not edit; run `npm run build && node dist/lib/scripts/gen-cli-docs.js`. -->',
    '# virtq command line', '',
    '`virtq [-c URI] COMMAND [ARGS] [--json]` manages the VMs of a virtqemud, of one VM\'s shim, or of an embedding root. ' +
    'Its commands are derived from the procedure catalogue ([protocol.md](protocol.md)): each runs one procedure, and its description is the procedure\'s.', '',
    '```text', program.helpInformation().trimEnd(), '```', '',
    '## Connection URIs', '',
    table(['URI', 'reaches'], URI_HELP.map(([u, d]) => [`\`${u}\``, d])), '',
    'Without `-c`, virtq uses `$VIRTQ_DEFAULT_URI`, else `uri_default` in `$XDG_CONFIG_HOME/virtq/client.json` (`~/.config/virtq/client.json`), else `qemu:///session` (or `qemu:///system` as root; see [guide-install.md](guide-install.md#default-uris)). `virtq admin` commands connect to the admin socket of the same daemon or shim. ' +
    'Storage, secret, network and host-device commands go to virtstoraged, virtsecretd, virtnetworkd and virtnodedevd on the host the URI names: `-c qemu:///system?root=DIR pool-list` asks `storage:///system?root=DIR`. ' +
    'Relative paths in `define` and `create` files (kernel, initrd, disks) are resolved against the file\'s directory; the `attach-disk` path against the current directory.', '',
    '## Exit status and errors', '',
    table(['status', 'meaning'], EXIT_HELP.map(([c, d]) => [c, d])), '',
    'A failed operation prints exactly one line on stderr, `virtq: CODE: message`, where CODE is one of the [error codes](protocol.md#errors): ' +
    'for example `NO_DOMAIN` (unknown VM), `INVALID_ARG` (a bad definition file, naming the file and the JSON error or the offending field path), ' +
    '`NO_CONNECT` (nothing serves the socket, naming it) or `PERMISSION_DENIED` (a change asked on a read-only socket).', '',
    '## Output', '',
    'Human output is virsh-like: aligned tables and `Label:  value` blocks. With `--json` every command prints one JSON document on stdout ' +
    '(`event` one line per event) whose type is given below; types link to their definition. ' +
    'Progress (a spinner for `shutdown --timeout`, `create` and `start`; a bar for `vol-clone`, `vol-upload` and `vol-download`) is drawn on stderr only when stderr is a terminal; ' +
    'with `--json` those three print one `{"event":"progress","doneBytes":N,"totalBytes":N}` line per report before their result line, and Ctrl-C cancels them (nothing is left half-made).',
    ...section('VM and host commands', specs.filter((s) => s.program === 'virtq')),
    ...section('Storage commands (virtstoraged)', specs.filter((s) => s.program === 'storage')),
    ...section('Secret commands (virtsecretd)', specs.filter((s) => s.program === 'secret')),
    ...section('Network commands (virtnetworkd)', specs.filter((s) => s.program === 'network')),
    ...section('Node device commands (virtnodedevd)', specs.filter((s) => s.program === 'nodedev')),
    ...section('Admin commands', specs.filter((s) => s.program === 'admin')),
    '## JSON output types', '',
    'Output types of the CLI itself; every other type is a procedure result defined in [protocol.md](protocol.md#types).', '',
    ...outputs,
  ].join('\n');
}

/** Writes docs/cli.md under `root`. */
export function main(root = repoRoot()): void {
  mkdirSync(dirname(join(root, CLI_DOC_PATH)), { recursive: true });
  writeFileSync(join(root, CLI_DOC_PATH), renderCliDoc());
  console.log(`wrote ${CLI_DOC_PATH}`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
