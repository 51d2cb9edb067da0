// protocol/schema.ts for the shim's bundle (issue 15 target 2): the checks a shim runs were
// generated at build time by TypeBox's own code generator (TypeCompiler.Code, scripts/shim-checks.mjs),
// so a shim never loads TypeBox's compiler, its value system or its error module (~80 KB of source
// and the ~900 functions compiling a schema ran) and keeps no generated source twice. TypeBox's
// compiler is loaded from a file beside the bundle (dist/bin/virtq-shim-typebox.cjs) only to word a
// failed check's error, exactly as schema.ts words it, or for a schema no check was generated for.
// That file also holds every schema by validator id, built by TypeBox: the shim's own schemas are
// protocol/lean-type.ts's plain objects, which only the generated checks' ids stand for.
import type { Static, TSchema } from '@sinclair/typebox';
import type { TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import type { Validator } from './schema.js';
import { invalidValue } from './schema-error.js';

/** A generated check: the function TypeCompiler.Code's text returns. */
export type Check = (value: unknown) => boolean;
/** Runs a generated check's text (its regular expressions and the function), on first use. */
export type CheckFactory = () => Check;

/** What dist/bin/virtq-shim-typebox.cjs gives: TypeBox's compiler and the real schemas by validator id. */
export interface ShimTypebox {
  readonly TypeCompiler: typeof TypeCompiler;
  readonly schemas?: ReadonlyMap<string, TSchema>;
}

/** What protocol/schema.ts exports at run time, with the generated checks behind it. */
export interface PrecompiledSchema {
  compile<T extends TSchema>(schema: T, id?: string): Validator<T>;
  lazyValidator<T extends TSchema>(schema: T, id?: string): Validator<T>;
}

/**
 * schema.ts's compile and lazyValidator over `checks` (by validator id). `loadTypebox` is called
 * only when a value fails (for the error's path and message) or when `checks` has nothing for the id
 * (the procedures of programs the shim does not serve); its schema for the id, when it has one, is
 * the one compiled.
 */
export function precompiledSchema(checks: ReadonlyMap<string, CheckFactory>, loadTypebox: () => ShimTypebox): PrecompiledSchema {
  function compile<T extends TSchema>(schema: T, id?: string): Validator<T> {
    const factory = id === undefined ? undefined : checks.get(id);
    // TypeBox's own compiled form, made when first needed and then kept.
    let typeCheck: TypeCheck<T> | undefined;
    const full = (): TypeCheck<T> => {
      if (typeCheck !== undefined) return typeCheck;
      const tb = loadTypebox();
      typeCheck = tb.TypeCompiler.Compile((id === undefined ? undefined : tb.schemas?.get(id) as T | undefined) ?? schema);
      return typeCheck;
    };
    const check: Check = factory === undefined ? (value) => full().Check(value) : factory();
    return {
      schema,
      ...(id === undefined ? {} : { id }),
      check: (value: unknown): value is Static<T> => check(value),
      parse(value: unknown, what = 'argument'): Static<T> {
        if (check(value)) return value as Static<T>;
        throw invalidValue(full().Errors(value).First(), what);
      },
    };
  }
  function lazyValidator<T extends TSchema>(schema: T, id?: string): Validator<T> {
    let compiled: Validator<T> | undefined;
    const get = (): Validator<T> => (compiled ??= compile(schema, id));
    return {
      schema,
      ...(id === undefined ? {} : { id }),
      check: (value: unknown): value is Static<T> => get().check(value),
      parse: (value: unknown, what?: string): Static<T> => get().parse(value, what),
    };
  }
  return { compile, lazyValidator };
}
