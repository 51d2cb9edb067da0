// import() of a module named at run time (a lock plugin given by path, the etcd client). The shim's
// bundle runs as a CommonJS body compiled through node:vm so that V8 can take a code cache for it
// (shim/code-cache.ts), and an import() inside such a script has no module loader behind it in
// Node 20 (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING). The shim's entry, a real ES module, lends its
// own import() under this symbol; every other process (and the body in a test) imports directly.
const LENT_IMPORT = Symbol.for('virtq.import');

/** Lends `load` as the import() of code that runs without a module loader of its own (the shim's entry). */
export function lendImport(load: (specifier: string) => Promise<unknown>): void {
  (globalThis as Record<symbol, unknown>)[LENT_IMPORT] = load;
}

/** import(specifier), through the entry's import() when one was lent. */
export function importModule<T>(specifier: string): Promise<T> {
  const lent = (globalThis as Record<symbol, unknown>)[LENT_IMPORT];
  return (typeof lent === 'function' ? (lent as (s: string) => Promise<unknown>)(specifier) : import(specifier)) as Promise<T>;
}
