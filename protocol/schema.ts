// Schema validation: one TypeBox object gives the static type, the JSON Schema published in the
// docs and the compiled run-time check. Failures become INVALID_ARG naming the field path.
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { VirtqError } from './errors.js';

/** A compiled validator for one schema. */
export interface Validator<T extends TSchema> {
  readonly schema: T;
  /** True when `value` matches the schema. */
  check(value: unknown): value is Static<T>;
  /** Returns `value` typed, or throws INVALID_ARG naming the first offending field path. */
  parse(value: unknown, what?: string): Static<T>;
}

/** Compiles `schema` once; the compiled check is what runs on every call. */
export function compile<T extends TSchema>(schema: T): Validator<T> {
  const compiled: TypeCheck<T> = TypeCompiler.Compile(schema);
  return {
    schema,
    check: (value: unknown): value is Static<T> => compiled.Check(value),
    parse(value: unknown, what = 'argument'): Static<T> {
      if (compiled.Check(value)) return value;
      const first = compiled.Errors(value).First();
      const path = first === undefined || first.path === '' ? '/' : first.path;
      const message = first === undefined ? 'does not match its schema' : first.message;
      throw new VirtqError('INVALID_ARG', `invalid ${what}: ${path}: ${message}`, { details: { path } });
    },
  };
}

/**
 * A validator that compiles `schema` the first time it is used. Every process loads all the
 * programs but calls few of their procedures: compiling all ~40 validators at load cost a shim
 * (and the CLI) 4–9 ms of CPU at every start for code it mostly never ran
 * (docs/decisions/0002-shim-footprint.md).
 */
export function lazyValidator<T extends TSchema>(schema: T): Validator<T> {
  let compiled: Validator<T> | undefined;
  const get = (): Validator<T> => (compiled ??= compile(schema));
  return {
    schema,
    check: (value: unknown): value is Static<T> => get().check(value),
    parse: (value: unknown, what?: string): Static<T> => get().parse(value, what),
  };
}
