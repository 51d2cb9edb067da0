// Schemas as types a person reads: known schemas by name (the CLI's own output types, then the
// protocol's), the rest spelled out TypeScript-like. One renderer for docs/cli.md (markdown,
// names linked) and for `virtq help COMMAND` (plain text), so the two say the same thing.
import { Kind } from '@sinclair/typebox';
import * as protocol from '../protocol/index.js';
import * as cliOutputs from './json-output.js';

type Schema = Readonly<Record<string, unknown>>;

/** Exported schemas by JSON text, with whether they are the CLI's own (documented in cli.md). */
export type NamedSchemas = Map<string, { name: string; local: boolean }>;

/**
 * The named schemas: the CLI's own output types first (when `withLocal`), then the protocol's,
 * as gen-docs.ts picks them (the alphabetically first export wins an alias).
 */
export function namedSchemas(withLocal: boolean): NamedSchemas {
  const named: NamedSchemas = new Map();
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

/** How a type is written: markdown (code spans, names linked) or plain text. */
export type TypeStyle = 'markdown' | 'plain';

/** A schema as a one-line type, naming known schemas (unless `expand`, for the outermost one). */
export function typeText(s: Schema, named: NamedSchemas, style: TypeStyle, expand = false): string {
  const md = style === 'markdown';
  const code = (t: string): string => (md ? `\`${t}\`` : t);
  const n = named.get(JSON.stringify(s));
  // At the terminal a scalar or a set of literals says more spelled out than by its name.
  const spelled = !md && (typeof s['type'] === 'string' && s['type'] !== 'object' && s['type'] !== 'array'
    || (Array.isArray(s['anyOf']) && (s['anyOf'] as Schema[]).every((m) => m['const'] !== undefined)));
  if (n !== undefined && !expand && !spelled) {
    if (!md) return n.name;
    return n.local ? `[\`${n.name}\`](#${n.name.toLowerCase()})` : `[\`${n.name}\`](protocol.md#${n.name.toLowerCase()})`;
  }
  if (s['const'] !== undefined) return code(JSON.stringify(s['const']));
  if (Array.isArray(s['anyOf'])) return (s['anyOf'] as Schema[]).map((m) => typeText(m, named, style)).join(md ? ' \\| ' : ' | ');
  if (s['type'] === 'array') return `${typeText(s['items'] as Schema, named, style)}[]`;
  if (s['type'] === 'object') {
    const props = Object.entries((s['properties'] ?? {}) as Record<string, Schema>);
    if (props.length === 0) return code(s['patternProperties'] === undefined ? '{}' : 'Record<string, unknown>');
    const required = new Set((s['required'] ?? []) as string[]);
    return `{ ${props.map(([k, p]) => `${code(`${k}${required.has(k) ? '' : '?'}`)}: ${typeText(p, named, style)}`).join('; ')} }`;
  }
  if (typeof s['type'] === 'string') return code(s['type']);
  return code('unknown');
}

/**
 * A command's `--json` output for the terminal: its type's name, then one line per field of the
 * object it is (or holds, for an array), each field's type named as in the docs.
 */
export function plainOutputText(output: Schema, named: NamedSchemas): string[] {
  const head = typeText(output, named, 'plain');
  const object = output['type'] === 'array' ? (output['items'] as Schema) : output;
  const props = Object.entries((object['properties'] ?? {}) as Record<string, Schema>);
  const required = new Set((object['required'] ?? []) as string[]);
  const fields = props.map(([k, p]) => `  ${k}${required.has(k) ? '' : '?'}: ${typeText(p, named, 'plain')}`);
  return [head, ...fields];
}
