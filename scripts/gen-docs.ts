// Generates docs/protocol.md and docs/definition.schema.json from the catalogue (programs,
// schemas, errors, the wire table). Pure renderers plus a `main`; the output is deterministic,
// and test/unit/docs/generated-docs.test.ts fails when the checked-in files drift from it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind } from '@sinclair/typebox';
import * as protocol from '../protocol/index.js';
import { FRAME_LAYOUT } from '../protocol/framing.js';
import { repoRoot, wirePrograms } from './check-wire.js';

/** The generated files, relative to the repository root. */
import { METRICS_DOC_PATH, renderMetricsDoc } from './gen-metrics-doc.js';
export const PROTOCOL_DOC_PATH = 'docs/protocol.md';
export const DEFINITION_SCHEMA_PATH = 'docs/definition.schema.json';

type Schema = Readonly<Record<string, unknown>>;
const ANNOTATIONS = ['pattern', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'default'];

// The exported schemas worth a name (objects with fields, unions, strings with a pattern or a
// description), keyed by their JSON text so a copy made by Type.Optional is still recognised.
// The alphabetically first export wins an alias.
function namedSchemas(): Map<string, { name: string; schema: Schema }> {
  const named = new Map<string, { name: string; schema: Schema }>();
  for (const [name, value] of Object.entries(protocol).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (typeof value !== 'object' || value === null || !(Kind in value)) continue;
    const s = value as Schema;
    const worth = s['properties'] !== undefined && Object.keys(s['properties'] as object).length > 0
      || s['anyOf'] !== undefined || s['pattern'] !== undefined || s['description'] !== undefined;
    const key = JSON.stringify(s);
    if (worth && !named.has(key)) named.set(key, { name, schema: s });
  }
  return named;
}

/** Renders TypeBox (JSON Schema) objects as TypeScript-like text, collecting the named types used. */
class SchemaText {
  private readonly named = namedSchemas();
  private readonly used = new Map<string, Schema>();

  /** The type of `s`; a named schema becomes its name unless `expand`. */
  type(s: Schema, depth: number, expand = false): string {
    const named = this.named.get(JSON.stringify(s));
    if (named !== undefined && !expand) {
      this.used.set(named.name, named.schema);
      return named.name;
    }
    if (s['const'] !== undefined) return JSON.stringify(s['const']);
    if (Array.isArray(s['anyOf'])) return (s['anyOf'] as Schema[]).map((m) => this.type(m, depth)).join(' | ');
    if (s['type'] === 'array') {
      const item = this.type(s['items'] as Schema, depth);
      return item.includes(' | ') ? `(${item})[]` : `${item}[]`;
    }
    if (s['type'] === 'object') return this.object(s, depth);
    if (typeof s['type'] === 'string') return s['type'];
    if (Object.keys(s).length === 0) return 'unknown';
    return JSON.stringify(s);
  }

  /** A trailing comment with the description and constraints of `s`, or '' (a named type has its own). */
  note(s: Schema, expand = false): string {
    if (!expand && this.named.has(JSON.stringify(s))) return '';
    const parts: string[] = [];
    if (typeof s['description'] === 'string') parts.push(s['description']);
    for (const key of ANNOTATIONS) if (s[key] !== undefined) parts.push(`${key} ${typeof s[key] === 'string' && key === 'pattern' ? s[key] : JSON.stringify(s[key])}`);
    return parts.length === 0 ? '' : `  // ${parts.join('; ')}`;
  }

  /** Every named type used so far and those they use in turn, sorted, with their definitions. */
  definitions(): Array<{ name: string; text: string }> {
    const out = new Map<string, string>();
    // Rendering a type may name further types, so repeat until nothing new turns up.
    for (let pending = [...this.used]; pending.length > 0; pending = [...this.used].filter(([n]) => !out.has(n))) {
      for (const [name, s] of pending) out.set(name, `${name} = ${this.type(s, 0, true)};${this.note(s, true)}`);
    }
    return [...out.keys()].sort().map((name) => ({ name, text: out.get(name) as string }));
  }

  private object(s: Schema, depth: number): string {
    const pattern = s['patternProperties'] as Record<string, Schema> | undefined;
    const props = Object.entries((s['properties'] ?? {}) as Record<string, Schema>);
    if (props.length === 0) {
      const value = pattern === undefined ? undefined : Object.values(pattern)[0];
      return value === undefined ? '{}' : `Record<string, ${this.type(value, depth)}>`;
    }
    const required = new Set((s['required'] ?? []) as string[]);
    const pad = '  '.repeat(depth + 1);
    const lines = props.map(([key, p]) => `${pad}${key}${required.has(key) ? '' : '?'}: ${this.type(p, depth + 1)};${this.note(p)}`);
    return `{\n${lines.join('\n')}\n${'  '.repeat(depth)}}`;
  }
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (text: string): string => `\`${text}\``;

function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.map(cell).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function renderProgram(p: protocol.Program, text: SchemaText): string {
  const cliPrefix = p.name === 'admin' ? 'virtq admin ' : 'virtq ';
  const rows = Object.entries(p.procs).map(([name, s]) => [
    code(name), s.servers.join(', '), s.readonly ? 'yes' : 'no', s.perVm ? 'yes' : 'no',
    s.stream ? 'yes' : 'no', s.since, s.cli === undefined ? '' : code(cliPrefix + s.cli), s.description,
  ]);
  const out = [`## Program \`${p.name}\``, '', p.description, '',
    table(['procedure', 'servers', 'read-only', 'per-VM', 'stream', 'since', 'CLI command', 'description'], rows)];
  for (const [name, s] of Object.entries(p.procs)) {
    out.push('', `### \`${p.name}.${name}\``, '', s.description, '', '```ts',
      `args: ${text.type(s.args, 0)};`, `result: ${text.type(s.ret, 0)};`, '```');
  }
  const events = Object.entries(p.events);
  if (events.length > 0) {
    out.push('', `### Events of \`${p.name}\``, '', table(['event', 'since', 'description'], events.map(([n, e]) => [code(n), e.since, e.description])));
    for (const [name, e] of events) out.push('', `#### \`${p.name}.${name}\``, '', '```ts', `body: ${text.type(e.body, 0)};`, '```');
  } else {
    out.push('', `\`${p.name}\` pushes no events.`);
  }
  return out.join('\n');
}

// Which programs each socket class serves, from the programs' declared socket classes (the
// server's ACL reads the same field); the read-only socket takes only read-only procedures.
function servedOn(sockets: readonly protocol.SocketClass[]): string[][] {
  const all = [protocol.virtqProgram, protocol.registryProgram, protocol.adminProgram];
  const wording: Record<protocol.SocketClass, (names: string) => string> = {
    rw: (names) => `every procedure of ${names}`,
    ro: (names) => `the read-only procedures of ${names} only`,
    admin: (names) => `the procedures of ${names} only`,
  };
  return sockets.map((socket) => [code(socket), wording[socket](all.filter((p) => p.sockets.includes(socket)).map((p) => code(p.name)).join(' and '))]);
}

function renderAccess(): string {
  const readOnly = Object.entries(protocol.virtqProgram.procs).filter(([, s]) => protocol.allowedOn(s, true)).map(([n]) => code(n));
  return ['## Access', '',
    'Each daemon listens on three sockets. A call that its socket may not make is answered `PERMISSION_DENIED`, and the connection stays usable; a procedure the daemon does not implement (see the servers column) is answered `NOT_SUPPORTED`.', '',
    table(['socket', 'serves'], servedOn(['rw', 'ro', 'admin'])), '',
    `Read-only procedures of \`virtq\`: ${readOnly.join(', ')}.`, '',
    '`registry` is served only by virtqemud, only on its read-write socket.'].join('\n');
}

/** The text of docs/protocol.md. */
export function renderProtocolDoc(): string {
  const text = new SchemaText();
  const programs = wirePrograms.map((p) => renderProgram(p, text));
  const types = text.definitions().flatMap(({ name, text: t }) => ['', `### \`${name}\``, '', '```ts', t, '```']);
  const errors = Object.entries(protocol.errorCatalogue).map(([c, e]) => [code(c), e.description, e.since]);
  return [
    '<!-- Generated by scripts/gen-docs.ts from protocol/: do not edit; run npm run gen:docs. -->',
    '# virtq protocol reference', '',
    'Every virtq daemon speaks one protocol on unix sockets: each VM\'s shim (`virtq-shim`) and the host\'s aggregator (`virtqemud`). ' +
    'This reference is generated from the procedure catalogue in `protocol/`, which also drives dispatch, argument validation, the typed client, the read-only ACL and the CLI.', '',
    'Schemas below are written TypeScript-style: `?` marks an optional field, `integer` is a whole number, and a comment gives a field\'s constraints. ' +
    'The JSON Schema of a VM definition is [`definition.schema.json`](definition.schema.json).', '',
    '## Frames', '',
    `A frame is a 4-byte big-endian length and one CBOR item. A frame over the maximum (${protocol.DEFAULT_MAX_FRAME_BYTES / 1024 / 1024} MiB by default) is refused before it is buffered and closes the connection (\`FRAME_TOO_LARGE\`). ` +
    `A server also refuses, without decoding it whole, a frame whose CBOR holds more than ${protocol.DEFAULT_CALL_LIMITS.maxItems} data items or nests arrays and maps deeper than ${protocol.DEFAULT_CALL_LIMITS.maxDepth} levels (\`FRAME_TOO_LARGE\`), ` +
    `refuses frames over ${protocol.RO_MAX_FRAME_BYTES / 1024 / 1024} MiB from read-only clients, holds at most ${protocol.PARTIAL_FRAME_BUDGET_BYTES / 1024 / 1024} MiB of unfinished frames per socket (the connection that would pass it is dropped, \`FRAME_TOO_LARGE\`), ` +
    'drops a client that leaves a frame unfinished for 30 s (`FRAME_TIMEOUT`), stops reading from a client while 1 MiB of replies to it are unread, ' +
    `and drops a client that leaves more than ${protocol.MAX_UNREAD_PUSH_BYTES / 1024 / 1024} MiB of pushed events or stream data unread (\`CLIENT_TOO_SLOW\`).`, '',
    '```text', FRAME_LAYOUT, '```', '',
    'A call gets exactly one reply; after an ok reply to a stream procedure, stream messages with the call\'s serial carry bytes both ways. ' +
    'A bad call gets an error reply and the connection stays usable; a frame that cannot be decoded closes that connection only.', '',
    'Procedures, events and error codes are addressed by name. A released name never changes meaning and new ones are only appended: `npm run check:wire` compares the catalogue with `protocol/wire-lock.json`.', '',
    renderAccess(), '',
    '## Programs', '',
    'In the tables below, *servers* are the daemons that implement a procedure (virtqemud forwards a per-VM call to the VM\'s shim); ' +
    '*read-only* procedures may be called on the read-only socket; ' +
    '*per-VM* procedures name their VM in `args.name`; *stream* procedures open a byte stream. ' +
    'Commands of the `admin` program run as `virtq admin COMMAND`.', '',
    programs.join('\n\n'), '',
    '## Types', '',
    'Named types used by the procedures and events above.',
    ...types, '',
    '## Errors', '',
    'An error reply\'s body is `{ code, message, details? }`. Codes are stable: never renamed, never reused.', '',
    table(['code', 'description', 'since'], errors), '',
  ].join('\n');
}

/** The text of docs/definition.schema.json: the definition's JSON Schema (draft 7), pretty-printed. */
export function renderDefinitionSchema(): string {
  // JSON.stringify drops TypeBox's symbol keys ([Kind], [OptionalKind]), leaving plain JSON Schema.
  return `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...protocol.Definition }, null, 2)}\n`;
}

/** Where the access-rules schema is published. */
export const ACL_SCHEMA_PATH = 'docs/acl.schema.json';

/** The text of docs/acl.schema.json: the access-rules file's JSON Schema (draft 7). */
export function renderAclSchema(): string {
  return `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...protocol.AclFile }, null, 2)}\n`;
}

/** Writes the generated docs under `root`. */
export function main(root = repoRoot()): void {
  for (const [path, text] of [[PROTOCOL_DOC_PATH, renderProtocolDoc()], [DEFINITION_SCHEMA_PATH, renderDefinitionSchema()], [METRICS_DOC_PATH, renderMetricsDoc()], [ACL_SCHEMA_PATH, renderAclSchema()]] as const) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
    console.log(`wrote ${path}`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
