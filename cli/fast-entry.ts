// The file the launcher at the head of dist/bin/virtq.js execs node on for the CLI's fast path
// (dist/bin/virtq-fast.cjs, decision 0028). It compiles the fast path's body (cli/fast-main.ts,
// dist/bin/virtq-fast-body.js) with vm.Script and V8's code cache for it (virtq-fast.cache),
// which scripts/fast-cache.mjs makes at build from runs of the body's own code paths (list,
// dominfo, --json, an error) against a stand-in server: so the functions a `list` or a `dominfo`
// runs are not parsed and compiled at every start (−5 to −6 M instructions of ~120, bench/RESULTS.md,
// issue 15, session 12). V8 checks the cache itself (its version, flags and the source's hash) and
// compiles from source when it does not fit, so a cache from another node binary only costs its read.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import type { LoadModule } from './fast-main.js';

/** The body's file and its cache, beside this file (scripts/build.mjs writes both). */
const FAST_BODY_FILE = 'virtq-fast-body.js';
const FAST_CACHE_FILE = 'virtq-fast.cache';

/** What the body's module exports (cli/fast-main.ts). */
interface FastBody {
  fastMain(load: LoadModule): Promise<void>;
}

/** The body file's one expression: a CommonJS module wrapper, as Node's own loader makes. */
type BodyWrapper = (exports: object, req: NodeJS.Require, module: { exports: object }, filename: string, dirname: string) => void;

/** The code cache's bytes, or undefined when there is none (a build that could not make it). */
function cachedData(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

const dir = dirname(process.argv[1] ?? '.');
const filename = join(dir, FAST_BODY_FILE);
const script = new Script(readFileSync(filename, 'utf8'), { filename, cachedData: cachedData(join(dir, FAST_CACHE_FILE)) });
const mod = { exports: {} };
(script.runInThisContext() as BodyWrapper)(mod.exports, require, mod, filename, dir);
// import() here, in a file Node's own loader compiled: code vm.Script compiles has none in Node 20.
void (mod.exports as FastBody).fastMain((path) => import(pathToFileURL(path).href));
