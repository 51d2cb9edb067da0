// Schema validation: one TypeBox object gives the static type, the JSON Schema published in the
// docs and the compiled run-time check. Failures become INVALID_ARG naming the field path.
// The shim's bundle replaces this module with protocol/precompiled-schema.ts (scripts/shim-checks.mjs):
// the same checks, generated at build time, without TypeBox's compiler in the process.
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { invalidValue } from './schema-error.js';

/** A compiled validator for one schema. */
export interface Validator<T extends TSchema> {
  readonly schema: T;
  /** The name its check is generated under at build time for the shim's bundle (scripts/shim-checks.mjs). */
  readonly id?: string;
  /** True when `value` matches the schema. */
  check(value: unknown): value is Static<T>;
  /** Returns `value` typed, or throws INVALID_ARG naming the first offending field path. */
  parse(value: unknown, what?: string): Static<T>;
}

/** Compiles `schema` once; the compiled check is what runs on every call. */
export function compile<T extends TSchema>(schema: T, id?: string): Validator<T> {
  const compiled: TypeCheck<T> = TypeCompiler.Compile(schema);
  return {
    schema,
    ...(id === undefined ? {} : { id }),
    check: (value: unknown): value is Static<T> => compiled.Check(value),
    parse(value: unknown, what = 'argument'): Static<T> {
      if (compiled.Check(value)) return value;
      throw invalidValue(compiled.Errors(value).First(), what);
    },
  };
}

/**
 * A validator that compiles `schema` the first time it is used. Every process loads all the
 * programs but calls few of their procedures: compiling all ~40 validators at load cost a shim
 * (and the CLI) 4–9 ms of CPU at every start for code it mostly never ran
 * (docs/decisions/0002-shim-footprint.md).
 */
export function lazyValidator<T extends TSchema>(schema: T, id?: string): Validator<T> {
  let compiled: Validator<T> | undefined;
  const get = (): Validator<T> => (compiled ??= compile(schema));
  return {
    schema,
    ...(id === undefined ? {} : { id }),
    check: (value: unknown): value is Static<T> => get().check(value),
    parse: (value: unknown, what?: string): Static<T> => get().parse(value, what),
  };
}
