#!/usr/bin/env node
// Side by side with libvirt (issue #8). Run through run.sh, which installs libvirt on request,
// writes its temporary configuration, restores the host afterwards and runs this file under a
// child subreaper. Same run, same idle guest (multiboot `cli; hlt`, 32 MiB, 1 vCPU, TCG, pc,
// direct-kernel boot), same QEMU binary; the libvirt side is python3-libvirt (lv.py), timed
// around each libvirt call; the virtq side is RpcClient from this process, timed around each call.
//
//   start     defined → running, R rounds interleaved: libvirt dom.create() vs virtq start through
//             virtqemud; then destroy: dom.destroy() vs virtq destroy through virtqemud
//   query     per-VM state query round trips, sequential, unpinned and pinned (every daemon
//             thread and both clients on CPU 0): dom.state(), dom.info() vs getState, getInfo
//             through virtqemud (forwarded to the shim) and directly on the shim's socket
//   scale     VMs running on both sides at each size (default 1, 50, 200; capped by free memory):
//             listAllDomains(0) vs listDomains round trips; `virsh list --all` vs
//             `virtq list --all` as whole processes; kill -9 of the daemon + restart → every VM
//             listed and running (at 50 and at the largest size); memory: PSS of libvirtd +
//             virtlogd vs virtqemud + the shims, against a baseline with no VMs; QEMU's own PSS
//   concurrent  50 defined VMs per side started at once (one connection each), rounds
//             interleaved, each round also timing the floor with one Node process per VM (50 raw QEMUs,
//             each beside a cold Node loading the shim's bundle; --no-concurrent-floor leaves it out);
//             then 50 concurrent destroys. Beside the wall, each side's CPU for the
//             burst (schedstat, all threads, read when all 50 run): libvirtd + virtlogd + its
//             QEMUs against virtqemud + the shims (the idle pool's included) + their QEMUs; the
//             stable figure on a loaded machine (bench/compare-libvirt/burst.mjs splits virtq's)
//
//   bench/compare-libvirt/run.sh [--install] [--rounds 15] [--query-calls 5000] [--query-rounds 3]
//       [--sizes 1,50,200] [--list-calls 2000] [--cli-runs 10] [--restart-rounds 5]
//       [--restart-sizes 50,max] [--concurrent 50] [--concurrent-rounds 3] [--no-concurrent-floor]
//       [--only start,query,scale,concurrent] [--json FILE] [--dist DIR]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  burstVm, cleanupRegistry, connectRetry, cpuMs, exitOf, firstLine, fmt, idleDefinition, idleGuestPath, loadavg, machineFacts, median, now,
  nodeProcessCount, options, rewriteArgv, shimArgv, sleep, smapsRollup, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';
import { createServer } from 'node:net';
import { idlePoolShims } from './pool-memory.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const o = options();
const LVDIR = process.env.VQCMP_LVDIR;
const URI = process.env.VQCMP_URI;
const PREFIX = process.env.VQCMP_PREFIX;
const PY = process.env.VQCMP_PY ?? '/usr/bin/python3';
if (LVDIR === undefined || URI === undefined || PREFIX === undefined) {
  console.error('run.mjs is started by bench/compare-libvirt/run.sh (it sets up libvirt and restores the host afterwards)');
  process.exit(2);
}
const QEMU_PATH = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim();

const ROUNDS = o.num('rounds', 15);
const QUERY_CALLS = o.num('query-calls', 5000);
const QUERY_ROUNDS = o.num('query-rounds', 3);
const SIZES = o.get('sizes', '1,50,200').split(',').map(Number);
const LIST_CALLS = o.num('list-calls', 2000);
const CLI_RUNS = o.num('cli-runs', 10);
const RESTART_ROUNDS = o.num('restart-rounds', 5);
const RESTART_SIZES = o.get('restart-sizes', '50,max').split(',');
const CONC = o.num('concurrent', 50);
const CONC_ROUNDS = o.num('concurrent-rounds', 3);
// --no-concurrent-floor: without the floor side (raw QEMUs, each with a cold Node) in the concurrent rounds.
const CONC_FLOOR = !o.has('no-concurrent-floor');
const ONLY = new Set(o.get('only', 'start,query,scale,concurrent').split(','));
const JSON_OUT = o.get('json');

const started = now();
const cleanup = cleanupRegistry();
const facts = { ...machineFacts(QEMU_PATH), loadBefore: loadavg(), libvirt: spawnSync('/usr/sbin/libvirtd', ['--version'], { encoding: 'utf8' }).stdout.trim() };
const DIST = await snapshotDist('compare-libvirt', o.get('dist'));
const DAEMON_BIN = join(DIST, 'bin', 'virtqemud.js');
const CLI_BIN = join(DIST, 'bin', 'virtq.js');
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(DIST, 'lib', 'protocol', 'index.js'));
const clock = systemClock();
const results = { facts };
const log = (...a) => console.error(`[${((now() - started) / 1000).toFixed(1)}s load ${loadavg()}]`, ...a);
const memAvailableGiB = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 2 ** 20;
const MiB = (kib) => kib / 1024;
const pssOf = (pid) => { try { return smapsRollup(pid).pss; } catch { return NaN; } };
const threadsOf = (pid) => Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const ALL_CPUS = `0-${facts.nproc - 1}`;
const pin = (pid, cpus) => spawnSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' });

// ---- libvirt: daemons and the python helper ---------------------------------------------------------

const LIBVIRTD_CMD = ['/usr/sbin/libvirtd', '--daemon', '-f', join(LVDIR, 'libvirtd.conf'), '-p', join(LVDIR, 'libvirtd.pid')];
const VIRTLOGD_CMD = ['/usr/sbin/virtlogd', '--daemon', '-f', join(LVDIR, 'virtlogd.conf'), '-p', join(LVDIR, 'virtlogd.pid')];
const pidFromFile = (f) => Number(readFileSync(join(LVDIR, f), 'utf8').trim());
const libvirtdPid = () => pidFromFile('libvirtd.pid');
const virtlogdPid = () => pidFromFile('virtlogd.pid');

function runDaemonised(cmd) {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: exit ${r.status}: ${r.stderr}`);
}

/** The python3-libvirt helper (lv.py): one JSON command per line, one answer per line. */
function startHelper() {
  const child = cleanup.child(spawn(PY, [join(HERE, 'lv.py')], {
    stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, VQCMP_IDLE: idleGuestPath(), VQCMP_QEMU_PATH: QEMU_PATH },
  }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  child.once('exit', (code) => { for (const w of waiting.splice(0)) w(JSON.stringify({ ok: false, error: `lv.py exited (${code}): ${stderr.slice(-2000)}` })); });
  return {
    pid: child.pid,
    child,
    call(op, args = {}) {
      return new Promise((resolve, reject) => {
        waiting.push((l) => {
          const m = JSON.parse(l);
          if (m.ok) resolve(m); else reject(new Error(`lv.py ${op}: ${m.error}`));
        });
        child.stdin.write(`${JSON.stringify({ op, ...args })}\n`);
      });
    },
  };
}

/** pids of the QEMUs libvirt runs for `names` (from /run/libvirt/qemu/NAME.pid). */
function libvirtQemuPids(names) {
  return names.flatMap((n) => {
    try { return [Number(readFileSync(`/run/libvirt/qemu/${n}.pid`, 'utf8').trim())]; } catch { return []; }
  });
}

// ---- virtq: virtqemud and clients -------------------------------------------------------------------

const ROOT = cleanup.root(tmpRoot('vqcmp-'));
const sockets = () => daemonSockets(rootLayout(ROOT));

async function startVirtqemud() {
  const t0 = now();
  const child = cleanup.child(spawn(DAEMON_BIN, ['--root', ROOT], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const ready = firstLine(child).then(({ line, at }) => {
    child.stdout.resume();
    const reply = JSON.parse(line);
    if (!reply.ok) throw new Error(`virtqemud: ${line}\n${stderr}`);
    return { reply, lineMs: at - t0 };
  });
  return { child, t0, ready };
}

async function vqClient(socket = sockets().rw) {
  const rpc = await RpcClient.connect(socket, { clock, defaultTimeoutMs: 180_000 });
  return { rpc, call: (proc, args = {}) => rpc.call('virtq', proc, args) };
}

/** Runs fn(client, name) for every name, `width` connections at a time. */
async function vqMany(names, fn, width = 8) {
  const clients = await Promise.all(Array.from({ length: Math.min(width, names.length) }, () => vqClient()));
  let next = 0;
  await Promise.all(clients.map(async (c) => {
    while (next < names.length) await fn(c, names[next++]);
  }));
  for (const c of clients) c.rpc.close();
}

function vqShimStates() {
  const dir = join(ROOT, 'run', 'shims');
  let files = [];
  try { files = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.')); } catch { return []; }
  return files.flatMap((f) => { try { return [JSON.parse(readFileSync(join(dir, f), 'utf8'))]; } catch { return []; } });
}

// ---- run --------------------------------------------------------------------------------------------

log(`libvirt: ${facts.libvirt}; config ${LVDIR}; virtq root ${ROOT}`);
runDaemonised(VIRTLOGD_CMD);
runDaemonised(LIBVIRTD_CMD);
const lv = startHelper();
const opened = await lv.call('open');
let vqd = await startVirtqemud();
await vqd.ready;
let admin = await vqClient();
await sleep(3000);
const fresh = {
  libvirtd: pssOf(libvirtdPid()), virtlogd: pssOf(virtlogdPid()), virtqemud: pssOf(vqd.child.pid),
  libvirtdThreads: threadsOf(libvirtdPid()), virtqemudThreads: threadsOf(vqd.child.pid),
};
results.fresh = fresh;
log(`fresh PSS: libvirtd ${fmt(MiB(fresh.libvirtd))} MiB, virtlogd ${fmt(MiB(fresh.virtlogd))}, virtqemud ${fmt(MiB(fresh.virtqemud))}; libvirt ${opened.version}`);

const lvName = (s) => `${PREFIX}${s}`;
const vqName = (s) => `${PREFIX}${s}`;

async function vqDefine(names) {
  await vqMany(names, (c, n) => c.call('define', { definition: idleDefinition(n) }));
}
async function vqStart(names) {
  await vqMany(names, async (c, n) => {
    const row = await c.call('start', { name: n });
    if (row.state !== 'running') throw new Error(`virtq start ${n}: ${row.state}`);
  });
}
async function vqDestroyUndefine(names) {
  await vqMany(names, async (c, n) => {
    const row = await c.call('lookupByName', { name: n }).catch(() => undefined);
    if (row !== undefined && row.state !== 'shutoff') await c.call('destroy', { name: n });
    if (row !== undefined) await c.call('undefine', { name: n });
  });
  // Shims exit after destroy; wait until the listing has only what is left.
  for (let i = 0; i < 400; i++) {
    const { domains } = await admin.call('listDomains', {});
    if (!domains.some((d) => names.includes(d.name))) break;
    await sleep(25);
  }
}

// ---- start and destroy ------------------------------------------------------------------------------

async function startSection() {
  const lvn = lvName('start');
  const vqn = vqName('start');
  await lv.call('define', { names: [lvn] });
  await vqDefine([vqn]);
  const rows = { lvCreate: [], lvDestroy: [], vqStart: [], vqDestroy: [] };
  log(`start/destroy: ${ROUNDS} rounds interleaved (+2 warm-up)`);
  for (let r = -2; r < ROUNDS; r++) {
    for (const side of r % 2 === 0 ? ['lv', 'vq'] : ['vq', 'lv']) {
      await sleep(150);
      if (side === 'lv') {
        const c = await lv.call('create', { name: lvn });
        await sleep(100);
        const d = await lv.call('destroy', { name: lvn });
        if (r >= 0) { rows.lvCreate.push(c.ms); rows.lvDestroy.push(d.ms); }
      } else {
        let t = now();
        const row = await admin.call('start', { name: vqn });
        const s = now() - t;
        if (row.state !== 'running') throw new Error(`virtq start: ${row.state}`);
        await sleep(100);
        t = now();
        const st = await admin.call('destroy', { name: vqn });
        const d = now() - t;
        if (st.state !== 'shutoff') throw new Error(`virtq destroy: ${st.state}`);
        // The shim exits after its VM stops; the next start needs virtqemud to have seen it go.
        for (let i = 0; i < 200; i++) {
          const x = await admin.call('lookupByName', { name: vqn });
          if (x.state === 'shutoff' && x.shimPid === undefined) break;
          await sleep(10);
        }
        if (r >= 0) { rows.vqStart.push(s); rows.vqDestroy.push(d); }
      }
    }
    if (r === 0 || r === ROUNDS - 1) log(`  round ${r}: libvirt create ${fmt(rows.lvCreate.at(-1))} destroy ${fmt(rows.lvDestroy.at(-1))}; virtq start ${fmt(rows.vqStart.at(-1))} destroy ${fmt(rows.vqDestroy.at(-1))}`);
  }
  await lv.call('undefine', { names: [lvn] });
  await vqDestroyUndefine([vqn]);
  return Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, summarize(v)]));
}

// ---- per-VM state queries ---------------------------------------------------------------------------

async function vqLoop(call, calls, warm = 500) {
  for (let i = 0; i < warm; i++) await call();
  const lat = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await call();
    lat[i] = (performance.now() - t) * 1000;
  }
  return summarize(lat);
}

async function querySection() {
  const lvn = lvName('q');
  const vqn = vqName('q');
  await lv.call('define', { names: [lvn] });
  await lv.call('create', { name: lvn });
  await vqDefine([vqn]);
  await vqStart([vqn]);
  const row = await admin.call('lookupByName', { name: vqn });
  const shim = await vqClient(row.shimSocket);
  const daemon = await vqClient();
  const lvQemu = libvirtQemuPids([lvn])[0];
  const kinds = {
    'libvirt dom.state()': () => lv.call('rtt', { name: lvn, kind: 'state', calls: QUERY_CALLS }),
    'libvirt dom.info()': () => lv.call('rtt', { name: lvn, kind: 'info', calls: QUERY_CALLS }),
    'virtq getState via virtqemud': () => vqLoop(() => daemon.call('getState', { name: vqn }), QUERY_CALLS),
    'virtq getInfo via virtqemud': () => vqLoop(() => daemon.call('getInfo', { name: vqn }), QUERY_CALLS),
    'virtq getState on the shim': () => vqLoop(() => shim.call('getState', { name: vqn }), QUERY_CALLS),
    'virtq getInfo on the shim': () => vqLoop(() => shim.call('getInfo', { name: vqn }), QUERY_CALLS),
  };
  const per = { unpinned: {}, pinned: {} };
  for (const p of Object.keys(per)) for (const k of Object.keys(kinds)) per[p][k] = [];
  const pids = () => [libvirtdPid(), lv.pid, vqd.child.pid, row.shimPid, process.pid];
  log(`queries: ${QUERY_ROUNDS} rounds × ${QUERY_CALLS} calls per kind, unpinned and pinned`);
  for (let r = 0; r < QUERY_ROUNDS; r++) {
    for (const placement of r % 2 === 0 ? ['unpinned', 'pinned'] : ['pinned', 'unpinned']) {
      for (const pid of pids()) pin(pid, placement === 'pinned' ? '0' : ALL_CPUS);
      const names = Object.keys(kinds);
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + r) % names.length];
        per[placement][name].push(await kinds[name]());
      }
    }
    log(`  round ${r}: dom.state() p50 ${fmt(per.unpinned['libvirt dom.state()'].at(-1).p50)} µs, getState via virtqemud ${fmt(per.unpinned['virtq getState via virtqemud'].at(-1).p50)} µs (unpinned)`);
  }
  for (const pid of pids()) pin(pid, ALL_CPUS);
  shim.rpc.close();
  daemon.rpc.close();
  const qemuPss = { libvirt: MiB(pssOf(lvQemu)), virtq: MiB(pssOf(row.qemuPid)) };
  // The two QEMU command lines, for the record (same binary and guest; the devices may differ).
  const argv = (pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean); } catch { return []; } };
  const qemuArgv = { libvirt: argv(lvQemu), virtq: argv(row.qemuPid) };
  await lv.call('undefine', { names: [lvn] });
  await vqDestroyUndefine([vqn]);
  const med = (list) => Object.fromEntries(['p50', 'p90', 'p99', 'p999', 'max'].map((k) => [k, median(list.map((x) => x[k]))]));
  const out = { calls: QUERY_CALLS, rounds: QUERY_ROUNDS, qemuPssOneVm: qemuPss, qemuArgv };
  for (const p of Object.keys(per)) out[p] = Object.fromEntries(Object.entries(per[p]).map(([k, v]) => [k, med(v)]));
  return out;
}

// ---- scale: listing, CLI, restart, memory -----------------------------------------------------------

async function wholeProcess(cmd, args) {
  const t0 = now();
  const child = cleanup.child(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((r) => child.once('close', (c) => r(c)));
  const ms = now() - t0;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.slice(0, 300)}`);
  return { ms, lines: out.split('\n').filter((l) => l.includes(PREFIX)).length };
}

async function vqRestart(n) {
  vqd.child.kill('SIGKILL');
  await exitOf(vqd.child);
  const next = await startVirtqemud();
  const t0 = next.t0;
  const rpc = new RpcClient(await connectRetry(sockets().rw, t0 + 30_000, 1), { clock, defaultTimeoutMs: 30_000 });
  const accepted = now() - t0;
  let complete;
  let allRunning;
  for (;;) {
    const { domains } = await rpc.call('virtq', 'listDomains', {});
    const t = now() - t0;
    if (domains.length === n && complete === undefined) complete = t;
    if (domains.length === n && domains.every((x) => x.shimUp && x.state === 'running')) { allRunning = t; break; }
    if (t > 60_000) throw new Error(`virtq restart: ${domains.length} rows after 60 s`);
    await new Promise((r) => setImmediate(r));
  }
  await next.ready;
  rpc.close();
  vqd = next;
  admin.rpc.close();
  admin = await vqClient();
  return { accepted, complete, allRunning };
}

async function scaleSection() {
  // Memory for both fleets at once: per VM pair two QEMUs (~21 MiB anonymous + shared text each)
  // and a shim (~17 MiB); keep 4 GiB for the other tenants of the machine.
  const perPairGiB = 0.075;
  const maxFit = Math.floor((memAvailableGiB() - 4) / perPairGiB);
  const sizes = SIZES.map((n) => Math.min(n, maxFit)).filter((n, i, a) => n > 0 && a.indexOf(n) === i);
  const capped = sizes.at(-1) < Math.max(...SIZES);
  if (capped) log(`scale: only ${sizes.at(-1)} VMs per side fit (${memAvailableGiB().toFixed(1)} GiB available)`);
  const restartAt = new Set(RESTART_SIZES.map((s) => (s === 'max' ? sizes.at(-1) : Math.min(Number(s), sizes.at(-1)))));
  await sleep(2000);
  const base = { libvirtd: pssOf(libvirtdPid()), virtlogd: pssOf(virtlogdPid()), virtqemud: pssOf(vqd.child.pid) };
  const out = { sizes: [], capped, maxFit, base };
  let have = 0;
  const lvNames = [];
  const vqNames = [];
  for (const n of sizes) {
    if (n > have) {
      const add = Array.from({ length: n - have }, (_, i) => `s${String(have + i).padStart(3, '0')}`);
      log(`scale: starting VMs ${have}..${n - 1} on both sides, 8 at a time`);
      let t = now();
      await lv.call('define', { names: add.map(lvName) });
      await lv.call('startMany', { names: add.map(lvName), width: 8 });
      const lvMs = now() - t;
      t = now();
      await vqDefine(add.map(vqName));
      await vqStart(add.map(vqName));
      const vqMs = now() - t;
      log(`  define + start ${add.length}: libvirt ${fmt(lvMs / 1000)} s, virtq ${fmt(vqMs / 1000)} s`);
      lvNames.push(...add.map(lvName));
      vqNames.push(...add.map(vqName));
      have = n;
      await sleep(3000);
    }
    const row = { n };
    // Memory before any restart at this size.
    const lvQemus = libvirtQemuPids(lvNames);
    const shims = vqShimStates();
    // virtqemud's idle warm shims (its default pool) are virtq's memory too, counted beside the VMs' shims.
    const pool = await idlePoolShims({ RpcClient, clock, adminSocket: sockets().admin, statePids: new Set(shims.map((x) => x.shimPid)), pssOf });
    row.memory = {
      libvirtd: pssOf(libvirtdPid()), virtlogd: pssOf(virtlogdPid()), virtqemud: pssOf(vqd.child.pid),
      libvirtdThreads: threadsOf(libvirtdPid()), virtqemudThreads: threadsOf(vqd.child.pid),
      shims: shims.reduce((a, s) => a + pssOf(s.shimPid), 0), shimCount: shims.length,
      poolShims: pool.pss, poolShimCount: pool.pids.length,
      lvQemus: lvQemus.reduce((a, p) => a + pssOf(p), 0), lvQemuCount: lvQemus.length,
      vqQemus: shims.reduce((a, s) => a + pssOf(s.qemuPid), 0),
      nodeProcs: nodeProcessCount(),
    };
    // Idle CPU of each side's whole stack over 10 s (nobody calls either daemon meanwhile).
    {
      const lvPids = [libvirtdPid(), virtlogdPid(), ...lvQemus];
      const vqPids = [vqd.child.pid, ...shims.map((x) => x.shimPid), ...pool.pids];
      const vqQemuPids = shims.map((x) => x.qemuPid);
      const sum = (pids) => pids.reduce((a, p) => { const v = cpuMs(p); return Number.isNaN(v) ? a : a + v; }, 0);
      const before = [sum(lvPids), sum(vqPids), sum(vqQemuPids), sum(lvQemus)];
      const t = now();
      await sleep(10_000);
      const secs = (now() - t) / 1000;
      const after = [sum(lvPids), sum(vqPids), sum(vqQemuPids), sum(lvQemus)];
      const pct = (i) => (after[i] - before[i]) / 10 / secs; // ms per s → % of one CPU
      row.idleCpu = { libvirtAll: pct(0), libvirtQemus: pct(3), virtqMgmt: pct(1), virtqQemus: pct(2) };
      log(`  idle CPU over ${fmt(secs)} s, % of one CPU: libvirt (libvirtd + virtlogd + QEMUs) ${fmt(pct(0), 2)}, of which QEMUs ${fmt(pct(3), 2)}; virtq virtqemud + shims ${fmt(pct(1), 2)}, its QEMUs ${fmt(pct(2), 2)}`);
    }
    log(`scale: N=${n}: listing ${LIST_CALLS} calls × 2 placements each side`);
    row.list = {};
    const daemon = await vqClient();
    for (const placement of ['unpinned', 'pinned']) {
      for (const pid of [libvirtdPid(), lv.pid, vqd.child.pid, process.pid]) pin(pid, placement === 'pinned' ? '0' : ALL_CPUS);
      const l = await lv.call('list', { calls: LIST_CALLS });
      if (l.rows !== n) throw new Error(`libvirt listed ${l.rows}, expected ${n}`);
      let rows = 0;
      const v = await vqLoop(async () => { rows = (await daemon.call('listDomains', {})).domains.length; }, LIST_CALLS, 100);
      if (rows !== n) throw new Error(`virtq listed ${rows}, expected ${n}`);
      row.list[placement] = { libvirt: l, virtq: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k === 'n' ? x : x / 1000])) };
    }
    for (const pid of [libvirtdPid(), lv.pid, vqd.child.pid, process.pid]) pin(pid, ALL_CPUS);
    daemon.rpc.close();
    log(`scale: N=${n}: virsh list --all vs virtq list --all × ${CLI_RUNS}`);
    const cli = { virsh: [], virtq: [] };
    for (let i = 0; i < CLI_RUNS; i++) {
      for (const side of i % 2 === 0 ? ['virsh', 'virtq'] : ['virtq', 'virsh']) {
        const res = side === 'virsh'
          ? await wholeProcess('/usr/bin/virsh', ['-c', URI, 'list', '--all'])
          : await wholeProcess(CLI_BIN, ['-c', `qemu:///system?root=${ROOT}`, 'list', '--all']);
        if (res.lines !== n) throw new Error(`${side} list --all printed ${res.lines} of our ${n} VMs`);
        cli[side].push(res.ms);
      }
    }
    row.cli = { virsh: summarize(cli.virsh), virtq: summarize(cli.virtq) };
    if (restartAt.has(n)) {
      log(`scale: N=${n}: ${RESTART_ROUNDS} kill -9 + restart rounds per side`);
      const rr = { libvirt: [], virtq: [] };
      for (let r = 0; r < RESTART_ROUNDS; r++) {
        for (const side of r % 2 === 0 ? ['libvirt', 'virtq'] : ['virtq', 'libvirt']) {
          await sleep(2500); // shims re-registered with the previous virtqemud; libvirt's reconnect threads done
          if (side === 'libvirt') rr.libvirt.push(await lv.call('restart', { cmd: LIBVIRTD_CMD, pidfile: join(LVDIR, 'libvirtd.pid'), n }));
          else rr.virtq.push(await vqRestart(n));
        }
        log(`  round ${r}: libvirt all running ${fmt(rr.libvirt.at(-1).allRunning)} ms, virtq ${fmt(rr.virtq.at(-1).allRunning)} ms`);
      }
      const col = (list, k) => summarize(list.map((x) => x[k]));
      row.restart = Object.fromEntries(['libvirt', 'virtq'].map((s) => [s, { accepted: col(rr[s], 'accepted'), complete: col(rr[s], 'complete'), allRunning: col(rr[s], 'allRunning') }]));
      // The restarted daemons' memory (the VMs are re-attached, not started by them).
      await sleep(3000);
      row.memoryAfterRestart = { libvirtd: pssOf(libvirtdPid()), virtqemud: pssOf(vqd.child.pid) };
    }
    out.sizes.push(row);
  }
  log('scale: tearing both fleets down');
  await lv.call('undefine', { names: lvNames });
  await vqDestroyUndefine(vqNames);
  return out;
}

// ---- 50 concurrent starts ---------------------------------------------------------------------------

/** Pids of virtq's processes under ROOT: shims (VMs' and the idle pool's) and QEMUs. */
function vqProcesses() {
  const out = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      if (cmd.includes(ROOT) && (cmd.includes('virtq-shim') || cmd.includes('qemu-system'))) out.push(pid);
    } catch { /* gone */ }
  }
  return out;
}
/** CPU ms of `pids` now, by pid (a pid gone reads 0). */
const cpuOf = (pids) => new Map(pids.map((p) => [p, cpuMs(p) || 0]));
/** CPU a burst cost: `after` − `before` per pid (pids new since `before` count whole). */
const cpuSpent = (before, after) => [...after].reduce((a, [p, ms]) => a + ms - (before.get(p) ?? 0), 0);

/**
 * The floor of N concurrent starts with one Node process per VM (session 20; burst.mjs's `raw,node`, here in the
 * same rounds as libvirt): N raw QEMUs with the shim's argv (-S, this process their QMP peer: spawn → `cont`
 * returned), each with a cold Node beside it loading the shim's bundle (`virtq-shim --help` under its shebang's
 * flags: Node's bootstrap and the bundle's evaluation); a VM counts once both are done.
 */
async function floorBurst(tmpl, round) {
  const dir = cleanup.root(tmpRoot('vqcmp-floor-'));
  const con = join(dir, 'con.sock');
  const conServer = createServer((sock) => { sock.on('error', () => undefined); sock.resume(); });
  await new Promise((r) => conServer.listen(con, r));
  const shimBin = join(DIST, 'bin', 'virtq-shim.js');
  const shebang = readFileSync(shimBin, 'utf8').split('\n')[0].replace(/^#!\/usr\/bin\/env -S /, '').split(' ');
  const t0 = now();
  const vms = await Promise.all(Array.from({ length: CONC }, async (_, i) => {
    const name = `floor${round + 1}-${i}`;
    const qmp = join(dir, `${i}.qmp`);
    const argv = rewriteArgv(tmpl.argv, tmpl.from, { name, console: con }, { qmpServer: qmp });
    return burstVm({ argv, qmp, nodeCmd: [...shebang, shimBin, '--help'], t0, cleanup });
  }));
  const wall = now() - t0;
  for (const v of vms) { v.q.close(); v.child.kill('SIGKILL'); }
  await Promise.all(vms.map((v) => exitOf(v.child)));
  conServer.close();
  return wall;
}

async function concurrentSection() {
  const names = Array.from({ length: CONC }, (_, i) => `c${String(i).padStart(2, '0')}`);
  await lv.call('define', { names: names.map(lvName) });
  await vqDefine(names.map(vqName));
  const rows = { lv: [], vq: [], lvDestroy: [], vqDestroy: [], floor: [] };
  let tmpl;
  log(`concurrent: ${CONC_ROUNDS} rounds of ${CONC} starts per side (+1 warm-up)`);
  for (let r = -1; r < CONC_ROUNDS; r++) {
    for (const side of r % 2 === 0 ? ['lv', 'vq'] : ['vq', 'lv']) {
      await sleep(1500);
      if (side === 'lv') {
        const daemons = [libvirtdPid(), virtlogdPid()];
        const before = cpuOf(daemons);
        const c = await lv.call('concurrent', { names: names.map(lvName) });
        c.cpu = cpuSpent(before, cpuOf([...daemons, ...libvirtQemuPids(names.map(lvName))]));
        if (c.running !== CONC) throw new Error(`libvirt: ${c.running} of ${CONC} running`);
        await sleep(500);
        const d = await lv.call('concurrentDestroy', { names: names.map(lvName) });
        if (r >= 0) { rows.lv.push(c); rows.lvDestroy.push(d.wall); }
        log(`  round ${r} libvirt: ${fmt(c.wall)} ms, CPU ${fmt(c.cpu)} ms; destroy ${fmt(d.wall)} ms`);
      } else {
        const clients = await Promise.all(names.map(() => vqClient()));
        const before = cpuOf([vqd.child.pid, ...vqProcesses()]);
        const t0 = now();
        const each = await Promise.all(clients.map(async (c, i) => {
          const row = await c.call('start', { name: vqName(names[i]) });
          if (row.state !== 'running') throw new Error(`${names[i]}: ${row.state}`);
          return now() - t0;
        }));
        const wall = now() - t0;
        const cpu = cpuSpent(before, cpuOf([vqd.child.pid, ...vqProcesses()]));
        const { domains } = await admin.call('listDomains', {});
        const running = domains.filter((d) => d.state === 'running' && d.shimUp).length;
        if (running !== CONC) throw new Error(`virtq: ${running} of ${CONC} running`);
        await sleep(500);
        const t1 = now();
        await Promise.all(clients.map((c, i) => c.call('destroy', { name: vqName(names[i]) })));
        const dWall = now() - t1;
        for (const c of clients) c.rpc.close();
        for (let i = 0; i < 400; i++) {
          const { domains: ds } = await admin.call('listDomains', {});
          if (ds.every((d) => d.state === 'shutoff' && d.shimPid === undefined)) break;
          await sleep(25);
        }
        if (r >= 0) { rows.vq.push({ wall, each, cpu }); rows.vqDestroy.push(dWall); }
        log(`  round ${r} virtq: ${fmt(wall)} ms, CPU ${fmt(cpu)} ms; destroy ${fmt(dWall)} ms`);
        tmpl ??= shimArgv(ROOT, vqName(names[0]));
      }
    }
    if (CONC_FLOOR) {
      await sleep(1500);
      const wall = await floorBurst(tmpl, r);
      if (r >= 0) rows.floor.push(wall);
      log(`  round ${r} floor (raw QEMU + a cold Node per VM): ${fmt(wall)} ms`);
    }
  }
  await lv.call('undefine', { names: names.map(lvName) });
  await vqDestroyUndefine(names.map(vqName));
  return {
    n: CONC, rounds: CONC_ROUNDS,
    libvirt: { wall: summarize(rows.lv.map((x) => x.wall)), each: summarize(rows.lv.flatMap((x) => x.each)), destroy: summarize(rows.lvDestroy), cpu: summarize(rows.lv.map((x) => x.cpu)) },
    virtq: { wall: summarize(rows.vq.map((x) => x.wall)), each: summarize(rows.vq.flatMap((x) => x.each)), destroy: summarize(rows.vqDestroy), cpu: summarize(rows.vq.map((x) => x.cpu)) },
    ...(CONC_FLOOR ? { floor: { wall: summarize(rows.floor) } } : {}),
  };
}

// ---- run the sections, then stop everything ---------------------------------------------------------

let failure;
try {
  if (ONLY.has('start')) results.start = await startSection();
  if (ONLY.has('query')) results.query = await querySection();
  if (ONLY.has('scale')) results.scale = await scaleSection();
  if (ONLY.has('concurrent')) results.concurrent = await concurrentSection();
} catch (err) {
  failure = err;
  console.error(err);
} finally {
  // libvirt: every domain of this run, then the daemons (run.sh checks again).
  try {
    const left = spawnSync('/usr/bin/virsh', ['-q', '-c', URI, 'list', '--all', '--name'], { encoding: 'utf8', timeout: 60_000 }).stdout.split('\n').filter((l) => l.startsWith(PREFIX));
    if (left.length > 0) await lv.call('undefine', { names: left });
  } catch (err) { console.error(`libvirt cleanup: ${err.message}`); }
  lv.child.stdin.end();
  await exitOf(lv.child);
  for (const [name, pid] of [['libvirtd', libvirtdPid], ['virtlogd', virtlogdPid]]) {
    try {
      const p = pid();
      process.kill(p, 'SIGTERM');
      for (let i = 0; i < 100 && existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z'); i++) await sleep(50);
    } catch (err) { if (err.code !== 'ESRCH') console.error(`stopping ${name}: ${err.message}`); }
  }
  admin.rpc.close();
  cleanup.run();
}
facts.loadAfter = loadavg();
results.seconds = (now() - started) / 1000;

// ---- report -----------------------------------------------------------------------------------------

const ratio = (v, l) => (Number.isFinite(v) && Number.isFinite(l) && l > 0 ? `${(v / l).toFixed(2)}×` : '–');
const lines = [];
lines.push(`machine: ${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, kernel ${facts.kernel}, ${facts.qemu}, node ${facts.node}, ${facts.libvirt}`);
lines.push(`load average before ${facts.loadBefore}, after ${facts.loadAfter}; ${results.seconds.toFixed(0)} s`);
const verdicts = [];
const cmp = (what, v, l, unit) => {
  verdicts.push({ what, v, l, met: v <= l });
  return [what, `${fmt(l, 2)} ${unit}`, `${fmt(v, 2)} ${unit}`, ratio(v, l)];
};
const main = [];
if (results.start !== undefined) {
  const s = results.start;
  main.push(cmp('start, defined → running (p50)', s.vqStart.p50, s.lvCreate.p50, 'ms'));
  main.push(cmp('destroy (p50)', s.vqDestroy.p50, s.lvDestroy.p50, 'ms'));
}
if (results.query !== undefined) {
  for (const p of ['unpinned', 'pinned']) {
    const q = results.query[p];
    main.push(cmp(`state query, ${p}: dom.state() vs getState via virtqemud (p50)`, q['virtq getState via virtqemud'].p50, q['libvirt dom.state()'].p50, 'µs'));
    main.push(cmp(`state query, ${p}: dom.state() vs getState on the shim (p50)`, q['virtq getState on the shim'].p50, q['libvirt dom.state()'].p50, 'µs'));
    main.push(cmp(`info query, ${p}: dom.info() vs getInfo via virtqemud (p50)`, q['virtq getInfo via virtqemud'].p50, q['libvirt dom.info()'].p50, 'µs'));
    main.push(cmp(`info query, ${p}: dom.info() vs getInfo on the shim (p50)`, q['virtq getInfo on the shim'].p50, q['libvirt dom.info()'].p50, 'µs'));
  }
}
if (results.scale !== undefined) {
  for (const r of results.scale.sizes) {
    main.push(cmp(`list all, ${r.n} VMs, unpinned (p50)`, r.list.unpinned.virtq.p50, r.list.unpinned.libvirt.p50, 'ms'));
    main.push(cmp(`list all, ${r.n} VMs, pinned (p50)`, r.list.pinned.virtq.p50, r.list.pinned.libvirt.p50, 'ms'));
    main.push(cmp(`\`list --all\` whole process, ${r.n} VMs (p50)`, r.cli.virtq.p50, r.cli.virsh.p50, 'ms'));
    if (r.restart !== undefined) main.push(cmp(`kill -9 + restart → all ${r.n} listed running (p50)`, r.restart.virtq.allRunning.p50, r.restart.libvirt.allRunning.p50, 'ms'));
  }
}
if (results.concurrent !== undefined) {
  const c = results.concurrent;
  main.push(cmp(`${c.n} concurrent starts, wall (median of ${c.rounds})`, c.virtq.wall.p50, c.libvirt.wall.p50, 'ms'));
  main.push(cmp(`${c.n} concurrent destroys, wall`, c.virtq.destroy.p50, c.libvirt.destroy.p50, 'ms'));
}
lines.push('', '### Latency, libvirt vs virtq (medians; ratio virtq / libvirt)', '');
lines.push(table(['figure', 'libvirt', 'virtq', 'virtq / libvirt'], main));
if (results.start !== undefined) {
  const s = results.start;
  const d = (x) => `${fmt(x.p50)} (p90 ${fmt(x.p90)}, max ${fmt(x.max)})`;
  lines.push('', `Start/destroy, ${s.lvCreate.n} rounds: libvirt create ${d(s.lvCreate)} ms, destroy ${d(s.lvDestroy)}; virtq start ${d(s.vqStart)}, destroy ${d(s.vqDestroy)}.`);
}
if (results.query !== undefined) {
  const q = results.query;
  lines.push('', `### Per-VM query round trips (µs; median over ${q.rounds} rounds of ${q.calls} sequential calls)`, '');
  const rows = [];
  for (const p of ['unpinned', 'pinned']) for (const [k, v] of Object.entries(q[p])) rows.push([k, p, fmt(v.p50), fmt(v.p90), fmt(v.p99), fmt(v.p999)]);
  lines.push(table(['call', 'placement', 'p50', 'p90', 'p99', 'p99.9'], rows));
}
if (results.scale !== undefined) {
  const sc = results.scale;
  lines.push('', '### Host listing (ms) and whole-process listing', '');
  lines.push(table(['VMs', 'listAllDomains p50 / p99', 'listDomains p50 / p99', 'pinned: libvirt / virtq p50', '`virsh list --all`', '`virtq list --all`'], sc.sizes.map((r) => [
    String(r.n), `${fmt(r.list.unpinned.libvirt.p50, 3)} / ${fmt(r.list.unpinned.libvirt.p99, 3)}`, `${fmt(r.list.unpinned.virtq.p50, 3)} / ${fmt(r.list.unpinned.virtq.p99, 3)}`,
    `${fmt(r.list.pinned.libvirt.p50, 3)} / ${fmt(r.list.pinned.virtq.p50, 3)}`, `${fmt(r.cli.virsh.p50)} (max ${fmt(r.cli.virsh.max)})`, `${fmt(r.cli.virtq.p50)} (max ${fmt(r.cli.virtq.max)})`,
  ])));
  const rs = sc.sizes.filter((r) => r.restart !== undefined);
  if (rs.length > 0) {
    lines.push('', '### kill -9 of the daemon + restart (ms from spawning the new daemon; median (max))', '');
    lines.push(table(['VMs', 'side', 'socket accepts', 'first listing with all N', 'all N listed running'], rs.flatMap((r) => ['libvirt', 'virtq'].map((s) => [
      String(r.n), s, `${fmt(r.restart[s].accepted.p50)} (${fmt(r.restart[s].accepted.max)})`, `${fmt(r.restart[s].complete.p50)} (${fmt(r.restart[s].complete.max)})`, `${fmt(r.restart[s].allRunning.p50)} (${fmt(r.restart[s].allRunning.max)})`,
    ]))));
  }
  const b = sc.base;
  lines.push('', `### Memory (PSS, MiB; baseline with no VMs: libvirtd ${fmt(MiB(b.libvirtd))} + virtlogd ${fmt(MiB(b.virtlogd))}, virtqemud ${fmt(MiB(b.virtqemud))}; fresh: libvirtd ${fmt(MiB(results.fresh.libvirtd))}, virtlogd ${fmt(MiB(results.fresh.virtlogd))}, virtqemud ${fmt(MiB(results.fresh.virtqemud))})`, '');
  lines.push(table(['VMs', 'libvirtd', 'virtlogd', 'libvirt per VM (daemons Δ / N)', 'virtqemud', 'shims (sum)', 'idle pool shims (count)', 'virtq per VM (virtqemud Δ + shims + idle pool) / N', 'per VM virtq / libvirt', 'QEMU per VM: libvirt / virtq'], sc.sizes.map((r) => {
    const m = r.memory;
    const lvPer = (m.libvirtd - b.libvirtd + m.virtlogd - b.virtlogd) / r.n;
    const vqPer = (m.virtqemud - b.virtqemud + m.shims + (m.poolShims ?? 0)) / r.n;
    return [String(r.n), fmt(MiB(m.libvirtd)), fmt(MiB(m.virtlogd)), fmt(MiB(lvPer), 2), fmt(MiB(m.virtqemud)), fmt(MiB(m.shims)), `${fmt(MiB(m.poolShims ?? 0))} (${m.poolShimCount ?? 0})`, fmt(MiB(vqPer), 2), ratio(vqPer, lvPer), `${fmt(MiB(m.lvQemus / m.lvQemuCount))} / ${fmt(MiB(m.vqQemus / m.shimCount))}`];
  })));
  lines.push('', 'Idle CPU of each stack over 10 s with the VMs running and no client calls (% of one CPU):', '');
  lines.push(table(['VMs', 'libvirtd + virtlogd', 'libvirt\'s QEMUs', 'virtqemud + shims', 'virtq\'s QEMUs'], sc.sizes.map((r) => [
    String(r.n), fmt(r.idleCpu.libvirtAll - r.idleCpu.libvirtQemus, 2), fmt(r.idleCpu.libvirtQemus, 2), fmt(r.idleCpu.virtqMgmt, 2), fmt(r.idleCpu.virtqQemus, 2),
  ])));
  const last = sc.sizes.at(-1).memory;
  lines.push('', `Threads with ${sc.sizes.at(-1).n} VMs: libvirtd ${last.libvirtdThreads}, virtqemud ${last.virtqemudThreads} (+ one shim process per VM). node processes on the host while measuring: ${last.nodeProcs}.${sc.capped ? ` Only ${sc.sizes.at(-1).n} VMs per side fit in free memory.` : ''}`);
}
if (results.concurrent !== undefined) {
  const c = results.concurrent;
  lines.push('', `### ${c.n} concurrent starts (ms; ${c.rounds} rounds interleaved)`, '');
  lines.push(table(['side', 'wall until all running: median (max)', 'one start p50 / max', 'CPU of the burst: median (max)', `${c.n} concurrent destroys, wall`], ['libvirt', 'virtq'].map((s) => [
    s, `${fmt(c[s].wall.p50)} (${fmt(c[s].wall.max)})`, `${fmt(c[s].each.p50)} / ${fmt(c[s].each.max)}`, c[s].cpu === undefined ? '–' : `${fmt(c[s].cpu.p50)} (${fmt(c[s].cpu.max)})`, fmt(c[s].destroy.p50),
  ])));
  lines.push('', 'CPU: libvirtd + virtlogd + its QEMUs against virtqemud + shims + QEMUs, all threads, read when all ran.');
  if (c.floor !== undefined) {
    lines.push('', `Floor in the same rounds, ${c.n} raw QEMUs (the shim's argv, -S + cont) each with a cold Node loading the shim's bundle: ${fmt(c.floor.wall.p50)} ms (max ${fmt(c.floor.wall.max)}), ${ratio(c.floor.wall.p50, c.libvirt.wall.p50)} libvirt; virtq ${ratio(c.virtq.wall.p50, c.libvirt.wall.p50)}.`);
  }
}
const missed = verdicts.filter((v) => !v.met);
lines.push('', `Targets (virtq at or below libvirt on every latency): ${verdicts.length - missed.length} of ${verdicts.length} met${missed.length > 0 ? `; missed: ${missed.map((v) => `${v.what} (${ratio(v.v, v.l)})`).join('; ')}` : ''}.`);
console.log(lines.join('\n'));
results.verdicts = verdicts;
if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, `${JSON.stringify(results, null, 2)}\n`);
process.exit(failure === undefined ? 0 : 1);
