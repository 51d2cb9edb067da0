// Derives a command's arguments and options from a procedure's argument schema: required
// strings and integers become positionals, optional booleans flags, optional numbers and
// enums valued options (`timeoutSec` -> `--timeout <seconds>`). Shapes it cannot map need an adapter.
import { InvalidArgumentError } from 'commander';
import type { TSchema } from '@sinclair/typebox';

/** A positional argument. */
export interface ArgumentSpec {
  /** As shown in usage, e.g. `name` for `<name>`. */
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
  /** The schema field it fills; absent for arguments an adapter handles itself. */
  readonly field?: string;
  readonly parse?: (value: string) => unknown;
}

/** An option. */
export interface OptionSpec {
  /** Commander flags, e.g. `--timeout <seconds>`. */
  readonly flags: string;
  /** The key commander stores the value under (camelCase of the long flag). */
  readonly key: string;
  readonly description: string;
  /** The schema field it fills; absent for options an adapter handles itself. */
  readonly field?: string;
  readonly choices?: readonly string[];
  readonly parse?: (value: string) => unknown;
}

/** What a command line gave: positionals by argument name, options by key. */
export interface Input {
  readonly args: Readonly<Record<string, unknown>>;
  readonly opts: Readonly<Record<string, unknown>>;
}

/** How fields are presented: other flag names (`{ maxInflightPerClient: 'max-inflight' }`) and help texts. */
export interface DeriveHints {
  readonly rename?: Readonly<Record<string, string>>;
  readonly help?: Readonly<Record<string, string>>;
  /** Fields the adapter fills itself. */
  readonly skip?: readonly string[];
}

/** The derived arguments and options of one schema, and how to turn a command line back into its fields. */
export interface Derived {
  readonly arguments: ArgumentSpec[];
  readonly options: OptionSpec[];
  toArgs(input: Input): Record<string, unknown>;
}

type Schema = Readonly<Record<string, unknown>>;

const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
const camel = (s: string): string => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Parses a number for `field`, honouring the schema's integer type and bounds; a bad one is a usage error. */
export function numberParser(field: string, s: Schema): (value: string) => number {
  return (value) => {
    const n = Number(value);
    const integer = s['type'] === 'integer';
    if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${field} must be ${integer ? 'a whole number' : 'a number'}`);
    }
    const min = s['minimum'];
    const max = s['maximum'];
    if (typeof min === 'number' && n < min) throw new InvalidArgumentError(`must be at least ${min}`);
    if (typeof max === 'number' && n > max) throw new InvalidArgumentError(`must be at most ${max}`);
    return n;
  };
}

/** The literal values of an enum-like union, or undefined. */
export function literalChoices(s: Schema): string[] | undefined {
  const members = s['anyOf'];
  if (!Array.isArray(members)) return undefined;
  const values = (members as Schema[]).map((m) => m['const']);
  return values.every((v): v is string => typeof v === 'string') ? values : undefined;
}

// `timeoutSec` -> ['timeout', 'seconds']; `graceMs` -> ['grace', 'ms'].
function flagFor(field: string, hints: DeriveHints): { flag: string; unit: string | undefined } {
  const renamed = hints.rename?.[field];
  if (renamed !== undefined) return { flag: renamed, unit: undefined };
  if (/.Sec$/.test(field)) return { flag: kebab(field.slice(0, -3)), unit: 'seconds' };
  if (/.Ms$/.test(field)) return { flag: kebab(field.slice(0, -2)), unit: 'ms' };
  return { flag: kebab(field), unit: undefined };
}

function describe(field: string, s: Schema, hints: DeriveHints, unit: string | undefined): string {
  const text = hints.help?.[field] ?? (typeof s['description'] === 'string' ? s['description'] : kebab(field).replace(/-/g, ' '));
  return unit === undefined || text.includes(unit) ? text : `${text} (${unit})`;
}

/** Derives arguments and options from an object schema; throws for a field shape it cannot map. */
export function deriveFromSchema(schema: TSchema, hints: DeriveHints = {}): Derived {
  const props = ((schema as Schema)['properties'] ?? {}) as Record<string, Schema>;
  const required = new Set(((schema as Schema)['required'] ?? []) as string[]);
  const args: ArgumentSpec[] = [];
  const options: OptionSpec[] = [];
  for (const [field, s] of Object.entries(props)) {
    if (hints.skip?.includes(field)) continue;
    const choices = literalChoices(s);
    const isNumber = s['type'] === 'number' || s['type'] === 'integer';
    if (required.has(field)) {
      if (s['type'] !== 'string' && !isNumber) throw new Error(`cannot derive a positional argument for ${field}: give the command an adapter`);
      args.push({ name: kebab(field), field, required: true, description: describe(field, s, hints, undefined), ...(isNumber ? { parse: numberParser(field, s) } : {}) });
      continue;
    }
    const { flag, unit } = flagFor(field, hints);
    const key = camel(flag);
    if (s['type'] === 'boolean') {
      options.push({ flags: `--${flag}`, key, field, description: describe(field, s, hints, undefined) });
    } else if (isNumber) {
      options.push({ flags: `--${flag} <${unit ?? 'n'}>`, key, field, description: describe(field, s, hints, unit), parse: numberParser(`--${flag}`, s) });
    } else if (choices !== undefined || s['type'] === 'string') {
      options.push({ flags: `--${flag} <${choices === undefined ? 'value' : kebab(field)}>`, key, field, description: describe(field, s, hints, undefined), ...(choices === undefined ? {} : { choices }) });
    } else {
      throw new Error(`cannot derive an option for ${field}: give the command an adapter`);
    }
  }
  return {
    arguments: args,
    options,
    toArgs(input) {
      const out: Record<string, unknown> = {};
      for (const a of args) if (a.field !== undefined && input.args[a.name] !== undefined) out[a.field] = input.args[a.name];
      for (const o of options) if (o.field !== undefined && input.opts[o.key] !== undefined) out[o.field] = input.opts[o.key];
      return out;
    },
  };
}
