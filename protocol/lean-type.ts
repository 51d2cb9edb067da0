// `@sinclair/typebox` for the shim's bundle (scripts/shim-checks.mjs aliases the package to this
// file; no module imports it by name; test/unit/protocol/lean-type.test.ts holds it to TypeBox's output): a shim checks values with checks generated at build time
// (protocol/precompiled-schema.ts), so the schemas its modules build at load are read only for the
// few fields code reads at run time — an object's `properties` and `required`, a union's `anyOf`, a
// literal's `const`, a schema's own options. This builds those plain objects, without TypeBox's type
// system (~90 KB of source and the ~600 functions building ~700 schemas ran at every shim's start).
// What a failed check's error needs, the real schema, comes with TypeBox's compiler from
// dist/bin/virtq-shim-typebox.cjs. Types stay TypeBox's: this file only replaces run-time values.

/** A schema as the shim's code reads it. */
type LeanSchema = Record<string, unknown>;
type Options = Record<string, unknown> | undefined;

/** Marks an Optional property (a plain key: `required` is computed from it, nothing else reads it). */
const OPTIONAL = '~optional';

const scalar = (type: string) => (options?: Options): LeanSchema => ({ ...options, type });

function object(properties: Record<string, LeanSchema>, options?: Options): LeanSchema {
  const required = Object.keys(properties).filter((k) => properties[k]?.[OPTIONAL] !== true);
  return { ...options, type: 'object', properties, ...(required.length > 0 ? { required } : {}) };
}

/** The builder: the methods the protocol's schemas call. */
const methods: Record<string, (...args: never[]) => LeanSchema> = {
  String: scalar('string'), Number: scalar('number'), Integer: scalar('integer'), Boolean: scalar('boolean'), Null: scalar('null'),
  Unknown: (options?: Options) => ({ ...options }),
  Uint8Array: scalar('Uint8Array'),
  Literal: (value: string | number | boolean, options?: Options) => ({ ...options, const: value, type: typeof value }),
  Object: object,
  Optional: (schema: LeanSchema) => ({ ...schema, [OPTIONAL]: true }),
  Union: (anyOf: LeanSchema[], options?: Options) => ({ ...options, anyOf }),
  Intersect: (allOf: LeanSchema[], options?: Options) => ({ ...options, allOf, ...(allOf.every((x) => x['type'] === 'object') ? { type: 'object' } : {}) }),
  Array: (items: LeanSchema, options?: Options) => ({ ...options, type: 'array', items }),
  Record: (_key: LeanSchema, value: LeanSchema, options?: Options) => ({ ...options, type: 'object', patternProperties: { '^.*$': value } }),
  Partial: (schema: LeanSchema, options?: Options) => {
    const { required: _required, ...rest } = schema;
    return { ...rest, ...options };
  },
};

export const Type: Record<string, (...args: never[]) => LeanSchema> = new Proxy(methods, {
  // A method the protocol starts calling must be added here: the shim then fails at load, in every test that starts one.
  get: (target, key: string) => {
    const method = target[key];
    if (method === undefined) throw new Error(`Type.${String(key)} is not in protocol/lean-type.ts (the shim's bundle builds schemas with it)`);
    return method;
  },
});
