// Shared helpers of the shim and virtqemud benchmarks (issues #3 and #4): options, statistics,
// machine facts, a private snapshot of dist/, temporary roots and their cleanup, /proc readings,
// and a minimal QMP client for the raw-QEMU side of the side-by-side figures.
//
// The benchmarks never run TypeScript: they drive the built binaries and dist/lib.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

// ---- options -----------------------------------------------------------------------------------

/** `--name value` / `--flag` reader over process.argv. */
export function options(argv = process.argv.slice(2)) {
  return {
    get(name, dflt) {
      const i = argv.indexOf(`--${name}`);
      return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
    },
    num(name, dflt) {
      const i = argv.indexOf(`--${name}`);
      return i >= 0 ? Number(argv[i + 1]) : dflt;
    },
    has(name) {
      return argv.includes(`--${name}`);
    },
  };
}

// ---- statistics --------------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array. */
export function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** n, min, p50, p90, p99, p99.9, max, mean of `values`. */
export function summarize(values) {
  const s = Float64Array.from(values).sort();
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, min: s[0], p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), p999: pct(s, 99.9), max: s[s.length - 1], mean };
}

export const median = (values) => pct(Float64Array.from(values).sort(), 50);

/** Formats a number of milliseconds (or µs) for a table. */
export function fmt(v, digits = 1) {
  if (v === undefined || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return v.toFixed(digits);
}

/** A markdown table from a header and rows. */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

// ---- machine facts -----------------------------------------------------------------------------

export const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');

export function machineFacts(qemuBinary = 'qemu-system-x86_64') {
  const q = spawnSync(qemuBinary, ['--version'], { encoding: 'utf8' });
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    nproc: os.availableParallelism(),
    memGiB: Math.round(memKiB / 2 ** 20),
    kernel: os.release(),
    qemu: (q.stdout ?? '').split('\n')[0] ?? 'unknown',
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** Number of processes currently running the node binary (they share its text pages, and so its PSS). */
export function nodeProcessCount() {
  let n = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0')[0].endsWith('node')) n++;
    } catch { /* gone */ }
  }
  return n;
}

// ---- dist snapshot -----------------------------------------------------------------------------

/**
 * Copies dist/ (or `from`) to .cache/bench/<name>/dist and returns that path. Other engineers
 * rebuild dist/ while benchmarks run; a private copy keeps one run on one build. .cache/ is
 * inside the repo, so dist/lib's bare imports still resolve from its node_modules.
 */
export async function snapshotDist(name, from = join(REPO, 'dist')) {
  const needed = ['bin/virtq-shim.js', 'bin/virtqemud.js', 'bin/virtq.js', 'lib/protocol/index.js'];
  for (let i = 0; i < 120 && !needed.every((f) => existsSync(join(from, f))); i++) await sleep(500);
  if (!needed.every((f) => existsSync(join(from, f)))) throw new Error(`${from} is not built: run npm run build`);
  const to = join(REPO, '.cache', 'bench', name, 'dist');
  rmSync(to, { recursive: true, force: true });
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, to, { recursive: true });
  return to;
}

// ---- roots and cleanup -------------------------------------------------------------------------

/** A short temporary root (unix socket paths are limited to 107 bytes). */
export function tmpRoot(prefix) {
  return mkdtempSync(join('/tmp', prefix));
}

/** Pids recorded in ROOT/run/shims/*.json (shims and their QEMUs). */
export function recordedPids(root) {
  const dir = join(root, 'run', 'shims');
  const pids = [];
  let files = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    return pids;
  }
  for (const f of files) {
    try {
      const s = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      for (const p of [s.qemuPid, s.shimPid]) if (Number.isInteger(p)) pids.push(p);
    } catch { /* partial or gone */ }
  }
  return pids;
}

/** Pids (not this one) whose command line contains `dir`. */
export function pidsUnder(dir) {
  const found = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(dir)) found.push(pid);
    } catch { /* gone */ }
  }
  return found;
}

function cmdlineHas(pid, dir) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(dir) || readFileSync(`/proc/${pid}/environ`, 'latin1').includes(dir);
  } catch {
    return false;
  }
}

/**
 * SIGKILLs every process this benchmark started under `root`: the pids in its state files (only
 * when the process still names the root, so a recycled pid is never hit — shims get the root on
 * their command line, QEMUs their sockets under it) and anything whose command line contains it.
 */
export function killUnder(root) {
  const killed = new Set();
  for (const pid of recordedPids(root)) {
    if (!cmdlineHas(pid, root)) continue;
    try { process.kill(pid, 'SIGKILL'); killed.add(pid); } catch { /* gone */ }
  }
  for (const pid of pidsUnder(root)) {
    try { process.kill(pid, 'SIGKILL'); killed.add(pid); } catch { /* gone */ }
  }
  return [...killed];
}

/** Registers roots and child processes to be killed and removed however the run ends. */
export function cleanupRegistry() {
  const roots = new Set();
  const children = new Set();
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) try { c.kill('SIGKILL'); } catch { /* gone */ }
    for (const r of roots) {
      // Twice: a shim killed in the first pass may have had a QEMU starting.
      killUnder(r);
      killUnder(r);
      rmSync(r, { recursive: true, force: true });
    }
  };
  process.once('exit', run);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, () => { run(); process.exit(130); });
  process.once('uncaughtException', (err) => { console.error(err); run(); process.exit(1); });
  process.once('unhandledRejection', (err) => { console.error(err); run(); process.exit(1); });
  return {
    root(r) { roots.add(r); return r; },
    child(c) { children.add(c); c.once('exit', () => children.delete(c)); return c; },
    /** Kills and removes one root now. */
    async drop(r) {
      killUnder(r);
      await sleep(50);
      killUnder(r);
      rmSync(r, { recursive: true, force: true });
      roots.delete(r);
    },
    run,
  };
}

// ---- /proc -------------------------------------------------------------------------------------

/** Rss, Pss and its parts from /proc/PID/smaps_rollup, in KiB. */
export function smapsRollup(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return {
    rss: field('Rss'), pss: field('Pss'), pssAnon: field('Pss_Anon'), pssFile: field('Pss_File'), pssShmem: field('Pss_Shmem'),
    privateDirty: field('Private_Dirty'), privateClean: field('Private_Clean'), sharedClean: field('Shared_Clean'),
  };
}

/** Threads and CPU seconds (user + system) of a process. */
export function procCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = os.constants?.CLK_TCK ?? 100;
  return { cpuSec: (Number(f[11]) + Number(f[12])) / ticks, threads: Number(f[17]) };
}

/** CPU time (ms) all threads of a process have run: the sum of each thread's schedstat (ns, precise). */
export function cpuMs(pid) {
  let ns = 0;
  let tasks = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  for (const t of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch { /* thread gone */ }
  }
  return ns / 1e6;
}

// ---- small async helpers -----------------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();

/** Resolves with the first line `stream` prints (rejects when `child` exits before). */
export function firstLine(child, stream = child.stdout, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms`)), timeoutMs);
    const onData = (d) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i < 0) return;
      stream.off('data', onData);
      clearTimeout(timer);
      resolve({ line: buf.slice(0, i), at: now() });
    };
    stream.on('data', onData);
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`exited (${code ?? sig}) before printing: ${buf.slice(0, 500)}`)); });
  });
}

/** Resolves with the time a child exits (or at once when it has). */
export function exitOf(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(now());
  return new Promise((resolve) => child.once('exit', () => resolve(now())));
}

/** The idle guest (multiboot `cli; hlt`), as test/helpers/test-guest.ts finds it. */
export function idleGuestPath() {
  const cache = process.env.XDG_CACHE_HOME || join(os.homedir(), '.cache');
  const p = join(process.env.VIRTQ_TEST_GUEST_DIR || join(cache, 'virtq', 'test-guest'), 'idle.bin');
  if (!existsSync(p)) throw new Error(`${p} is missing: run node scripts/build-idle-guest.mjs`);
  return p;
}

export function idleDefinition(name, accel = 'tcg') {
  return { name, memoryMiB: 32, vcpus: 1, accel, kernel: { path: idleGuestPath() } };
}

// ---- a minimal QMP client (raw QEMU side) --------------------------------------------------------

/** A QMP session over a connected socket: waits for the greeting, then `execute()`. */
export function qmpSession(socket) {
  let buf = '';
  const waiting = [];
  let greeted;
  const greeting = new Promise((r) => { greeted = r; });
  socket.setEncoding('utf8');
  // QEMU going away (SIGTERM, SIGKILL) resets the connection: that is expected here.
  socket.on('error', () => undefined);
  socket.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim() === '') continue;
      const msg = JSON.parse(line);
      if (msg.QMP !== undefined) greeted(msg);
      else if (msg.event !== undefined) continue;
      else waiting.shift()?.(msg);
    }
  });
  const closed = new Promise((r) => socket.once('close', r));
  return {
    greeting,
    closed,
    socket,
    execute(cmd, args) {
      return new Promise((resolve, reject) => {
        waiting.push((m) => (m.error ? reject(new Error(`${cmd}: ${m.error.desc}`)) : resolve(m.return)));
        socket.write(`${JSON.stringify(args === undefined ? { execute: cmd } : { execute: cmd, arguments: args })}\n`);
      });
    },
    close() { socket.destroy(); },
  };
}

/** Connects to a unix socket, retrying every `everyMs` until `deadline` (performance.now()). */
export function connectRetry(path, deadline, everyMs = 1) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect(path);
      s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
      s.once('error', (err) => {
        s.destroy();
        if (now() > deadline) reject(err);
        else setTimeout(attempt, everyMs);
      });
    };
    attempt();
  });
}

/**
 * Rewrites a shim's QEMU argv for another VM: new name and uuid, socket paths swapped. Without
 * -S when `withS` is false; with `-qmp unix:P,server=on,wait=off` in place of the monitor
 * chardev (QEMU serves QMP) when `qmpServer` is given.
 */
export function rewriteArgv(argv, from, to, { withS = true, qmpServer } = {}) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '-S' && !withS) continue;
    if (qmpServer !== undefined && a === '-chardev' && argv[i + 1].includes(from.monitor)) {
      out.push('-qmp', `unix:${qmpServer},server=on,wait=off`);
      i += 3; // -chardev X -mon Y
      continue;
    }
    a = a.replace(from.monitor, to.monitor ?? '').replace(from.console, to.console).replace(`guest=${from.name},`, `guest=${to.name},`).replace(from.uuid, to.uuid ?? crypto.randomUUID());
    out.push(a);
  }
  return out;
}

/** The argv a shim logged for its VM ("spawning qemu" in ROOT/log/NAME.log), and what to rewrite in it. */
export function shimArgv(root, name) {
  let argv;
  for (const line of readFileSync(join(root, 'log', `${name}.log`), 'utf8').split('\n')) {
    if (line.includes('"spawning qemu"')) argv = JSON.parse(line).argv;
  }
  if (argv === undefined) throw new Error(`no "spawning qemu" line in ${name}.log`);
  const s = JSON.parse(readFileSync(join(root, 'run', 'shims', `${name}.json`), 'utf8'));
  return { argv, from: { name, uuid: s.uuid, monitor: s.sockets.monitor, console: s.sockets.console } };
}

/**
 * Runs each benchmark section into `results[name]`; a section that throws is logged and
 * recorded under `results.errors`, and the run goes on with the next one.
 */
export function sectionRunner(results, log) {
  return async (name, fn) => {
    try {
      results[name] = await fn();
    } catch (err) {
      log(`${name} failed: ${err.stack ?? err}`);
      results.errors = { ...results.errors, [name]: String(err.message ?? err) };
    }
  };
}

/** A unix listener whose first connection `first` resolves with (later ones are drained). */
async function firstConnection(path) {
  let take;
  const first = new Promise((r) => { take = r; });
  const server = createServer((s) => { s.on('error', () => undefined); if (take !== undefined) { take(s); take = undefined; } else s.resume(); });
  await new Promise((res, rej) => { server.once('error', rej); server.listen(path, res); });
  return { first, close: () => server.close() };
}

/**
 * Raw QEMU with a shim's argv (`tmpl` from shimArgv, -S), this process as its monitor's and
 * console's listener: ms from the spawn to `cont` returned (greeting, qmp_capabilities, cont); then killed.
 */
export async function rawQemuStart(tmpl, dir, name, cleanup) {
  const mon = join(dir, `${name}-m.sock`);
  const con = join(dir, `${name}-c.sock`);
  const [ml, cl] = await Promise.all([firstConnection(mon), firstConnection(con)]);
  cl.first.then((s) => s.resume());
  const fd = openSync(join(dir, `${name}.log`), 'a');
  const t0 = now();
  const child = cleanup.child(spawn(tmpl.argv[0], rewriteArgv(tmpl.argv.slice(1), tmpl.from, { name, monitor: mon, console: con }), { stdio: ['ignore', fd, fd], detached: true }));
  closeSync(fd);
  const q = qmpSession(await ml.first);
  await q.greeting;
  await q.execute('qmp_capabilities');
  await q.execute('cont');
  const ms = now() - t0;
  child.kill('SIGKILL');
  await exitOf(child);
  q.close(); ml.close(); cl.close();
  return ms;
}

/**
 * One VM of a concurrent burst's floor: raw QEMU with a shim's argv (`argv`, already rewritten to
 * name its QMP server socket `qmp`), this process its monitor's client, polled every 20 ms from
 * `t0` (50 sockets polled faster would take this process a core from what it measures): greeting,
 * qmp_capabilities, `cont`. With `nodeCmd`, a cold Node (env + that command) spawned beside it, whose
 * exit is waited for too: the floor with one Node process per VM. `spawnArgv` spawns an argv (a
 * cgroup's spawner, or a plain spawn). Returns QEMU's child and its QMP session, for the caller to close.
 */
export async function burstVm({ argv, qmp, nodeCmd, t0, cleanup, spawnArgv = (a, o) => spawn(a[0], a.slice(1), o) }) {
  const node = nodeCmd === undefined ? undefined : spawnArgv(['/usr/bin/env', ...nodeCmd], { stdio: 'ignore', env: process.env });
  const nodeDone = node === undefined ? Promise.resolve() : exitOf(node);
  const child = cleanup.child(spawnArgv(['qemu-system-x86_64', ...argv], { stdio: 'ignore', detached: true }));
  const q = qmpSession(await connectRetry(qmp, t0 + 600_000, 20));
  await q.greeting;
  await q.execute('qmp_capabilities');
  await q.execute('cont');
  await nodeDone;
  return { child, q };
}

/** What an A/B bench over `--dist A[,B]` starts with: `--runs` (default `runs`), the dists, a cleanup registry, the wall clock (ms). */
export function distBench(runs) {
  const o = options();
  return { RUNS: o.num('runs', runs), DISTS: o.get('dist', join(REPO, 'dist')).split(','), cleanup: cleanupRegistry(), wall: () => performance.timeOrigin + now() };
}
