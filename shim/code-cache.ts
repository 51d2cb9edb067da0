// The shim's code through V8's code cache (docs/decisions/0002-shim-footprint.md, session 25). V8
// compiles a function at its first call, so a shim's first start spent ~14 ms of CPU compiling
// the start path after its hand-off, inside a migration's prepare or a VM's create. Here the
// bundle's body (CommonJS, dist/bin/virtq-shim-body.cjs) is compiled through node:vm with the
// cache a shim of the same root wrote after its own start: the functions that start compiled are
// then deserialized at load, before a warm shim waits for its definition. No cache (or one V8
// rejects: another node, other flags) costs what a shim cost before: it compiles lazily.
// The cache is per root (its state dir's cache/, given by virtqemud in VIRTQ_SHIM_CODE_CACHE) and
// per body (its SHA-256, fixed at build), written atomically; a shim run by hand uses none.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/** Which start a cache was written after: an incoming migration's covers a plain start's path too. */
export type CodeCacheKind = 'start' | 'incoming';

/** What the body's load did with the cache, and how the body writes one. */
export interface ShimCodeCache {
  /** none: no cache file (or no cache dir); accepted: V8 took it; rejected: V8 refused it. */
  readonly state: 'none' | 'accepted' | 'rejected';
  /** The kind of the file that was read, when one was. */
  readonly kind: CodeCacheKind | undefined;
  /**
   * Writes the cache after a start of `kind`, unless the one loaded already covers it (an
   * accepted incoming cache covers both). Best effort: a cache that cannot be written is not.
   * True when it was written.
   */
  save(kind: CodeCacheKind): boolean;
}

/** The cache file of a body for this node and start kind under `dir`. */
export function codeCacheFile(dir: string, bodySha: string, kind: CodeCacheKind, version = process.version, arch = process.arch): string {
  return join(dir, `virtq-shim-${bodySha.slice(0, 16)}-${version}-${arch}-${kind}.v8`);
}

const HANDLE = Symbol.for('virtq.shimCodeCache');

/** Removes the caches of other bodies or nodes of this kind (an upgrade's leftovers), so a root keeps one per kind. */
function pruneOthers(dir: string, kept: string): void {
  const kind = kept.slice(kept.lastIndexOf('-'));
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (path !== kept && name.startsWith('virtq-shim-') && name.endsWith(kind)) rmSync(path, { force: true });
  }
}

/** The handle the entry left for the body (undefined: run without the entry, e.g. from dist/lib in a test). */
export function shimCodeCache(): ShimCodeCache | undefined {
  return (globalThis as Record<symbol, unknown>)[HANDLE] as ShimCodeCache | undefined;
}

/**
 * Compiles the CommonJS body at `bodyPath` with the newest cache found (incoming, then start) and
 * runs it; returns (and leaves for the body, see shimCodeCache) what happened to the cache.
 */
export function runBody(opts: { bodyPath: string; bodySha: string; cacheDir: string | undefined }): ShimCodeCache {
  const { bodyPath, bodySha, cacheDir } = opts;
  // A declaration, not `(function …)`: V8 compiles a parenthesised function at once (its "possibly
  // invoked" heuristic), and the body's top-level code compiled that way kept +2.5 MiB in every shim
  // that loaded no cache (bench/RESULTS.md, session 25). The script's value is the function.
  const source = `function virtqShimBody(exports, require, module, __filename, __dirname) {${readFileSync(bodyPath, 'utf8')}\n}\nvirtqShimBody`;
  let cachedData: Buffer | undefined;
  let kind: CodeCacheKind | undefined;
  for (const k of ['incoming', 'start'] as const) {
    if (cacheDir === undefined) break;
    try {
      cachedData = readFileSync(codeCacheFile(cacheDir, bodySha, k));
      kind = k;
      break;
    } catch {
      // No cache of this kind yet.
    }
  }
  const script = new Script(source, { filename: bodyPath, ...(cachedData === undefined ? {} : { cachedData }) });
  const state = cachedData === undefined ? 'none' : script.cachedDataRejected === true ? 'rejected' : 'accepted';
  const handle: ShimCodeCache = {
    state,
    kind,
    save(after) {
      if (cacheDir === undefined || (state === 'accepted' && (kind === 'incoming' || after === 'start'))) return false;
      const file = codeCacheFile(cacheDir, bodySha, after);
      const temp = `${file}.${process.pid}.tmp`;
      try {
        mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
        writeFileSync(temp, script.createCachedData(), { mode: 0o600 });
        renameSync(temp, file);
        pruneOthers(cacheDir, file);
        return true;
      } catch {
        // Only a cache: the next shim compiles lazily, as without one.
        try { unlinkSync(temp); } catch { /* never made */ }
        return false;
      }
    },
  };
  (globalThis as Record<symbol, unknown>)[HANDLE] = handle;
  const module = { exports: {} };
  (script.runInThisContext() as (...a: unknown[]) => void)(module.exports, createRequire(bodyPath), module, bodyPath, dirname(bodyPath));
  return handle;
}
