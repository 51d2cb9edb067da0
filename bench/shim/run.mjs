#!/usr/bin/env node
// Shim benchmark (issue #3). One VM per shim, the idle guest (multiboot `cli; hlt`, 32 MiB, TCG).
//
//   start    spawn → running, side by side and interleaved round by round:
//              raw-S   qemu-system-x86_64 with the shim's exact argv (-S, client chardevs for the
//                      monitor and console dialling listeners in this process); this process
//                      answers the greeting, sends qmp_capabilities + cont: spawn → `cont` returned.
//              raw-Q   the same argv without -S and with `-qmp unix:P,server=on,wait=off` instead of
//                      the monitor chardev: spawn → connect (retried every 1 ms) → query-status
//                      says running. What "raw QEMU start to running" means in HOST-FACTS.md.
//              shim    `virtq-shim --no-register --definition F` run through its shebang (the Node
//                      flags that ship): spawn → the ready JSON line (printed after `cont`), and
//                      spawn → first getState reply (connect after the line).
//            then destroy: raw SIGTERM → exit (waitpid) vs the shim's destroy call → reply.
//   rtt      getState round trips over the shim socket from a separate client process,
//            sequential, unpinned and both pinned to CPU 0 (taskset -a -cp 0 on the shim);
//            QMP query-status on a raw QEMU alongside, as the reference figure.
//   memory   RSS / PSS (/proc/PID/smaps_rollup) of shims with 1 and N VMs running (3 s and 30 s
//            after the last start), threads, CPU to the ready line, idle CPU once settled, and
//            one shim's PSS before and after a burst of getState calls.
//   variants (--variants) the same N-shim PSS (15 s after the last start) and start-up CPU for
//            flag sets and for bundles that differ from what ships in one thing each, interleaved
//            over 3 repetitions; plus the floor (a bare node:net server with the same flags).
//
//   node bench/shim/run.mjs [--rounds 20] [--kvm-rounds 10] [--calls 20000] [--rtt-rounds 3]
//                           [--qmp-calls 5000] [--vms 20] [--variants] [--variant-reps 3]
//                           [--variant-settle-ms 15000] [--variant-list a,b,...]
//                           [--only start,rtt,memory,variants] [--dist DIR] [--json out.json]
//
// It runs from a private copy of dist/ (.cache/bench/shim/dist): build first (npm run build).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  REPO, cleanupRegistry, connectRetry, exitOf, firstLine, fmt, idleDefinition, loadavg, machineFacts, median, nodeProcessCount,
  cpuMs, now, options, procCpu, qmpSession, rewriteArgv, shimArgv, sectionRunner, sleep, smapsRollup, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';

const SELF = fileURLToPath(import.meta.url);
const o = options();
const QEMU = process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64';

// ---- client mode: the getState / query-status loops run in their own (pinnable) process --------------
if (o.get('client') !== undefined) {
  const calls = o.num('calls', 20_000);
  const warm = o.num('warm', 2000);
  const lat = new Float64Array(calls);
  let call;
  let close;
  if (o.get('client') === 'pipelined') {
    // getState with `depth` calls in flight for `ms`: more objects live across scavenges than
    // sequential calls leave, which is what grows V8's young generation.
    const { RpcClient, systemClock } = await import(join(o.get('dist'), 'lib', 'protocol', 'index.js'));
    const rpc = await RpcClient.connect(o.get('socket'), { clock: systemClock(), defaultTimeoutMs: 30_000 });
    const args = { name: o.get('name') };
    const until = performance.now() + o.num('ms', 3000);
    let done = 0;
    await Promise.all(Array.from({ length: o.num('depth', 64) }, async () => {
      while (performance.now() < until) { await rpc.call('virtq', 'getState', args); done++; }
    }));
    rpc.close();
    process.stdout.write(`${JSON.stringify({ calls: done })}\n`);
    process.exit(0);
  }
  if (o.get('client') === 'getstate') {
    const { RpcClient, systemClock } = await import(join(o.get('dist'), 'lib', 'protocol', 'index.js'));
    const rpc = await RpcClient.connect(o.get('socket'), { clock: systemClock(), defaultTimeoutMs: 10_000 });
    const args = { name: o.get('name') };
    call = () => rpc.call('virtq', 'getState', args);
    close = () => rpc.close();
  } else {
    const q = qmpSession(connect(o.get('socket')));
    await q.greeting;
    await q.execute('qmp_capabilities');
    call = () => q.execute('query-status');
    close = () => q.close();
  }
  for (let i = 0; i < warm; i++) await call();
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await call();
    lat[i] = (performance.now() - t) * 1000;
  }
  close();
  process.stdout.write(`${JSON.stringify(summarize(lat))}\n`);
  process.exit(0);
}

const ROUNDS = o.num('rounds', 20);
const KVM_ROUNDS = o.num('kvm-rounds', 10);
const CALLS = o.num('calls', 20_000);
const RTT_ROUNDS = o.num('rtt-rounds', 3);
const QMP_CALLS = o.num('qmp-calls', 5000);
const VMS = o.num('vms', 20);
const VARIANT_REPS = o.num('variant-reps', 3);
const VARIANT_SETTLE_MS = o.num('variant-settle-ms', 15_000);
const VARIANT_LIST = o.get('variant-list');
const ONLY = new Set((o.get('only', `start,rtt,memory${o.has('variants') ? ',variants' : ''}`)).split(','));
const JSON_OUT = o.get('json');
const started = now();
const cleanup = cleanupRegistry();
const facts = { ...machineFacts(QEMU), loadBefore: loadavg() };
const DIST = await snapshotDist('shim', o.get('dist'));
const SHIM_BIN = join(DIST, 'bin', 'virtq-shim.js');
const SHEBANG = readFileSync(SHIM_BIN, 'utf8').split('\n')[0];
const R = cleanup.root(tmpRoot('vqbs-'));
mkdirSync(join(R, 'defs'));
mkdirSync(join(R, 'raw'));
const { RpcClient, systemClock } = await import(join(DIST, 'lib', 'protocol', 'index.js'));
const clock = systemClock();
const results = { facts, shebang: SHEBANG };
const log = (...a) => console.error(`[${((now() - started) / 1000).toFixed(1)}s load ${loadavg()}]`, ...a);

// ---- shims ------------------------------------------------------------------------------------------

/** How to run a shim: the shipped binary through its shebang, or `node FLAGS bundle` for a variant. */
const SHIPPED = { name: 'shipped', cmd: SHIM_BIN, pre: [], env: {} };

function writeDef(name, accel = 'tcg') {
  const file = join(R, 'defs', `${name}.json`);
  writeFileSync(file, JSON.stringify(idleDefinition(name, accel)));
  return file;
}

/** Spawns a shim for VM `name`; resolves at its ready line. */
async function startShim(name, { accel = 'tcg', variant = SHIPPED, paused = false, root = R } = {}) {
  const file = writeDef(name, accel);
  const t0 = now();
  const child = cleanup.child(spawn(variant.cmd, [...variant.pre, '--root', root, '--no-register', '--definition', file, ...(paused ? ['--paused'] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...variant.env },
  }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const { line, at } = await firstLine(child).catch((err) => { throw new Error(`${err.message}\n${stderr}`); });
  // CPU the shim used up to its ready line (its threads; QEMU not included).
  const cpuAtReady = cpuMs(child.pid);
  child.stdout.resume();
  const reply = JSON.parse(line);
  if (!reply.ok) throw new Error(`shim ${name}: ${line}\n${stderr}`);
  return { name, child, reply, t0, readyMs: at - t0, cpuAtReady };
}

async function shimApi(shim) {
  const rpc = await RpcClient.connect(shim.reply.socket, { clock, defaultTimeoutMs: 30_000 });
  return { rpc, call: (proc, args) => rpc.call('virtq', proc, { name: shim.name, ...args }) };
}

function stateFile(name, root = R) {
  return JSON.parse(readFileSync(join(root, 'run', 'shims', `${name}.json`), 'utf8'));
}

async function killShim(shim) {
  const s = stateFile(shim.name);
  for (const pid of [s.qemuPid, shim.reply.shimPid]) if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  await exitOf(shim.child);
}

// ---- raw QEMU -----------------------------------------------------------------------------------------

/** The shim's argv for template VM `tmpl` rewritten for VM `name` (see rewriteArgv). */
function argvFrom(tmpl, name, mon, con, opts = {}) {
  return rewriteArgv(tmpl.argv, tmpl.from, { name, monitor: mon, console: con }, opts);
}

/** Listens on `path`; resolves the first connection through `first`, drains the rest. */
async function listener(path) {
  let take;
  const first = new Promise((r) => { take = r; });
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    if (take !== undefined) { const t = take; take = undefined; t(sock); } else sock.resume();
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(path, resolve); });
  return { first, close: () => server.close() };
}

function spawnQemu(argv, name) {
  const fd = openSync(join(R, 'raw', `${name}.log`), 'a');
  try {
    return cleanup.child(spawn(QEMU, argv, { stdio: ['ignore', fd, fd], detached: true }));
  } finally {
    closeSync(fd);
  }
}

/** raw-S: the shim's argv, this process as the monitor's listener: spawn → cont returned; SIGTERM → exit. */
async function rawS(tmpl, name) {
  const mon = join(R, 'raw', `${name}-qmp.sock`);
  const con = join(R, 'raw', `${name}-con.sock`);
  const [ml, cl] = await Promise.all([listener(mon), listener(con)]);
  cl.first.then((s) => s.resume());
  const t0 = now();
  const child = spawnQemu(argvFrom(tmpl, name, mon, con), name);
  const q = qmpSession(await ml.first);
  await q.greeting;
  const greetMs = now() - t0;
  await q.execute('qmp_capabilities');
  await q.execute('cont');
  const runMs = now() - t0;
  const t1 = now();
  child.kill('SIGTERM');
  const exitMs = (await exitOf(child)) - t1;
  q.close();
  ml.close();
  cl.close();
  return { greetMs, runMs, exitMs };
}

/** raw-Q: no -S, QEMU serves QMP: spawn → connect → query-status running; SIGTERM → exit. */
async function rawQ(tmpl, name, { keep = false } = {}) {
  const qmp = join(R, 'raw', `${name}-qmp.sock`);
  const con = join(R, 'raw', `${name}-con.sock`);
  const cl = await listener(con);
  cl.first.then((s) => s.resume());
  const t0 = now();
  const child = spawnQemu(argvFrom(tmpl, name, '', con, { withS: false, qmpServer: qmp }), name);
  const q = qmpSession(await connectRetry(qmp, t0 + 20_000, 1));
  await q.greeting;
  await q.execute('qmp_capabilities');
  for (;;) {
    const st = await q.execute('query-status');
    if (st.status === 'running') break;
    await sleep(1);
  }
  const runMs = now() - t0;
  if (keep) return { child, q, qmp, close: () => { q.close(); cl.close(); } };
  const t1 = now();
  child.kill('SIGTERM');
  const exitMs = (await exitOf(child)) - t1;
  q.close();
  cl.close();
  return { runMs, exitMs };
}

/** shim: spawn → ready line, → first getState; destroy call → reply; → shim exit. */
async function viaShim(name, accel) {
  const s = await startShim(name, { accel });
  const api = await shimApi(s);
  const st = await api.call('getState');
  const stateMs = now() - s.t0;
  if (st.state !== 'running') throw new Error(`${name}: getState said ${st.state}`);
  const t1 = now();
  const d = await api.call('destroy');
  const destroyMs = now() - t1;
  if (d.state !== 'shutoff') throw new Error(`${name}: destroy said ${d.state}`);
  const exitMs = (await exitOf(s.child)) - t1;
  api.rpc.close();
  return { readyMs: s.readyMs, cpuAtReady: s.cpuAtReady, stateMs, destroyMs, shimExitMs: exitMs };
}

// ---- start and destroy --------------------------------------------------------------------------------

async function startSection(accel, rounds) {
  log(`start/destroy (${accel}): cold shim, template, ${rounds} rounds`);
  // The first shim under a fresh root probes QEMU's capabilities (cached afterwards).
  const cold = await viaShim(`cold-${accel}`, accel);
  const warm = await startShim(`tmpl-${accel}`, { accel });
  const tmpl = shimArgv(R, `tmpl-${accel}`);
  await killShim(warm);
  const rows = { rawS: [], rawQ: [], shim: [] };
  const kinds = ['rawS', 'rawQ', 'shim'];
  for (let r = -2; r < rounds; r++) {
    // Rotate the order every round so drifting load hits every kind alike; rounds -2, -1 are warm-up.
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[(k + r + 3) % kinds.length];
      const name = `${accel}-${kind}-${r + 2}`;
      const res = kind === 'rawS' ? await rawS(tmpl, name) : kind === 'rawQ' ? await rawQ(tmpl, name) : await viaShim(name, accel);
      if (r >= 0) rows[kind].push(res);
      // KVM boots cost CPU seconds under nested KVM: let each settle.
      await sleep(accel === 'kvm' ? 400 : 30);
    }
  }
  const col = (kind, key) => summarize(rows[kind].map((x) => x[key]));
  const out = {
    accel, rounds, cold,
    rawS: { run: col('rawS', 'runMs'), greet: col('rawS', 'greetMs'), exit: col('rawS', 'exitMs') },
    rawQ: { run: col('rawQ', 'runMs'), exit: col('rawQ', 'exitMs') },
    shim: { ready: col('shim', 'readyMs'), cpu: col('shim', 'cpuAtReady'), state: col('shim', 'stateMs'), destroy: col('shim', 'destroyMs'), shimExit: col('shim', 'shimExitMs') },
    // The shim's added latency, paired round by round against raw-S (same argv, same -S + cont).
    addedVsRawS: summarize(rows.shim.map((x, i) => x.readyMs - rows.rawS[i].runMs)),
    addedVsRawQ: summarize(rows.shim.map((x, i) => x.readyMs - rows.rawQ[i].runMs)),
    destroyAdded: summarize(rows.shim.map((x, i) => x.destroyMs - rows.rawS[i].exitMs)),
    argv: tmpl.argv,
  };
  return out;
}

// ---- getState round trip ------------------------------------------------------------------------------

function runClient(kind, socket, name, pinned, calls) {
  const pre = pinned ? ['taskset', '-c', '0'] : [];
  const args = [...pre, process.execPath, SELF, '--client', kind, '--socket', socket, '--name', name, '--dist', DIST, '--calls', String(calls), '--warm', String(Math.min(2000, calls / 5))];
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`client ${kind}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const pin = (pid, cpus) => spawnSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' });

async function rttSection() {
  log(`getState round trips: ${RTT_ROUNDS} rounds × ${CALLS} calls, unpinned and pinned; QMP query-status × ${QMP_CALLS}`);
  const s = await startShim('rtt');
  const tmpl = shimArgv(R, 'rtt');
  const raw = await rawQ(tmpl, 'rtt-raw', { keep: true });
  raw.close(); // the client process opens its own QMP connection
  const all = `0-${facts.nproc - 1}`;
  const per = { unpinned: { shim: [], qmp: [] }, pinned: { shim: [], qmp: [] } };
  for (let r = 0; r < RTT_ROUNDS; r++) {
    for (const placement of r % 2 === 0 ? ['unpinned', 'pinned'] : ['pinned', 'unpinned']) {
      const pinned = placement === 'pinned';
      for (const pid of [s.reply.shimPid, raw.child.pid]) pin(pid, pinned ? '0' : all);
      per[placement].shim.push(runClient('getstate', s.reply.socket, 'rtt', pinned, CALLS));
      per[placement].qmp.push(runClient('qmp', raw.qmp, 'rtt-raw', pinned, QMP_CALLS));
      log(`  round ${r} ${placement}: getState p50 ${fmt(per[placement].shim.at(-1).p50)} µs, QMP p50 ${fmt(per[placement].qmp.at(-1).p50)} µs`);
    }
  }
  raw.child.kill('SIGKILL');
  await killShim(s);
  const med = (list) => Object.fromEntries(['p50', 'p90', 'p99', 'p999', 'max', 'mean'].map((k) => [k, median(list.map((x) => x[k]))]));
  return {
    calls: CALLS, qmpCalls: QMP_CALLS, rounds: RTT_ROUNDS,
    unpinned: { shim: med(per.unpinned.shim), qmp: med(per.unpinned.qmp) },
    pinned: { shim: med(per.pinned.shim), qmp: med(per.pinned.qmp) },
    perRound: per,
  };
}

// ---- memory -------------------------------------------------------------------------------------------

const MiB = (kib) => kib / 1024;

/**
 * Starts `n` shims with `variant` one after another, measures them `settleMs` after the last
 * started (and again `lateMs` later), then their idle CPU over `idleCpuMs`, then the PSS of the
 * first one before and after `loadCalls` sequential getState calls (pinned), and kills them.
 */
async function fleet(n, variant, prefix, { settleMs = 3000, lateMs = 0, idleCpuMs = 0, at1 = false, loadCalls = 0 } = {}) {
  const shims = [];
  let one;
  for (let i = 0; i < n; i++) {
    shims.push(await startShim(`${prefix}${i}`, { variant }));
    if (i === 0 && at1) {
      await sleep(settleMs);
      const q = stateFile(`${prefix}0`).qemuPid;
      one = { shim: smapsRollup(shims[0].reply.shimPid), threads: procCpu(shims[0].reply.shimPid).threads, qemu: smapsRollup(q), nodeProcs: nodeProcessCount() };
    }
  }
  await sleep(settleMs);
  const pids = shims.map((s) => s.reply.shimPid);
  const mem = pids.map(smapsRollup);
  const qemu = shims.map((s) => smapsRollup(stateFile(s.name).qemuPid));
  const threads = pids.map((p) => procCpu(p).threads);
  const nodeProcs = nodeProcessCount();
  let late;
  if (lateMs > 0) {
    await sleep(lateMs);
    late = pids.map(smapsRollup);
  }
  // Idle CPU only once start-up has settled: for ~30 s after start V8 still runs lazy compiles,
  // tier-ups and memory-reducer GCs (about 1.5 ms of CPU per second per shim).
  let idleCpu;
  if (idleCpuMs > 0) {
    const before = pids.map(cpuMs);
    await sleep(idleCpuMs);
    idleCpu = pids.map((p, i) => (cpuMs(p) - before[i]) / idleCpuMs * 100);
  }
  let load;
  if (loadCalls > 0) {
    // Flags that save memory may cost CPU per call; a busy shim's new space may grow.
    const before = smapsRollup(pids[0]);
    pin(pids[0], '0');
    const rtt = runClient('getstate', shims[0].reply.socket, shims[0].name, true, loadCalls);
    await sleep(500);
    const afterSeq = MiB(smapsRollup(pids[0]).pss);
    // Then 3 s with 64 calls in flight, on the second shim (fresh), unpinned.
    const j = pids.length > 1 ? 1 : 0;
    const before2 = MiB(smapsRollup(pids[j]).pss);
    const r = spawnSync(process.execPath, [SELF, '--client', 'pipelined', '--socket', shims[j].reply.socket, '--name', shims[j].name, '--dist', DIST, '--ms', '3000', '--depth', '64'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`pipelined client: ${r.stderr}`);
    await sleep(500);
    load = { calls: loadCalls, pssBefore: MiB(before.pss), pssAfter: afterSeq, rttP50: rtt.p50, rttP99: rtt.p99,
      pipelined: { calls: JSON.parse(r.stdout.trim()).calls, pssBefore: before2, pssAfter: MiB(smapsRollup(pids[j]).pss) } };
  }
  for (const s of shims) await killShim(s);
  const stat = (list, key) => summarize(list.map((m) => MiB(m[key])));
  return {
    n, variant: variant.name, one, nodeProcs,
    pss: stat(mem, 'pss'), rss: stat(mem, 'rss'), pssAnon: stat(mem, 'pssAnon'), pssFile: stat(mem, 'pssFile'), privateDirty: stat(mem, 'privateDirty'),
    pssSum: MiB(mem.reduce((acc, m) => acc + m.pss, 0)),
    ...(late === undefined ? {} : { late: { afterMs: settleMs + lateMs, pss: stat(late, 'pss'), pssAnon: stat(late, 'pssAnon'), pssSum: MiB(late.reduce((acc, m) => acc + m.pss, 0)) } }),
    qemuPss: summarize(qemu.map((m) => MiB(m.pss))), qemuRss: summarize(qemu.map((m) => MiB(m.rss))),
    threads: median(threads), ready: summarize(shims.map((s) => s.readyMs)), cpuAtReady: summarize(shims.map((s) => s.cpuAtReady)),
    ...(idleCpu === undefined ? {} : { idleCpuPct: summarize(idleCpu) }),
    ...(load === undefined ? {} : { load }),
  };
}

async function memorySection() {
  log(`memory: 1 then ${VMS} shims`);
  return fleet(VMS, SHIPPED, 'm', { at1: true, lateMs: 27_000, idleCpuMs: 10_000, loadCalls: CALLS });
}

// ---- variants: what the footprint is made of ----------------------------------------------------------

async function buildVariants() {
  const { build } = await import('esbuild');
  const outDir = join(REPO, '.cache', 'bench', 'shim', 'variants');
  // Fresh each time: bench/shim/module-cpu.py measures whatever bundles this directory holds.
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const stubs = join(REPO, 'bench', 'shim', 'stubs');
  // Text transforms of one source file, for measurement only (nothing here ships).
  const transform = (file, fn) => ({
    name: `transform-${file}`,
    setup(b) {
      b.onLoad({ filter: new RegExp(`${file.replace(/[.]/g, '\\.')}$`) }, (args) => ({ contents: fn(readFileSync(args.path, 'utf8')), loader: 'ts' }));
    },
  });
  const alias = (pkg, file) => ({
    name: `alias-${pkg}`,
    setup(b) { b.onResolve({ filter: new RegExp(`^${pkg}$`) }, () => ({ path: join(stubs, file) })); },
  });
  // A copy of scripts/build.mjs's leave-out plugin and the shim's list (keep the two in step):
  // every variant below starts from the shipped build and changes one thing.
  const leaveOut = (modules) => ({
    name: 'virtq-leave-out',
    setup(b) {
      for (const m of modules) {
        b.onResolve({ filter: new RegExp(`^${m.path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`) }, (args) => (args.importer.includes(`/node_modules/${m.pkg}/`) ? { path: `${m.pkg}:${m.path}`, namespace: 'virtq-left-out' } : undefined));
      }
      b.onLoad({ filter: /.*/, namespace: 'virtq-left-out' }, (args) => ({ contents: `module.exports = function leftOut() { throw new Error('${args.path} left out'); };`, loader: 'js' }));
    },
  });
  const SHIM_LEAVE_OUT = leaveOut([{ pkg: 'prom-client', path: './lib/pushgateway' }, { pkg: 'prom-client', path: './lib/defaultMetrics' }, { pkg: 'prom-client', path: './lib/cluster' }, { pkg: 'prom-client', path: './lib/summary' }, { pkg: 'pino', path: 'thread-stream' }]);
  const catalogue = readFileSync(join(REPO, 'protocol', 'catalogue.ts'), 'utf8');
  const LAZY = 'argValidators.set(procName, lazyValidator(spec.args, `${name}.${procName}`))';
  const EAGER = 'argValidators.set(procName, compile(spec.args, `${name}.${procName}`))';
  if (!catalogue.includes(LAZY)) throw new Error('protocol/catalogue.ts no longer compiles validators lazily as this benchmark expects');
  // The catalogue imports lazyValidator only: the eager form needs compile imported beside it.
  const LAZY_IMPORT = "import { lazyValidator, type Validator } from './schema.js';";
  if (!catalogue.includes(LAZY_IMPORT)) throw new Error('protocol/catalogue.ts no longer imports lazyValidator as this benchmark expects');
  const eager = transform('protocol/catalogue.ts', (s) => s.replace(LAZY, EAGER).replace(LAZY_IMPORT, "import { compile, lazyValidator, type Validator } from './schema.js';"));
  const specs = [
    { name: 'before', why: 'as before this work: every dependency module bundled, validators compiled at load', plugins: [eager] },
    { name: 'all-deps', why: 'every dependency module bundled (no leave-outs)', plugins: [] },
    { name: 'eager-validators', why: 'validators compiled at load', plugins: [SHIM_LEAVE_OUT, eager] },
    { name: 'minified-keep-names', why: 'minified whitespace and syntax (identifiers and so stack-trace names kept)', minify: { minifyWhitespace: true, minifySyntax: true }, plugins: [SHIM_LEAVE_OUT] },
    { name: 'lazy-http', why: 'node:http imported only when --metrics asks for the HTTP endpoint', plugins: [SHIM_LEAVE_OUT, transform('shim/metrics-http.ts', (s) => s.replace("import { createServer, type Server } from 'node:http';", "import type { Server } from 'node:http';").replace('const server = createServer(', "const { createServer } = await import('node:http');\n  const server = createServer("))] },
    { name: 'no-prom-client', why: 'prom-client replaced by a no-op stub', plugins: [alias('prom-client', 'prom-client.mjs')] },
    { name: 'no-pino', why: 'pino replaced by a stub that drops log lines', plugins: [SHIM_LEAVE_OUT, alias('pino', 'pino.mjs')] },
    { name: 'no-prom-no-pino', why: 'both stubs', plugins: [alias('prom-client', 'prom-client.mjs'), alias('pino', 'pino.mjs')] },
  ];
  const out = [];
  for (const v of specs) {
    const outfile = join(outDir, `${v.name}.js`);
    await build({
      entryPoints: [join(REPO, 'shim', 'main.ts')], outfile, bundle: true, platform: 'node', target: 'node20', format: 'esm',
      sourcemap: false, legalComments: 'none', external: ['cbor-extract'], logLevel: 'error', plugins: v.plugins, ...(v.minify ?? {}),
      banner: { js: "import { createRequire as __vqCreateRequire } from 'node:module'; const require = __vqCreateRequire(import.meta.url);" },
    });
    out.push({ ...v, file: outfile });
  }
  // The floor: a bare node:net unix server that prints a line, nothing else loaded.
  const floor = join(outDir, 'floor.mjs');
  writeFileSync(floor, "import { createServer } from 'node:net';\nconst a = process.argv;\nconst root = a[a.indexOf('--root') + 1];\nconst s = createServer(() => {});\ns.listen(`${root}/floor-${process.pid}.sock`, () => process.stdout.write(JSON.stringify({ ok: true, shimPid: process.pid, socket: '' }) + '\\n'));\n");
  return { bundles: out, floor };
}

/**
 * A copy of bundle `file` (and the shim's lazily loaded TypeBox file beside it) under the checkout's
 * .cache, where package.json's "type": "module" applies. Run from a directory without it (/tmp), Node 20
 * first compiles the bundle as CommonJS, fails, and loads it again as an ES module: such a shim settled
 * ~3.1 MiB PSS above the same bytes run from dist/bin (session 14, issue 15), which skewed any
 * --variant-bundle row kept outside a package.
 */
function asModule(file, name) {
  const dir = join(REPO, '.cache', 'bench', 'shim', 'variant-bundles', name);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, basename(file));
  copyFileSync(file, out);
  // Beside an entry (dist/bin/virtq-shim.js since session 25), the body it runs and the schema file.
  for (const f of ['virtq-shim-typebox.cjs', 'virtq-shim-body.cjs']) if (existsSync(join(dirname(file), f))) copyFileSync(join(dirname(file), f), join(dir, f));
  return out;
}

async function variantsSection() {
  log(`variants: ${VMS} shims each`);
  const { bundles, floor } = await buildVariants();
  const flags = SHEBANG.replace(/^#!\/usr\/bin\/env -S /, '').split(' ');
  const envFlags = Object.fromEntries(flags.filter((f) => /^[A-Z_]+=/.test(f)).map((f) => f.split('=')));
  const nodeFlags = flags.filter((f) => f.startsWith('--'));
  const node = process.execPath;
  const heapFlags = nodeFlags.filter((f) => /^--max-(semi|old)-space-size=/.test(f));
  const nodeOnlyFlags = nodeFlags.filter((f) => !heapFlags.includes(f));
  const variants = [
    { name: 'shipped', why: `dist/bin/virtq-shim.js via its shebang (${nodeFlags.join(' ')}, ${Object.entries(envFlags).map(([k, v]) => `${k}=${v}`).join(' ')})`, v: SHIPPED },
    { name: 'no-flags', why: 'the same bundle, `node bundle`: no flags, default thread pools', v: { name: 'no-flags', cmd: node, pre: [SHIM_BIN], env: {} } },
    { name: 'no-heap-flags', why: `without ${heapFlags.join(' ')} (V8 flags: they change V8's flag hash)`, v: { name: 'no-heap-flags', cmd: node, pre: [...nodeOnlyFlags, SHIM_BIN], env: envFlags } },
    { name: '+optimize-for-size', why: 'shipped flags + --optimize-for-size', v: { name: '+optimize-for-size', cmd: node, pre: [...nodeFlags, '--optimize-for-size', SHIM_BIN], env: envFlags } },
    { name: '+MALLOC_ARENA_MAX=1', why: 'shipped flags, one glibc malloc arena (would be inherited by QEMU)', v: { name: '+MALLOC_ARENA_MAX=1', cmd: node, pre: [...nodeFlags, SHIM_BIN], env: { ...envFlags, MALLOC_ARENA_MAX: '1' } } },
    // Issue #15's lean-memory list, one flag each on top of what ships (on request: --variant-list).
    { name: '+MALLOC_ARENA_MAX=2', why: 'shipped flags, two glibc malloc arenas', v: { name: '+MALLOC_ARENA_MAX=2', cmd: node, pre: [...nodeFlags, SHIM_BIN], env: { ...envFlags, MALLOC_ARENA_MAX: '2' } } },
    ...['--max-lazy', '--single-threaded-gc', '--lite-mode'].map((f) => ({ name: `+${f.slice(2)}`, why: `shipped flags + ${f}`, v: { name: `+${f.slice(2)}`, cmd: node, pre: [...nodeFlags, f, SHIM_BIN], env: envFlags } })),
    ...bundles.map((b) => ({ name: b.name, why: b.why, v: { name: b.name, cmd: node, pre: [...nodeFlags, b.file], env: envFlags } })),
    // --variant-bundle NAME=FILE[,VAR=VALUE...] (repeatable): another build of the shim (e.g. main's), run with
    // the flags and environment of its own shebang (plus the variables given), so before and after sit in one run.
    ...process.argv.slice(2).flatMap((a, i, all) => (a === '--variant-bundle' ? [all[i + 1]] : [])).map((spec) => {
      const name = spec.slice(0, spec.indexOf('='));
      const [given, ...extra] = spec.slice(name.length + 1).split(',');
      const file = asModule(given, name);
      const own = readFileSync(file, 'utf8').split('\n')[0].replace(/^#!\/usr\/bin\/env -S /, '').split(' ');
      const pair = (f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)];
      const ownEnv = { ...Object.fromEntries(own.filter((f) => /^[A-Z_]+=/.test(f)).map(pair)), ...Object.fromEntries(extra.map(pair)) };
      return { name, why: `${file} with its own shebang (${own.join(' ')})${extra.length > 0 ? ` and ${extra.join(' ')}` : ''}`, v: { name, cmd: node, pre: [...own.filter((f) => f.startsWith('--')), file], env: ownEnv } };
    }),
    // What ships, but without the shebang's malloc arena limit: the code changes alone.
    { name: 'no-arena-limit', why: 'shipped flags without MALLOC_ARENA_MAX', v: { name: 'no-arena-limit', cmd: node, pre: [...nodeFlags, SHIM_BIN], env: Object.fromEntries(Object.entries(envFlags).filter(([k]) => k !== 'MALLOC_ARENA_MAX')) } },
  ];
  {
    // Tried once (two runs, before the leave-outs): neither saved memory. Only on request.
    const keep = new Set((VARIANT_LIST ?? variants.map((v) => v.name).filter((n) => !n.startsWith('+')).join(',')).split(','));
    for (let i = variants.length - 1; i >= 0; i--) if (!keep.has(variants[i].name)) variants.splice(i, 1);
  }
  const reps = [];
  for (let rep = 0; rep < VARIANT_REPS; rep++) {
    // Each repetition runs every variant in a rotated order, so drift hits them alike.
    const rows = [];
    for (let k = 0; k < variants.length; k++) {
      const x = variants[(k + rep * 3) % variants.length];
      log(`  rep ${rep} ${x.name}`);
      rows.push({ ...(await fleet(VMS, x.v, `v${rep}-${k}-`, { settleMs: VARIANT_SETTLE_MS, loadCalls: CALLS })), variant: x.name, why: x.why });
    }
    // The floor has no VM: N bare servers with the shipped flags.
    const procs = [];
    for (let i = 0; i < VMS; i++) {
      const c = cleanup.child(spawn(node, [...nodeFlags, floor, '--root', R], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...envFlags } }));
      await firstLine(c);
      c.stdout.resume();
      procs.push(c);
    }
    await sleep(VARIANT_SETTLE_MS);
    const mem = procs.map((c) => smapsRollup(c.pid));
    for (const c of procs) c.kill('SIGKILL');
    // An idle pool shim (decision 0026: its memory is counted): loaded, warmed up, waiting on
    // stdin for its start request, for each variant that runs a shim bundle.
    const pool = variants.map((x) => cleanup.child(spawn(x.v.cmd, [...x.v.pre, '--root', R, '--definition', '-', '--start-request', '--no-register'], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, ...x.v.env } })));
    await sleep(VARIANT_SETTLE_MS);
    for (const [k, c] of pool.entries()) {
      const m = smapsRollup(c.pid);
      c.kill('SIGKILL');
      await exitOf(c);
      rows.find((r) => r.variant === variants[k].name).pool = { pss: MiB(m.pss), rss: MiB(m.rss) };
    }
    rows.push({ n: VMS, variant: 'floor', why: 'bare node:net unix server, same flags, no libraries', pss: summarize(mem.map((m) => MiB(m.pss))), rss: summarize(mem.map((m) => MiB(m.rss))), pssAnon: summarize(mem.map((m) => MiB(m.pssAnon))) });
    reps.push(rows);
  }
  // One row per variant: the median over repetitions of each figure's per-run median.
  const names = [...new Set(reps[0].map((r) => r.variant))];
  return names.map((name) => {
    const runs = reps.map((rows) => rows.find((r) => r.variant === name));
    const m = (get) => median(runs.map(get).filter((v) => v !== undefined && !Number.isNaN(v)));
    return {
      variant: name, why: runs[0].why, reps: runs.length,
      pss: m((r) => r.pss.p50), pssRuns: runs.map((r) => r.pss.p50), pssAnon: m((r) => r.pssAnon.p50), rss: m((r) => r.rss.p50),
      threads: runs[0].threads, ready: m((r) => r.ready?.p50), cpuAtReady: m((r) => r.cpuAtReady?.p50), idleCpuPct: m((r) => r.idleCpuPct?.p50),
      rttP50: m((r) => r.load?.rttP50), rttP99: m((r) => r.load?.rttP99), poolPss: m((r) => r.pool?.pss), poolRss: m((r) => r.pool?.rss), pssAfterLoad: m((r) => r.load?.pssAfter), pssBeforeLoad: m((r) => r.load?.pssBefore),
      pssBeforePipe: m((r) => r.load?.pipelined?.pssBefore), pssAfterPipe: m((r) => r.load?.pipelined?.pssAfter),
    };
  });
}

// ---- run ----------------------------------------------------------------------------------------------

// A section that fails is reported as failed; the others still run and print.
const section = sectionRunner(results, log);
try {
  if (ONLY.has('start')) {
    await section('startTcg', () => startSection('tcg', ROUNDS));
    if (KVM_ROUNDS > 0) await section('startKvm', () => startSection('kvm', KVM_ROUNDS));
    results.start = [results.startTcg, results.startKvm].filter((x) => x !== undefined);
    delete results.startTcg;
    delete results.startKvm;
  }
  if (ONLY.has('rtt')) await section('rtt', rttSection);
  if (ONLY.has('memory')) await section('memory', memorySection);
  if (ONLY.has('variants')) await section('variants', variantsSection);
  if (ONLY.has('paths')) {
    const { startPathsSection } = await import('./start-paths.mjs');
    await section('paths', () => startPathsSection({ R, SHIM_BIN, DIST, SHEBANG, cleanup, rawS, viaShim, shimArgv, RpcClient, clock, log, rounds: ROUNDS, startShim, killShim, smapsRollup }));
  }
} finally {
  cleanup.run();
}
facts.loadAfter = loadavg();
results.seconds = (now() - started) / 1000;

// ---- report -------------------------------------------------------------------------------------------

const ms = (s) => `${fmt(s.p50)} (p90 ${fmt(s.p90)}, max ${fmt(s.max)})`;
const lines = [];
lines.push(`machine: ${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, kernel ${facts.kernel}, ${facts.qemu}, node ${facts.node}`);
lines.push(`load average before ${facts.loadBefore}, after ${facts.loadAfter}; ${results.seconds.toFixed(0)} s; shim shebang: ${SHEBANG}`);
for (const s of results.start ?? []) {
  lines.push('', `### Start and destroy, idle guest, ${s.accel.toUpperCase()}, ${s.rounds} rounds interleaved (ms: median (p90, max))`, '');
  lines.push(table(['', 'spawn → running', 'destroy', 'notes'], [
    ['raw QEMU, shim argv, -S + cont (raw-S)', ms(s.rawS.run), `SIGTERM → exit ${ms(s.rawS.exit)}`, `greeting at ${fmt(s.rawS.greet.p50)}`],
    ['raw QEMU, no -S, -qmp server (raw-Q)', ms(s.rawQ.run), `SIGTERM → exit ${ms(s.rawQ.exit)}`, 'connect retried every 1 ms'],
    ['virtq-shim: ready line', ms(s.shim.ready), `destroy call → reply ${ms(s.shim.destroy)}`, `shim exits ${fmt(s.shim.shimExit.p50)} after the call`],
    ['virtq-shim: first getState', ms(s.shim.state), '', `shim CPU to ready ${fmt(s.shim.cpu.p50)} ms`],
    ['shim added, paired vs raw-S', ms(s.addedVsRawS), ms(s.destroyAdded), ''],
    ['shim added, paired vs raw-Q', ms(s.addedVsRawQ), '', ''],
  ]));
  lines.push('', `first shim under a fresh root (QEMU capability probe, not cached yet): ready ${fmt(s.cold.readyMs)} ms`);
}
if (results.rtt !== undefined) {
  const r = results.rtt;
  lines.push('', `### getState round trip (µs; median over ${r.rounds} rounds of ${r.calls} sequential calls; QMP query-status ${r.qmpCalls} calls)`, '');
  lines.push(table(['', 'p50', 'p90', 'p99', 'p99.9', 'max'], [
    ['shim getState, unpinned', ...['p50', 'p90', 'p99', 'p999', 'max'].map((k) => fmt(r.unpinned.shim[k]))],
    ['shim getState, pinned (CPU 0)', ...['p50', 'p90', 'p99', 'p999', 'max'].map((k) => fmt(r.pinned.shim[k]))],
    ['raw QMP query-status, unpinned', ...['p50', 'p90', 'p99', 'p999', 'max'].map((k) => fmt(r.unpinned.qmp[k]))],
    ['raw QMP query-status, pinned', ...['p50', 'p90', 'p99', 'p999', 'max'].map((k) => fmt(r.pinned.qmp[k]))],
  ]));
}
if (results.memory !== undefined) {
  const m = results.memory;
  lines.push('', '### Shim memory (MiB, /proc/PID/smaps_rollup)', '');
  lines.push(table(['', 'RSS', 'PSS', 'Pss_Anon', 'Pss_File', 'threads'], [
    ['1 VM: the shim', fmt(MiB(m.one.shim.rss)), fmt(MiB(m.one.shim.pss)), fmt(MiB(m.one.shim.pssAnon)), fmt(MiB(m.one.shim.pssFile)), String(m.one.threads)],
    [`${m.n} VMs: per shim, median (min–max)`, fmt(m.rss.p50), `${fmt(m.pss.p50)} (${fmt(m.pss.min)}–${fmt(m.pss.max)})`, fmt(m.pssAnon.p50), fmt(m.pssFile.p50), String(m.threads)],
    [`${m.n} VMs: all shims together`, '', fmt(m.pssSum), '', '', ''],
    ['1 VM: its QEMU (idle, TCG, 32 MiB)', fmt(MiB(m.one.qemu.rss)), fmt(MiB(m.one.qemu.pss)), fmt(MiB(m.one.qemu.pssAnon)), '', ''],
  ]));
  lines.push('', `PSS per shim ${m.late.afterMs / 1000} s after the last start: median ${fmt(m.late.pss.p50)} (${fmt(m.late.pss.min)}–${fmt(m.late.pss.max)}), Pss_Anon ${fmt(m.late.pssAnon.p50)}; one shim after ${m.load.calls} getState calls: ${fmt(m.load.pssBefore)} → ${fmt(m.load.pssAfter)} MiB; another after 3 s with 64 calls in flight (${m.load.pipelined.calls} calls): ${fmt(m.load.pipelined.pssBefore)} → ${fmt(m.load.pipelined.pssAfter)} MiB.`);
  lines.push(`node processes on the host while measuring (they share node's text): ${m.one.nodeProcs} with 1 VM, ${m.nodeProcs} with ${m.n}; idle CPU per shim over 10 s (30 s after start): median ${fmt(m.idleCpuPct.p50, 3)} % (max ${fmt(m.idleCpuPct.max, 3)} %); shim CPU to ready: median ${fmt(m.cpuAtReady.p50)} ms.`);
}
if (results.paths !== undefined) {
  const p = results.paths;
  const what = { rawS: 'raw QEMU, shim argv (-S), QMP cont by this process', shim: 'virtq-shim --no-register (cold, shebang flags)', warm: 'pre-started shim (--definition -) handed its definition', vqdCold: 'create through virtqemud --shim-pool 0', vqdPool: 'create through virtqemud --shim-pool 1', embedCold: 'create in embed mode (client library), no pool', embedPool: 'create in embed mode, shimPool: 1', nodeE0: '`node FLAGS -e 0` (the shim\'s shebang flags)', nodeE0NoFlags: '`node -e 0`', shimHelp: '`virtq-shim --help`: bootstrap + bundle evaluation + exit' };
  lines.push('', `### Start paths, idle guest, TCG, ${p.rounds} rounds interleaved (ms: median (p90, max))`, '');
  lines.push(table(['', 'to running', 'added vs raw-S (paired)', 'what'], Object.keys(p.run).map((k) => [k, ms(p.run[k]), p.addedVsRawS[k] === undefined ? '' : ms(p.addedVsRawS[k]), what[k] ?? ''])));
  lines.push('', `cold shim CPU to ready ${ms(p.shimCpu)}; warm shim CPU while loading ${ms(p.warmCpuLoad)}, after the hand-off ${ms(p.warmCpuStart)}; idle pool shim ${p.idlePoolShim.map((m) => `PSS ${fmt(m.pssMiB, 2)} MiB, RSS ${fmt(m.rssMiB, 1)} MiB`).join('; ')}`);
}
if (results.variants !== undefined) {
  lines.push('', `### What the footprint is made of: ${VMS} shims at once per variant, PSS ${VARIANT_SETTLE_MS / 1000} s after the last start; median per shim, then the median over ${results.variants[0].reps} interleaved runs`, '');
  lines.push(table(['variant', 'PSS MiB (runs)', 'Pss_Anon', 'RSS', 'threads', 'CPU to ready ms', 'spawn → ready ms', `PSS of one shim before → after ${CALLS} getState`, 'another, before → after 3 s with 64 in flight', 'getState p50 / p99 µs pinned', 'idle pool shim PSS / RSS', 'what'], results.variants.map((v) => [
    v.variant, `${fmt(v.pss, 2)} (${v.pssRuns.map((x) => fmt(x, 2)).join(', ')})`, fmt(v.pssAnon, 2), fmt(v.rss), v.threads === undefined ? '' : String(v.threads),
    fmt(v.cpuAtReady), fmt(v.ready), Number.isNaN(v.pssAfterLoad) ? '' : `${fmt(v.pssBeforeLoad)} → ${fmt(v.pssAfterLoad)}`,
    Number.isNaN(v.pssAfterPipe) ? '' : `${fmt(v.pssBeforePipe)} → ${fmt(v.pssAfterPipe)}`, Number.isNaN(v.rttP50) ? '–' : `${fmt(v.rttP50)} / ${fmt(v.rttP99)}`,
    Number.isNaN(v.poolPss) || v.poolPss === undefined ? '' : `${fmt(v.poolPss, 2)} / ${fmt(v.poolRss)}`, v.why,
  ])));
}
if (results.errors !== undefined) lines.push('', `FAILED sections: ${JSON.stringify(results.errors)}`);
console.log(lines.join('\n'));
if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
