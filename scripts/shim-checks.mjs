// The shim's schema checks generated at build time (issue 15 target 2; protocol/precompiled-schema.ts):
// an esbuild plugin that gives the shim's bundle, in place of protocol/schema.ts, a module holding
// TypeCompiler.Code's text for every check a shim runs and, in place of TypeBox, plain schema
// objects (protocol/lean-type.ts), so no TypeBox code runs in a shim that is not refusing a value;
// and the file beside the bundle (dist/bin/virtq-shim-typebox.cjs) with TypeBox's compiler and every
// real schema by validator id, loaded when a value fails (to word its error as schema.ts does) or a
// schema has no generated check. Runs after tsc: the schemas are read from dist/lib, the same
// objects every other daemon compiles at run time.
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The compiler file's name beside the shim's bundle (precompiled-schema.ts loads it by this name). */
export const SHIM_TYPEBOX = 'virtq-shim-typebox.cjs';

/**
 * Named validators (not a program's arguments) by id, as expressions on protocol/index's exports:
 * the shim runs the first group (their checks are generated), the second only in clients it may
 * hold (TypeBox compiles them from dist/bin/virtq-shim-typebox.cjs if ever called).
 */
const NAMED_CHECKED = { definition: 'definitionValidator.schema', 'start-request': 'StartRequest', 'lifecycle-event': 'LifecycleEvent', 'acl-file': 'AclFile' };
const NAMED_OTHER = { 'network-event': 'NetworkEvent', 'job-progress': 'JobProgress', 'nodedev-event': 'NodeDeviceEvent' };
const exprs = (named) => Object.entries(named).map(([id, expr]) => `[${JSON.stringify(id)}, p.${expr}]`).join(', ');

/**
 * The checks by validator id (the id each lazyValidator is given): every argument check of the
 * programs a shim serves (its procedures in the virtq program, and the admin program) and the
 * named checks a shim runs. Anything else a shim's bundle holds (the client programs) falls back
 * to TypeBox's compiler, so a missing id costs memory, never correctness.
 */
async function shimSchemas() {
  const p = await import(pathToFileURL(join(REPO, 'dist', 'lib', 'protocol', 'index.js')).href);
  const out = new Map();
  for (const program of [p.virtqProgram, p.adminProgram]) {
    for (const [name, v] of program.argValidators) {
      if (program.name === 'admin' || program.procs[name].servers.includes('shim')) out.set(v.id, v.schema);
    }
  }
  for (const [id, expr] of Object.entries(NAMED_CHECKED)) out.set(id, expr.split('.').reduce((o, k) => o?.[k], p));
  for (const [id, schema] of out) if (typeof id !== 'string' || schema === undefined) throw new Error(`shim checks: no schema for ${String(id)}`);
  return out;
}

/** The module's text: a Map from id to a function running TypeCompiler.Code's text for that schema. */
async function checksModule() {
  const { TypeCompiler } = await import('@sinclair/typebox/compiler');
  const entries = [];
  for (const [id, schema] of await shimSchemas()) {
    const code = TypeCompiler.Code(schema);
    // Custom kinds and string formats need TypeBox's registries at run time: none is used today.
    if (/\b(kind|format)\(/.test(code)) throw new Error(`shim checks: ${id}'s check calls TypeBox's registries`);
    entries.push(`[${JSON.stringify(id)}, () => {\n${code}\n}]`);
  }
  return `import { createRequire } from 'node:module';
import { precompiledSchema } from './precompiled-schema.ts';
const checks = new Map([\n${entries.join(',\n')}\n]);
let compiler;
const s = precompiledSchema(checks, () => (compiler ??= createRequire(import.meta.url)(${JSON.stringify(`./${SHIM_TYPEBOX}`)})));
export const compile = s.compile;
export const lazyValidator = s.lazyValidator;
`;
}

/** The esbuild plugin: protocol's `./schema.js` becomes the generated module, `@sinclair/typebox` protocol/lean-type.ts. */
export async function shimChecksPlugin() {
  const contents = await checksModule();
  const protocolDir = join(REPO, 'protocol');
  return {
    name: 'virtq-shim-checks',
    setup(b) {
      b.onResolve({ filter: /^\.\/schema\.js$/ }, (args) => (resolve(args.resolveDir) === protocolDir ? { path: 'schema', namespace: 'virtq-shim-checks' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'virtq-shim-checks' }, () => ({ contents, loader: 'js', resolveDir: protocolDir }));
      // TypeBox's Type: plain objects (protocol/lean-type.ts); the real schemas are in SHIM_TYPEBOX.
      b.onResolve({ filter: /^@sinclair\/typebox$/ }, () => ({ path: join(protocolDir, 'lean-type.ts') }));
    },
  };
}

/**
 * Writes, as one CommonJS file beside the shim's bundle `outfile`, TypeBox's compiler and every
 * schema a shim's validators have, by id, built by TypeBox (every program's arguments and the named ones).
 */
export async function buildShimTypebox(outfile) {
  const contents = `import { TypeCompiler } from '@sinclair/typebox/compiler';
import * as p from './protocol/index.ts';
const schemas = new Map([${exprs(NAMED_CHECKED)}, ${exprs(NAMED_OTHER)}]);
for (const x of Object.values(p)) if (x !== null && typeof x === 'object' && x.argValidators instanceof Map) for (const v of x.argValidators.values()) schemas.set(v.id, v.schema);
export { TypeCompiler, schemas };`;
  await build({
    stdin: { contents, resolveDir: REPO, loader: 'ts', sourcefile: 'virtq-shim-typebox.ts' },
    outfile: join(dirname(outfile), SHIM_TYPEBOX), bundle: true, platform: 'node', target: 'node20', format: 'cjs',
    minifyWhitespace: true, sourcemap: false, legalComments: 'none', logLevel: 'warning',
  });
}
