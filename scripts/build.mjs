// Builds virtq: tsc type-checks and emits the library (dist/lib, with declarations); esbuild
// bundles each daemon and the CLI into one file (dist/bin) so a process loads one module graph
// — that is what keeps a shim near 15 MiB PSS (docs/decisions/0002-shim-footprint.md).
import { build } from 'esbuild';
import { buildShimTypebox, shimChecksPlugin } from './shim-checks.mjs';
import { snapshotExec, writeBlobMarkers } from './launcher-head.mjs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';

const LEAN = '--max-semi-space-size=1 --max-old-space-size=64 --v8-pool-size=1';
// The shim's code flushing: bytecode (and Sparkplug code) a function has not run since the last full
// GC is dropped at the next one (V8's default waits 5 full GCs, which an idle shim never reaches), so
// the start's and the warm-up's code goes once the memory reducer has run (~8 s after start); every
// full GC also compacts, so the holes that leaves in old-space pages are given back, not kept. A
// function that runs again is compiled again from the source V8 keeps anyway. 8 VMs, two interleaved
// runs at load ~20: −0.61 MiB PSS per settled shim (flushing alone −0.41), getState p50/p99 and CPU
// to the ready line not worse (bench/RESULTS.md, issue 15 target 2, session 14).
const SHIM_FLUSH = '--bytecode-old-age=1 --flush-baseline-code --compact-on-every-full-gc';
// Modules of dependencies a daemon never calls, left out of its bundle: each pulls in Node
// built-ins at load (prom-client's Pushgateway: http, https, tls, zlib; its default metrics:
// perf_hooks, v8, @opentelemetry/api; pino's thread-stream: worker_threads). Left out of the
// shim, they cost 3–10 ms of CPU and ~1 MiB of early PSS at every start
// (docs/decisions/0002-shim-footprint.md). A left-out module throws when called, naming this file (or is the small stub its `contents` give).
// The heap flags in LEAN cost ~20 ms of CPU per start (a V8 flag makes Node recompile its
// built-ins) and are kept for what they save under load; see the same record.
const PUSHGATEWAY = { pkg: 'prom-client', path: './lib/pushgateway' };
const DEFAULT_METRICS = { pkg: 'prom-client', path: './lib/defaultMetrics' };
const THREAD_STREAM = { pkg: 'pino', path: 'thread-stream' };
// pino's tools.js loads worker_threads (+0.15 MiB PSS, bench/RESULTS.md session 8) only to read
// isMainThread, which it checks only for asynchronous destinations. The shim logs synchronously
// and runs no worker threads, so there it is the constant it would read anyway.
const PINO_WORKER_THREADS = { pkg: 'pino', path: 'worker_threads', contents: 'module.exports = { isMainThread: true };' };
// cbor-x's optional native string extractor: loading it (and its libc probe) costs a process
// ~4 ms at start, which a short-lived CLI never wins back. Left out, it throws at load, which
// cbor-x catches and then decodes in pure JS. The shim leaves it out too: it decodes only small
// requests, as fast in JS (bench/RESULTS.md, issue 15, session 10), and loading the addon (Node's
// CommonJS loader, node-gyp-build, detect-libc, the .node file) cost a settled shim ~0.8 MiB Pss_Anon.
const CBOR_EXTRACT = { pkg: 'cbor-x', path: 'cbor-extract', throwOnLoad: true };
// prom-client's AggregatorRegistry (for node:cluster workers, which no daemon runs): its module
// loads node:cluster and with it cluster's internals at every start.
const PROM_CLUSTER = { pkg: 'prom-client', path: './lib/cluster' };
// prom-client's Summary (and with it tdigest, bintrees and its time windows): no shim metric is a
// summary (daemon/metrics-catalogue.ts). ~21 KB of source a shim's heap would keep for good.
const PROM_SUMMARY = { pkg: 'prom-client', path: './lib/summary' };
// sonic-boom calls assert only when a destination closes: node:assert (and its helpers) is loaded
// then, not at every start.
const SONIC_ASSERT = { pkg: 'sonic-boom', path: 'assert', contents: 'module.exports = (...a) => require("node:assert")(...a);' };
// virtqemud's start (issue 15 target 4: a restart's first listing): built-ins none of recovery,
// the sockets or a listing touch, loaded on first use of one of their exports (lazyBuiltins below).
// Its shebang's heap flag makes Node compile each built-in it loads from source (V8 rejects Node's
// built-in code cache under a changed flag), so every one left out saves a compile at start.
const VIRTQEMUD_LAZY_BUILTINS = ['crypto', 'child_process', 'readline', 'tls', 'http', 'https', 'zlib'];
// The CLI's head is a shell launcher that is also valid JavaScript (`':'` is a string, `//` a
// comment): run as a program, sh execs node on the fast path for hot read commands (virtq-fast.cjs,
// unless VIRTQ_NO_FAST is set; only when a word of the command line is list, dominfo, --version
// or -V, so other commands do not pay its start) — exec, not a waited child: sh waiting cost ~14 ms
// of CPU a run — and the fast path runs a command line it does not take on the full CLI's bundle
// in its own process. A command line with the word vol-upload or vol-download goes the same way to
// the lean entry for those two (virtq-transfer.cjs, decision 0012). Otherwise sh execs node on the CLI's startup snapshot when one built by this node binary
// sits beside it (its name carries the binary's size, mtime and inode; sh checks it without a fork
// where the build's markers are: scripts/launcher-head.mjs), else node on this same file, as `node dist/bin/virtq.js` always runs it (docs/decisions/0028-cli-startup-snapshot.md).
// The version alone (`--version` or `-V`, nothing else) sh prints itself, from cli/version.ts read
// here at build: that line costs no node start at all; SIGPIPE ignored and the status 0 whatever
// the write did, as the CLI does when stdout is closed.
const VERSION = /VERSION = '([^'\\]+)'/.exec(readFileSync('cli/version.ts', 'utf8'))?.[1];
if (VERSION === undefined) throw new Error('cli/version.ts: no VERSION found');
const CLI_LAUNCHER = `#!/bin/sh
':' //; case $#-$1-$VIRTQ_NO_FAST in 1---version-|1--V-) trap '' PIPE; echo ${VERSION} 2>/dev/null; exit 0 ;; esac; d=$0; [ -L "$d" ] && d=$(readlink -f -- "$d"); case $d in */*) d=\${d%/*} ;; *) d=. ;; esac; case " $* " in *" list "*|*" dominfo "*|*" --version "*|*" -V "*) if [ -z "$VIRTQ_NO_FAST" ] && [ -f "$d/virtq-fast.cjs" ]; then exec node "$d/virtq-fast.cjs" "$@"; fi ;; *" vol-upload "*|*" vol-download "*) if [ -z "$VIRTQ_NO_FAST" ] && [ -f "$d/virtq-transfer.cjs" ]; then exec node "$d/virtq-transfer.cjs" "$@"; fi ;; esac; if [ -z "$VIRTQ_NO_SNAPSHOT" ]; then ${snapshotExec('virtq', '')}; fi; exec node "$0" "$@"`;
// virtqemud's head is a launcher like the CLI's (sh and JavaScript at once): run as a program, sh
// execs node on virtqemud's startup snapshot (aggregator/snapshot-main.ts) when one built by the
// `node` on PATH sits beside it (virtqemud-SIZE-MTIME-INODE.blob, as the CLI's; found without a
// fork where the build's markers are: scripts/launcher-head.mjs), else node on this
// same file (the ESM bundle), which is also what `node dist/bin/virtqemud.js` runs. `exec` keeps
// the pid (socket activation's LISTEN_PID). A fleet member (--cluster) loads etcd3 from
// node_modules by import(), which a snapshot's code cannot do: it runs the bundle. Both ways run
// under the same heap flag (the snapshot is built with it: V8 refuses a snapshot made under other
// flags). VIRTQ_NO_SNAPSHOT=1 runs the bundle (docs/decisions/0032-virtqemud-startup-snapshot.md).
const VIRTQEMUD_FLAGS = '--max-semi-space-size=4';
const VIRTQEMUD_LAUNCHER = `#!/bin/sh
':' //; d=$0; [ -L "$d" ] && d=$(readlink -f -- "$d"); case $d in */*) d=\${d%/*} ;; *) d=. ;; esac; case " $* " in *" --cluster"*) ;; *) if [ -z "$VIRTQ_NO_SNAPSHOT" ]; then ${snapshotExec('virtqemud', VIRTQEMUD_FLAGS)}; fi ;; esac; exec node ${VIRTQEMUD_FLAGS} "$0" "$@"`;
// What virtqemud's bundle and its snapshot's leave out (see each above).
const VIRTQEMUD_LEAVE_OUT = [PUSHGATEWAY, THREAD_STREAM, PINO_WORKER_THREADS, PROM_CLUSTER, SONIC_ASSERT, CBOR_EXTRACT];
const binaries = [
  // The shim's source text stays in its heap for as long as it runs (V8 compiles functions lazily
  // from it): without whitespace it is ~0.3 MiB smaller per shim (bench/RESULTS.md, issue 15,
  // session 9). Names are kept, so stack traces still name functions, but not source lines.
  // Its schema checks are generated here (scripts/shim-checks.mjs): no TypeBox code in a shim.
  // A fixed MALLOC_MMAP_THRESHOLD_=32768 was tried (session 13): −3.2 MiB per shim at load 26–48, but
  // no change on a quiet machine (8 VMs: 11.98 vs 12.06 MiB PSS) and +15 ms of CPU to the ready line
  // (bench/RESULTS.md, issue 15 target 2, quiet verdicts of session 13), so it is not set.
  // The shim is two files: its entry (shim/entry.ts, the program on PATH, with the shebang) and its
  // bundle as a CommonJS body, which the entry compiles through V8's code cache (shim/code-cache.ts).
  // --expose-gc is on the command line, not set at run time (shim/warm-up.ts), because V8 takes a
  // code cache only under the flags it was made with, and a flag set at run time changes them.
  { entry: 'shim/main.ts', out: 'dist/bin/virtq-shim-body.cjs', shimEntry: { entry: 'shim/entry.ts', out: 'dist/bin/virtq-shim.js' }, shebang: `#!/usr/bin/env -S UV_THREADPOOL_SIZE=1 MALLOC_ARENA_MAX=2 node ${LEAN} ${SHIM_FLUSH} --expose-gc`, leaveOut: [PUSHGATEWAY, DEFAULT_METRICS, THREAD_STREAM, PINO_WORKER_THREADS, CBOR_EXTRACT, PROM_CLUSTER, PROM_SUMMARY], minifyWhitespace: true, precompiledChecks: true },
  // virtqemud runs no worker threads either (pino's isMainThread); its CBOR is cbor-x's pure JS, as
  // the CLI's: the native extractor only speeds up decoding long strings, and virtqemud decodes
  // small requests (a listing is encoded), while finding it costs ~13 ms at start (detect-libc's
  // package.json reads, a dlopen). Its lazy built-ins: VIRTQEMUD_LAZY_BUILTINS.
  { entry: 'aggregator/main.ts', out: 'dist/bin/virtqemud.js', shebang: VIRTQEMUD_LAUNCHER, leaveOut: VIRTQEMUD_LEAVE_OUT, lazyBuiltins: VIRTQEMUD_LAZY_BUILTINS, cborWithoutProbe: true },
  // Uploads allocate a 1 MiB buffer per chunk: with glibc's default thresholds each costs page
  // faults (~260k per GiB); these keep such buffers mapped (docs/decisions/0012-storage-dir-driver.md).
  { entry: 'storaged/main.ts', out: 'dist/bin/virtstoraged.js', shebang: '#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=67108864 node', leaveOut: [PUSHGATEWAY, THREAD_STREAM] },
  { entry: 'secretd/main.ts', out: 'dist/bin/virtsecretd.js', shebang: '#!/usr/bin/env node', leaveOut: [PUSHGATEWAY, THREAD_STREAM] },
  { entry: 'nodedevd/main.ts', out: 'dist/bin/virtnodedevd.js', shebang: '#!/usr/bin/env node', leaveOut: [PUSHGATEWAY, THREAD_STREAM] },
  { entry: 'networkd/main.ts', out: 'dist/bin/virtnetworkd.js', shebang: '#!/usr/bin/env node', leaveOut: [PUSHGATEWAY, THREAD_STREAM] },
  { entry: 'cli/bin.ts', out: 'dist/bin/virtq.js', shebang: CLI_LAUNCHER, leaveOut: [CBOR_EXTRACT] },
];

/** An esbuild plugin replacing each `{ pkg, path }` (a require of `path` from inside package `pkg`) with a stub. */
function leaveOut(modules) {
  return {
    name: 'virtq-leave-out',
    setup(b) {
      for (const m of modules) {
        const filter = new RegExp(`^${m.path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);
        b.onResolve({ filter }, (args) => (args.importer.includes(`/node_modules/${m.pkg}/`) ? { path: `${m.pkg}:${m.path}`, namespace: 'virtq-left-out' } : undefined));
      }
      b.onLoad({ filter: /.*/, namespace: 'virtq-left-out' }, (args) => {
        const why = JSON.stringify(`${args.path} is left out of this bundle (scripts/build.mjs)`);
        const atLoad = modules.some((m) => m.throwOnLoad === true && `${m.pkg}:${m.path}` === args.path);
        const given = modules.find((m) => m.contents !== undefined && `${m.pkg}:${m.path}` === args.path)?.contents;
        if (given !== undefined) return { contents: given, loader: 'js' };
        return { contents: atLoad ? `throw new Error(${why});` : `module.exports = function leftOut() { throw new Error(${why}); };`, loader: 'js' };
      });
    },
  };
}

// dist/ is overwritten in place, never removed first: tests running meanwhile keep their binaries.
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
const shimChecks = await shimChecksPlugin();
await Promise.all(binaries.map(async (b) => {
  await build({
    entryPoints: [b.entry],
    outfile: b.out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: b.shimEntry === undefined ? 'esm' : 'cjs',
    ...(b.shimEntry === undefined ? {} : { define: { 'import.meta.url': 'globalThis.__virtqBinUrl' } }),
    minifyWhitespace: b.minifyWhitespace === true,
    // VIRTQ_BUILD_SOURCEMAP=1 (measurement only: bench/shim/heap-modules.mjs): an external map beside each
    // bundle, with no comment in it, so the bundle's code is the same byte for byte.
    sourcemap: process.env['VIRTQ_BUILD_SOURCEMAP'] === '1' ? 'external' : false,
    legalComments: 'none',
    // cbor-extract is cbor-x's optional native accelerator; pure JS is used without it. So are
    // ws's optional native helpers (bufferutil, utf-8-validate), tried in a try/catch.
    // etcd3 (an etcd fleet's client, imported only with --cluster) reads its .proto files beside
    // its own modules at run time: it stays a package in node_modules, not part of a bundle.
    external: ['cbor-extract', 'bufferutil', 'utf-8-validate', 'etcd3'],
    ...(b.shimEntry === undefined ? { banner: { js: `${b.shebang}\nimport { createRequire as __vqCreateRequire } from 'node:module'; const require = __vqCreateRequire(import.meta.url);` } } : {}),
    logLevel: 'warning',
    plugins: [
      ...(b.leaveOut.length > 0 ? [leaveOut(b.leaveOut)] : []),
      ...(b.lazyBuiltins === undefined ? [] : [lazyBuiltins(b.lazyBuiltins)]),
      ...(b.cborWithoutProbe === true ? [cborWithoutProbe()] : []),
      ...(b.precompiledChecks === true ? [shimChecks] : []),
    ],
  });
  if (b.precompiledChecks === true) await buildShimTypebox(b.out);
  if (b.shimEntry !== undefined) {
    const sha = createHash('sha256').update(readFileSync(b.out)).digest('hex');
    await build({
      entryPoints: [b.shimEntry.entry], outfile: b.shimEntry.out, bundle: true, platform: 'node', target: 'node20', format: 'esm',
      minifyWhitespace: true, sourcemap: false, legalComments: 'none', logLevel: 'warning',
      banner: { js: b.shebang }, define: { __VIRTQ_SHIM_BODY_SHA__: JSON.stringify(sha) },
    });
    chmodSync(b.shimEntry.out, 0o755);
    return;
  }
  chmodSync(b.out, 0o755);
}));

// Built-ins Node 20's snapshot builder cannot hold (they fail it with "Unknown external
// reference"): in the snapshot's bundle each is a module of getters that loads it on first use.
const SNAPSHOT_LAZY_BUILTINS = ['module', 'tls', 'child_process', 'readline', 'http', 'https', 'http2'];

/** esbuild's onLoad result for a stand-in of module `id`: each export a getter that evaluates `id` at its first use. */
function lazyExports(req, id) {
  const getters = Object.keys(req(id)).map((k) => `get ${JSON.stringify(k)}() { return load()[${JSON.stringify(k)}]; }`);
  return { contents: `let m; const load = () => (m ??= require(${JSON.stringify(id)}));\nmodule.exports = { ${getters.join(', ')} };`, loader: 'js', resolveDir: '.' };
}

/** An esbuild plugin making each of the built-ins `names` load on first use of one of its exports. */
function lazyBuiltins(names) {
  const req = createRequire(import.meta.url);
  return {
    name: 'virtq-lazy-builtins',
    setup(b) {
      const filter = new RegExp(`^(node:)?(${names.join('|')})$`);
      b.onResolve({ filter }, (args) => (args.namespace === 'virtq-lazy-builtin' ? { path: args.path, external: true } : { path: args.path.replace(/^node:/, ''), namespace: 'virtq-lazy-builtin' }));
      b.onLoad({ filter: /.*/, namespace: 'virtq-lazy-builtin' }, (args) => lazyExports(req, `node:${args.path}`));
    },
  };
}

/**
 * The CLI's V8 startup snapshot (docs/decisions/0028-cli-startup-snapshot.md): cli/snapshot-main.ts
 * bundled as CommonJS (what `--build-snapshot` runs), snapshotted by this node binary into
 * dist/bin/virtq-SIZE-MTIME-INODE.blob, the name the launcher in dist/bin/virtq.js looks for. Never
 * committed; when it cannot be built the CLI runs without it, so a failure only warns.
 */
async function buildCliSnapshot() {
  const entry = '.cache/snapshot/virtq-snapshot.cjs';
  const st = statSync(process.execPath);
  const blob = `dist/bin/virtq-${st.size}-${Math.floor(st.mtimeMs / 1000)}-${st.ino}.blob`;
  try {
    await build({
      entryPoints: ['cli/snapshot-main.ts'], outfile: entry, bundle: true, platform: 'node', target: 'node20', format: 'cjs',
      sourcemap: false, legalComments: 'none', external: ['cbor-extract', 'bufferutil', 'utf-8-validate', 'etcd3'], logLevel: 'error',
      // The bundle's source text is part of the snapshot's heap: less text, less to deserialize.
      minifyWhitespace: true, minifySyntax: true,
      // The snapshot is built in one place and run from another: the launcher tells it where it is.
      define: { 'import.meta.url': 'globalThis.__virtqBinUrl' },
      plugins: [leaveOut([CBOR_EXTRACT]), lazyBuiltins(SNAPSHOT_LAZY_BUILTINS)],
    });
    for (const old of readdirSync('dist/bin').filter((f) => /^virtq-.*\.blob(\.node|\.mtime)?$/.test(f))) rmSync(`dist/bin/${old}`);
    execFileSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', entry], { stdio: ['ignore', 'inherit', 'inherit'] });
    writeBlobMarkers(blob, process.execPath);
  } catch (err) {
    console.warn(`build: no startup snapshot for the CLI (it runs without one): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * virtqemud's V8 startup snapshot (docs/decisions/0032-virtqemud-startup-snapshot.md):
 * aggregator/snapshot-main.ts bundled as CommonJS with what virtqemud's bundle leaves out and
 * loads lazily, snapshotted by this node binary under virtqemud's heap flag into
 * dist/bin/virtqemud-SIZE-MTIME-INODE.blob, the name its launcher looks for. Never committed; when
 * it cannot be built virtqemud runs its bundle, so a failure only warns.
 */
async function buildVirtqemudSnapshot() {
  const entry = '.cache/snapshot/virtqemud-snapshot.cjs';
  const st = statSync(process.execPath);
  const blob = `dist/bin/virtqemud-${st.size}-${Math.floor(st.mtimeMs / 1000)}-${st.ino}.blob`;
  try {
    await build({
      entryPoints: ['aggregator/snapshot-main.ts'], outfile: entry, bundle: true, platform: 'node', target: 'node20', format: 'cjs',
      sourcemap: false, legalComments: 'none', external: ['cbor-extract', 'bufferutil', 'utf-8-validate', 'etcd3'], logLevel: 'error',
      // The bundle's source text is part of the snapshot's heap: less text, less to deserialize.
      minifyWhitespace: true, minifySyntax: true,
      define: { 'import.meta.url': 'globalThis.__virtqBinUrl' },
      plugins: [leaveOut(VIRTQEMUD_LEAVE_OUT), lazyBuiltins([...new Set([...SNAPSHOT_LAZY_BUILTINS, ...VIRTQEMUD_LAZY_BUILTINS])]), cborWithoutProbe(), startTimeAtRun(), lazyPackage(SNAPSHOT_LAZY_PACKAGE)],
    });
    for (const old of readdirSync('dist/bin').filter((f) => /^virtqemud-.*\.blob(\.node|\.mtime)?$/.test(f))) rmSync(`dist/bin/${old}`);
    execFileSync(process.execPath, [VIRTQEMUD_FLAGS, '--snapshot-blob', blob, '--build-snapshot', entry], { stdio: ['ignore', 'inherit', 'pipe'] });
    writeBlobMarkers(blob, process.execPath);
  } catch (err) {
    console.warn(`build: no startup snapshot for virtqemud (it runs its bundle): ${err instanceof Error ? err.message : String(err)}`);
  }
}

// prom-client's CPU counter requires @opentelemetry/api when it is loaded, for exemplars virtqemud
// never enables: evaluated in the snapshot it was ~5 M instructions (~3%) of every start's
// deserialization (bench/RESULTS.md, issue 15 target 4, session 16). It is evaluated at first use.
const SNAPSHOT_LAZY_PACKAGE = '@opentelemetry/api';

/** An esbuild plugin making the bundled package `pkg` evaluate on first use of one of its exports. */
function lazyPackage(pkg) {
  const req = createRequire(import.meta.url);
  const filter = new RegExp(`^${pkg.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);
  return {
    name: 'virtq-lazy-package',
    setup(b) {
      // The getters' own require of `pkg` resolves to the package itself (bundled, evaluated when called).
      b.onResolve({ filter }, (args) => (args.namespace === 'virtq-lazy-package' ? { path: req.resolve(pkg) } : { path: pkg, namespace: 'virtq-lazy-package' }));
      b.onLoad({ filter: /.*/, namespace: 'virtq-lazy-package' }, () => lazyExports(req, pkg));
    },
  };
}

/**
 * prom-client's process_start_time_seconds computes the start time when its module is evaluated:
 * in a snapshot that is the build's time. This one computes it at the first scrape, from
 * process.uptime(), which counts from the deserialized process's own start.
 */
function startTimeAtRun() {
  const req = createRequire(import.meta.url);
  const metricsDir = join(dirname(req.resolve('prom-client/package.json')), 'lib', 'metrics');
  const contents = `const Gauge = require('../gauge');
module.exports = (registry, config = {}) => {
  const labels = config.labels ?? {};
  let start;
  new Gauge({ name: (config.prefix ?? '') + 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', registers: registry ? [registry] : undefined, labelNames: Object.keys(labels), aggregator: 'omit',
    collect() { start ??= Math.round(Date.now() / 1000 - process.uptime()); this.set(labels, start); } });
};
module.exports.metricNames = ['process_start_time_seconds'];`;
  return {
    name: 'virtq-start-time-at-run',
    setup(b) {
      b.onResolve({ filter: /^\.\/metrics\/processStartTime$/ }, (args) => (args.importer.includes('/node_modules/prom-client/') ? { path: 'processStartTime', namespace: 'virtq-start-time' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'virtq-start-time' }, () => ({ contents, loader: 'js', resolveDir: metricsDir }));
    },
  };
}

// virtqemud's web view: its page (aggregator/web/page) and xterm.js from npm, copied as they are
// into dist/web, which virtqemud serves (aggregator/web/static-files.ts): nothing from a CDN.
const WEB_VENDOR = [
  ['node_modules/@xterm/xterm/lib/xterm.mjs', 'xterm.mjs'],
  ['node_modules/@xterm/xterm/css/xterm.css', 'xterm.css'],
  ['node_modules/@xterm/xterm/LICENSE', 'xterm.LICENSE.txt'],
  ['node_modules/@xterm/addon-fit/lib/addon-fit.mjs', 'addon-fit.mjs'],
  ['node_modules/@xterm/addon-fit/LICENSE', 'addon-fit.LICENSE.txt'],
];
cpSync('aggregator/web/page', 'dist/web', { recursive: true });
mkdirSync('dist/web/vendor', { recursive: true });
for (const [from, to] of WEB_VENDOR) {
  // The source maps stay behind: a browser would ask for them (a 404) each time its tools open.
  writeFileSync(`dist/web/vendor/${to}`, readFileSync(from, 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
}

/**
 * protocol/codec.ts's `cbor-x` as its pure-JS encoder module alone (Encoder extends Decoder): the
 * package's node entry loads `module` to probe for cbor-extract, which the CLI leaves out anyway
 * (CBOR_EXTRACT), so the same code runs without the probe's cost.
 */
function cborWithoutProbe() {
  const req = createRequire(import.meta.url);
  return {
    name: 'virtq-cbor-without-probe',
    setup(b) {
      b.onResolve({ filter: /^cbor-x$/ }, () => ({ path: join(dirname(req.resolve('cbor-x/package.json')), 'encode.js') }));
    },
  };
}

/**
 * The CLI's fast path (decision 0028): `--version`, `list` and `dominfo` on a local virtqemud.
 * Its body (cli/fast-main.ts) is bundled alone as CommonJS, wrapped in a function as Node's own
 * loader wraps a module, into dist/bin/virtq-fast-body.js; its entry (cli/fast-entry.ts, the file
 * the launcher runs, dist/bin/virtq-fast.cjs) compiles the body with the V8 code cache that
 * scripts/fast-cache.mjs makes here from runs of the body's code paths (dist/bin/virtq-fast.cache;
 * without it the body compiles from source). The build fails when a module that would make the
 * body slow gets in: the point of the bundle is what it leaves out.
 */
async function buildCliFastPath() {
  const body = 'dist/bin/virtq-fast-body.js';
  const result = await build({
    entryPoints: ['cli/fast-main.ts'], outfile: body, bundle: true, platform: 'node', target: 'node20', format: 'cjs',
    sourcemap: false, legalComments: 'none', external: ['cbor-extract'], logLevel: 'warning', metafile: true, write: false,
    minifyWhitespace: true, minifySyntax: true,
    // crypto only hashes a socket name too long for its directory: loaded on that first use.
    plugins: [leaveOut([CBOR_EXTRACT]), lazyBuiltins(['crypto']), cborWithoutProbe()],
  });
  // cbor-x, RpcClient and its connection: cli/fast-call.ts and protocol/plain-cbor.ts do the one call without them.
  const heavy = Object.keys(result.metafile.inputs).filter((f) => /node_modules\/(commander|@sinclair|pino|etcd3|ws|prom-client|@xmldom|cbor-x)\/|protocol\/(index|catalogue|schema|definition|host-program|vm-program|client|connection|codec)\.ts$/.test(f));
  if (heavy.length > 0) throw new Error(`${body} must stay small, but bundles ${heavy.join(', ')} (decision 0028)`);
  // One line of wrapper before the module's own first line: its line numbers stay the bundle's.
  writeFileSync(body, `(function (exports, require, module, __filename, __dirname) {${result.outputFiles[0].text}\n})`);
  const entry = await build({
    entryPoints: ['cli/fast-entry.ts'], outfile: 'dist/bin/virtq-fast.cjs', bundle: true, platform: 'node', target: 'node20', format: 'cjs',
    sourcemap: false, legalComments: 'none', logLevel: 'warning', metafile: true, minifyWhitespace: true, minifySyntax: true,
  });
  const bundled = Object.keys(entry.metafile.inputs).filter((f) => f !== 'cli/fast-entry.ts');
  if (bundled.length > 0) throw new Error(`dist/bin/virtq-fast.cjs must hold the entry alone, but bundles ${bundled.join(', ')}`);
  rmSync('dist/bin/virtq-fast.cache', { force: true });
  try {
    execFileSync(process.execPath, ['scripts/fast-cache.mjs'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });
  } catch (err) {
    console.warn(`build: no code cache for the CLI's fast path (it compiles from source): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The lean entry for `vol-upload` and `vol-download` (cli/transfer-main.ts, decision 0012): the
 * two commands' own code, the RPC client with its streams and cbor-x, as one CommonJS file
 * (dist/bin/virtq-transfer.cjs) the launcher execs node on. The build fails when commander, the
 * catalogue or its validators get in: the point of the file is their start left out.
 */
async function buildCliTransfer() {
  const out = 'dist/bin/virtq-transfer.cjs';
  const result = await build({
    entryPoints: ['cli/transfer-main.ts'], outfile: out, bundle: true, platform: 'node', target: 'node20', format: 'cjs',
    sourcemap: false, legalComments: 'none', external: ['cbor-extract'], logLevel: 'warning', metafile: true,
    minifyWhitespace: true, minifySyntax: true,
    plugins: [leaveOut([CBOR_EXTRACT]), lazyBuiltins(['crypto']), cborWithoutProbe()],
  });
  const heavy = Object.keys(result.metafile.inputs).filter((f) => /node_modules\/(commander|@sinclair|pino|etcd3|ws|prom-client|@xmldom)\/|protocol\/(index|catalogue|schema|definition|host-program|vm-program|storage-program)\.ts$/.test(f));
  if (heavy.length > 0) throw new Error(`${out} must stay lean, but bundles ${heavy.join(', ')} (decision 0012)`);
}

await buildCliFastPath();
await buildCliTransfer();
await buildCliSnapshot();
await buildVirtqemudSnapshot();
