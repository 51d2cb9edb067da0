#!/usr/bin/env node
// virtqemud benchmark (issue #4). Real shims, real QEMU: every VM is the idle guest (multiboot
// `cli; hlt`, 32 MiB, TCG) created paused through virtqemud, so the VMs cost no CPU.
//
//   concurrent  50 concurrent `create` calls (paused; one connection each): wall time until all
//               returned, interleaved round by round with 50 concurrent raw QEMU spawns of the
//               same argv (-S, QEMU serving QMP): wall time until every one answered
//               query-status with 'prelaunch'. Then 50 concurrent destroys through virtqemud.
//   scale       one virtqemud, VMs added up to each size (default 0, 1, 50, 200):
//                 listDomains round trips from a separate client process (unpinned; pinned with
//                 virtqemud on CPU 0),
//                 `virtq -c 'qemu:///system?root=R' list --all` as a whole process (and a minimal
//                 client bundled the same way doing connect + listDomains + print, and `node -e 0`),
//                 kill -9 of virtqemud + restart (at 50 and 200): spawn → socket accepts, → first
//                 listing with all N, → all N with shimUp, → all N shims registered again; the
//                 shipped binary (shebang flags) interleaved with `node virtqemud.js` (no flags),
//                 virtqemud's own PSS.
//
//   node bench/virtqemud/run.mjs [--sizes 0,1,50,200] [--list-calls 5000] [--list-rounds 3]
//                                [--cli-runs 20] [--restart-rounds 20] [--restart-sizes 50,200]
//                                [--restart-variants shipped,no-flags,base] [--base DIR]
//                                [--concurrent 50] [--concurrent-rounds 5] [--only scale,concurrent]
//                                [--dist DIR] [--json out.json]
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  REPO, cleanupRegistry, connectRetry, cpuMs, exitOf, firstLine, fmt, idleDefinition, loadavg, machineFacts, median, now, options,
  qmpSession, rewriteArgv, sectionRunner, shimArgv, sleep, smapsRollup, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';
import { connectWhenBound, socketIdentity } from '../lib/socket-wait.mjs';

const SELF = fileURLToPath(import.meta.url);
const o = options();
const QEMU = process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64';

// ---- client mode: listDomains loop in its own (pinnable) process -------------------------------------
if (o.get('client') === 'list') {
  const { RpcClient, systemClock } = await import(join(o.get('dist'), 'lib', 'protocol', 'index.js'));
  const rpc = await RpcClient.connect(o.get('socket'), { clock: systemClock(), defaultTimeoutMs: 30_000 });
  const calls = o.num('calls', 5000);
  const warm = o.num('warm', 500);
  let rows = 0;
  for (let i = 0; i < warm; i++) rows = (await rpc.call('virtq', 'listDomains', {})).domains.length;
  const lat = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await rpc.call('virtq', 'listDomains', {});
    lat[i] = performance.now() - t;
  }
  rpc.close();
  process.stdout.write(`${JSON.stringify({ rows, ...summarize(lat) })}\n`);
  process.exit(0);
}

const SIZES = o.get('sizes', '0,1,50,200').split(',').map(Number);
const RESTART_SIZES = new Set(o.get('restart-sizes', '50,200').split(',').map(Number));
const LIST_CALLS = o.num('list-calls', 5000);
const LIST_ROUNDS = o.num('list-rounds', 3);
const CLI_RUNS = o.num('cli-runs', 20);
const CLI_MIN = o.num('cli-min', 50);
const RESTART_ROUNDS = o.num('restart-rounds', 20);
const RESTART_VARIANT_NAMES = o.get('restart-variants', 'shipped,no-flags').split(',');
const CONC = o.num('concurrent', 50);
const CONC_ROUNDS = o.num('concurrent-rounds', 5);
const ONLY = new Set(o.get('only', 'scale,concurrent').split(','));
const JSON_OUT = o.get('json');
const started = now();
const cleanup = cleanupRegistry();
const facts = { ...machineFacts(QEMU), loadBefore: loadavg() };
const DIST = await snapshotDist('virtqemud', o.get('dist'));
const DAEMON_BIN = join(DIST, 'bin', 'virtqemud.js');
const CLI_BIN = join(DIST, 'bin', 'virtq.js');
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(DIST, 'lib', 'protocol', 'index.js'));
const clock = systemClock();
const results = { facts };
const log = (...a) => console.error(`[${((now() - started) / 1000).toFixed(1)}s load ${loadavg()}]`, ...a);
const memAvailableGiB = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 2 ** 20;

// ---- virtqemud ----------------------------------------------------------------------------------------

/** How virtqemud is run: the shipped binary through its shebang, or `node bundle` without its flags. */
const SHIPPED = { name: 'shipped', cmd: DAEMON_BIN, pre: [] };
const NO_FLAGS = { name: 'no-flags', cmd: process.execPath, pre: [DAEMON_BIN] };
// --base DIR: another build's virtqemud (e.g. main's dist), restarted over the same shims.
const BASE = o.get('base') === undefined ? undefined : { name: 'base', cmd: join(o.get('base'), 'bin', 'virtqemud.js'), pre: [] };
const RESTART_VARIANTS = RESTART_VARIANT_NAMES.map((n) => ({ shipped: SHIPPED, 'no-flags': NO_FLAGS, base: BASE })[n]);
const DAEMON_SHEBANG = readFileSync(DAEMON_BIN, 'utf8').split('\n')[0];

/** Starts virtqemud under `root`; resolves at its ready line. */
async function startDaemon(root, variant = SHIPPED) {
  const t0 = now();
  const child = cleanup.child(spawn(variant.cmd, [...variant.pre, '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const ready = firstLine(child).then(({ line, at }) => {
    child.stdout.resume();
    const reply = JSON.parse(line);
    if (!reply.ok) throw new Error(`virtqemud: ${line}\n${stderr}`);
    return { reply, lineMs: at - t0 };
  });
  return { child, t0, ready, stderr: () => stderr };
}

const sockets = (root) => daemonSockets(rootLayout(root));

async function client(root, which = 'rw') {
  const rpc = await RpcClient.connect(sockets(root)[which], { clock, defaultTimeoutMs: 180_000 });
  return { rpc, call: (proc, args = {}) => rpc.call(which === 'admin' ? 'admin' : 'virtq', proc, args) };
}

/** Creates paused idle VMs `names` through virtqemud, `width` at a time. */
async function createMany(root, names, width = 8) {
  const clients = await Promise.all(Array.from({ length: Math.min(width, names.length) }, () => client(root)));
  let next = 0;
  await Promise.all(clients.map(async (c) => {
    while (next < names.length) {
      const name = names[next++];
      const row = await c.call('create', { definition: idleDefinition(name), paused: true });
      if (row.state !== 'paused') throw new Error(`${name}: created ${row.state}`);
    }
  }));
  for (const c of clients) c.rpc.close();
}

// ---- raw QEMU -----------------------------------------------------------------------------------------

/** Spawns QEMU with `argv` (QEMU serving QMP at `qmp`); resolves once query-status answers `want`. */
async function rawReady(argv, qmp, logFile, want) {
  const fd = openSync(logFile, 'a');
  let child;
  try {
    child = cleanup.child(spawn(QEMU, argv, { stdio: ['ignore', fd, fd], detached: true }));
  } finally {
    closeSync(fd);
  }
  const t0 = now();
  const q = qmpSession(await connectRetry(qmp, t0 + 60_000, 2));
  await q.greeting;
  await q.execute('qmp_capabilities');
  const st = await q.execute('query-status');
  if (st.status !== want) throw new Error(`raw QEMU: ${st.status}`);
  return { child, q, ms: now() - t0 };
}

// ---- concurrent creates -------------------------------------------------------------------------------

async function concurrentSection() {
  const root = cleanup.root(tmpRoot('vqbc-'));
  const rawDir = join(root, 'raw');
  mkdirSync(rawDir, { recursive: true });
  const d = await startDaemon(root);
  await d.ready;
  // One VM for the argv template (the shim's exact QEMU command line), then gone.
  const admin = await client(root);
  await createMany(root, ['tmpl'], 1);
  const tmpl = shimArgv(root, 'tmpl');
  await admin.call('destroy', { name: 'tmpl' });
  const conServer = createServer((s) => { s.on('error', () => undefined); s.resume(); });
  await new Promise((r) => conServer.listen(join(rawDir, 'con.sock'), r));
  const rows = { create: [], raw: [], destroy: [] };
  log(`concurrent: ${CONC_ROUNDS} rounds of ${CONC} creates vs ${CONC} raw QEMU spawns`);
  for (let r = -1; r < CONC_ROUNDS; r++) {
    for (const kind of r % 2 === 0 ? ['create', 'raw'] : ['raw', 'create']) {
      await sleep(500);
      if (kind === 'create') {
        const clients = await Promise.all(Array.from({ length: CONC }, () => client(root)));
        const names = clients.map((_, i) => `c${r + 1}-${i}`);
        const t0 = now();
        const each = await Promise.all(clients.map(async (c, i) => {
          const row = await c.call('create', { definition: idleDefinition(names[i]), paused: true });
          if (row.state !== 'paused') throw new Error(`${names[i]}: ${row.state}`);
          return now() - t0;
        }));
        const wall = now() - t0;
        const listed = (await admin.call('listDomains', {})).domains.filter((x) => x.state === 'paused' && x.shimUp).length;
        if (listed !== CONC) throw new Error(`after ${CONC} creates, ${listed} listed paused`);
        // Tear down through virtqemud too: 50 concurrent destroys (forwarded to the shims).
        const t1 = now();
        await Promise.all(clients.map((c, i) => c.call('destroy', { name: names[i] })));
        const destroyWall = now() - t1;
        for (const c of clients) c.rpc.close();
        for (let i = 0; i < 400 && (await admin.call('listDomains', {})).domains.length > 0; i++) await sleep(25);
        if (r >= 0) { rows.create.push({ wall, each }); rows.destroy.push(destroyWall); }
        log(`  round ${r} create: ${fmt(wall)} ms; destroy ${fmt(destroyWall)} ms`);
      } else {
        const t0 = now();
        const vms = await Promise.all(Array.from({ length: CONC }, (_, i) => {
          const name = `raw${r + 1}-${i}`;
          const qmp = join(rawDir, `${name}.qmp`);
          const argv = rewriteArgv(tmpl.argv, tmpl.from, { name, console: join(rawDir, 'con.sock') }, { qmpServer: qmp });
          return rawReady(argv, qmp, join(rawDir, `${name}.log`), 'prelaunch').then((v) => ({ ...v, done: now() - t0 }));
        }));
        const wall = now() - t0;
        for (const v of vms) { v.q.close(); v.child.kill('SIGKILL'); }
        await Promise.all(vms.map((v) => exitOf(v.child)));
        if (r >= 0) rows.raw.push({ wall, each: vms.map((v) => v.done) });
        log(`  round ${r} raw: ${fmt(wall)} ms`);
      }
    }
  }
  conServer.close();
  admin.rpc.close();
  d.child.kill('SIGKILL');
  await exitOf(d.child);
  await cleanup.drop(root);
  return {
    n: CONC, rounds: CONC_ROUNDS,
    create: { wall: summarize(rows.create.map((x) => x.wall)), each: summarize(rows.create.flatMap((x) => x.each)) },
    raw: { wall: summarize(rows.raw.map((x) => x.wall)), each: summarize(rows.raw.flatMap((x) => x.each)) },
    destroy: summarize(rows.destroy),
  };
}

// ---- scale: listing, CLI, restart ---------------------------------------------------------------------

function listClient(socket, pinned) {
  const args = [...(pinned ? ['taskset', '-c', '0'] : []), process.execPath, SELF, '--client', 'list', '--socket', socket, '--dist', DIST, '--calls', String(LIST_CALLS), '--warm', String(Math.min(500, LIST_CALLS / 5))];
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`list client: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const pin = (pid, cpus) => spawnSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' });

async function listLatency(root, daemonPid, n) {
  const per = { unpinned: [], pinned: [] };
  for (let r = 0; r < LIST_ROUNDS; r++) {
    for (const placement of r % 2 === 0 ? ['unpinned', 'pinned'] : ['pinned', 'unpinned']) {
      pin(daemonPid, placement === 'pinned' ? '0' : `0-${facts.nproc - 1}`);
      const res = listClient(sockets(root).rw, placement === 'pinned');
      if (res.rows !== n) throw new Error(`listing showed ${res.rows} rows, expected ${n}`);
      per[placement].push(res);
    }
  }
  pin(daemonPid, `0-${facts.nproc - 1}`);
  const med = (list) => Object.fromEntries(['p50', 'p90', 'p99', 'p999', 'max'].map((k) => [k, median(list.map((x) => x[k]))]));
  return { unpinned: med(per.unpinned), pinned: med(per.pinned), perRound: per };
}

/** Runs `cmd args` `runs` times: wall time spawn → exit, and the lines it printed. */
async function wholeProcess(cmd, args, runs) {
  const times = [];
  let lines = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    const child = cleanup.child(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((r) => child.once('close', (c) => r(c)));
    times.push(now() - t0);
    if (code !== 0) return { error: `exit ${code}: ${err.slice(0, 300)}` };
    lines = out.split('\n').filter((l) => l.trim() !== '').length;
  }
  return { ms: summarize(times), lines };
}

/** A minimal client, bundled like the CLI (esbuild, one file): connect + listDomains + print. */
async function buildStandIn() {
  const { build } = await import('esbuild');
  const outfile = join(REPO, '.cache', 'bench', 'virtqemud', 'list-standin.mjs');
  await build({
    stdin: {
      contents: `import { RpcClient, systemClock } from './protocol/index.js';
const c = await RpcClient.connect(process.argv[2], { clock: systemClock() });
const { domains } = await c.call('virtq', 'listDomains', {});
process.stdout.write(domains.map((d) => d.name + ' ' + d.state).join('\\n') + '\\n');
c.close();`,
      resolveDir: REPO, sourcefile: 'list-standin.ts', loader: 'ts',
    },
    outfile, bundle: true, platform: 'node', target: 'node20', format: 'esm', external: ['cbor-extract'], logLevel: 'error',
    banner: { js: "import { createRequire as __vqCreateRequire } from 'node:module'; const require = __vqCreateRequire(import.meta.url);" },
  });
  return outfile;
}

async function cliSection(root, n) {
  const uri = `qemu:///system?root=${root}`;
  const sock = sockets(root).rw;
  const standIn = await buildStandIn();
  // Interleave the three so drifting load hits them alike.
  const out = { cli: [], standIn: [], floor: [] };
  let cliLines = 0;
  let standInLines = 0;
  let cliError;
  for (let i = 0; i < CLI_RUNS; i++) {
    const c = await wholeProcess(CLI_BIN, ['-c', uri, 'list', '--all'], 1);
    if (c.error !== undefined) cliError = c.error; else { out.cli.push(c.ms.p50); cliLines = c.lines; }
    const s = await wholeProcess(process.execPath, [standIn, sock], 1);
    if (s.error !== undefined) throw new Error(`stand-in: ${s.error}`);
    out.standIn.push(s.ms.p50);
    standInLines = s.lines;
    out.floor.push((await wholeProcess(process.execPath, ['-e', '0'], 1)).ms.p50);
  }
  return {
    n, runs: CLI_RUNS, cmd: `virtq -c '${uri}' list --all`,
    cli: out.cli.length > 0 ? summarize(out.cli) : undefined, cliLines, cliError,
    standIn: summarize(out.standIn), standInLines, floor: summarize(out.floor),
  };
}

/** kill -9 virtqemud, start a new one, time the recovery. Returns the new daemon. */
async function restartOnce(root, d, n, variant) {
  // Awaited by lstat, not by a refused connect each millisecond, which cost this process most of a
  // core while the daemon started (bench/lib/socket-wait.mjs, session 15).
  const stale = socketIdentity(sockets(root).rw);
  d.child.kill('SIGKILL');
  await exitOf(d.child);
  const next = await startDaemon(root, variant);
  const t0 = next.t0;
  const rpc = new RpcClient(await connectWhenBound(sockets(root).rw, (p) => connectRetry(p, 0, 1), t0 + 30_000, stale), { clock, defaultTimeoutMs: 30_000 });
  const accepted = now() - t0;
  let complete;
  let cpu;
  let allUp;
  let rows = 0;
  for (;;) {
    const { domains } = await rpc.call('virtq', 'listDomains', {});
    rows = domains.length;
    const t = now() - t0;
    if (rows === n && complete === undefined) { complete = t; cpu = cpuMs(next.child.pid); }
    if (rows === n && domains.every((x) => x.shimUp && x.state === 'paused')) { allUp = t; break; }
    if (t > 30_000) throw new Error(`restart: after 30 s, ${rows} rows`);
    await new Promise((r) => setImmediate(r));
  }
  // Shims re-register on their own (reconnect backoff 100, 200, 400 ms, ...): count the
  // registration connections on the admin socket until all N are back.
  const adm = new RpcClient(await connectRetry(sockets(root).admin, t0 + 30_000, 1), { clock, defaultTimeoutMs: 30_000 });
  let registered;
  for (;;) {
    const info = await adm.call('admin', 'serverInfo', {});
    // Clients: the N shims plus this benchmark's two connections.
    if (info.clients >= n + 2) { registered = now() - t0; break; }
    if (now() - t0 > 30_000) { registered = NaN; break; }
    await sleep(2);
  }
  const { lineMs, reply } = await next.ready;
  rpc.close();
  adm.close();
  return { d: next, r: { accepted, line: lineMs, recoveryMs: reply.recovered?.ms, complete, cpu, allUp, registered } };
}

// The floors of a restart, timed in the same rounds: `node -e 0` (spawn → exit) and a bare Node
// unix-socket server (spawn → a client's framed request answered), with their CPU time.
const BARE_SERVER = `const s = require('node:net').createServer((c) => c.once('data', (d) => c.end(d))); s.listen(process.argv[1]);`;
async function floorOnce(root) {
  let t0 = now();
  const e = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await exitOf(e);
  const nodeE0 = now() - t0;
  const path = join(root, 'floor.sock');
  rmSync(path, { force: true });
  t0 = now();
  const srv = cleanup.child(spawn(process.execPath, ['-e', BARE_SERVER, path], { stdio: 'ignore' }));
  const sock = await connectWhenBound(path, (p) => connectRetry(p, 0, 1), t0 + 30_000, undefined);
  const frame = Buffer.alloc(8); frame.writeUInt32BE(4, 0);
  await new Promise((resolve) => { sock.once('data', resolve); sock.write(frame); });
  const bare = now() - t0;
  const bareCpu = cpuMs(srv.pid);
  sock.destroy();
  srv.kill('SIGKILL');
  await exitOf(srv);
  return { nodeE0, bare, bareCpu };
}

async function scaleSection() {
  const root = cleanup.root(tmpRoot('vqbd-'));
  let d = await startDaemon(root);
  await d.ready;
  const fresh = smapsRollup(d.child.pid);
  const out = { sizes: [], restarts: [], cli: [], memory: { freshPss: fresh.pss / 1024, freshRss: fresh.rss / 1024 } };
  let have = 0;
  for (const n of SIZES) {
    if (n > have) {
      const need = (n - have) * 0.06; // GiB, shim + paused QEMU, generously
      if (memAvailableGiB() < need + 2) throw new Error(`not enough memory for ${n} VMs: ${memAvailableGiB().toFixed(1)} GiB available`);
      log(`scale: creating VMs ${have}..${n - 1}`);
      const t0 = now();
      await createMany(root, Array.from({ length: n - have }, (_, i) => `vm${String(have + i).padStart(3, '0')}`));
      log(`  ${n - have} creates, 8 at a time: ${fmt((now() - t0) / 1000)} s`);
      have = n;
      await sleep(2000);
    }
    log(`scale: N=${n}: listDomains ${LIST_ROUNDS} × ${LIST_CALLS} calls per placement`);
    out.sizes.push({ n, ...(await listLatency(root, d.child.pid, n)), daemonPss: smapsRollup(d.child.pid).pss / 1024 });
    if (n >= CLI_MIN) {
      log(`scale: N=${n}: whole-process listing × ${CLI_RUNS}`);
      out.cli.push(await cliSection(root, n));
    }
    if (RESTART_SIZES.has(n)) {
      log(`scale: N=${n}: ${RESTART_ROUNDS} kill -9 + restart rounds per variant (${RESTART_VARIANTS.map((v) => v.name).join(', ')}), interleaved`);
      const rounds = Object.fromEntries(RESTART_VARIANTS.map((v) => [v.name, []]));
      const floors = [];
      await sleep(2500);
      for (let r = 0; r < RESTART_ROUNDS * RESTART_VARIANTS.length; r++) {
        const variant = RESTART_VARIANTS[r % RESTART_VARIANTS.length];
        const res = await restartOnce(root, d, n, variant);
        d = res.d;
        rounds[variant.name].push(res.r);
        if (r % RESTART_VARIANTS.length === RESTART_VARIANTS.length - 1) floors.push(await floorOnce(root));
        if (r < RESTART_VARIANTS.length) log(`  ${variant.name}: all listed ${fmt(res.r.complete)} ms, shimUp ${fmt(res.r.allUp)} ms, re-registered ${fmt(res.r.registered)} ms`);
        // Every shim has registered with this instance (counted above); let the last settle.
        await sleep(300);
      }
      for (const v of RESTART_VARIANTS) {
        const list = rounds[v.name];
        const col = (k) => summarize(list.map((x) => x[k]).filter((x) => x !== undefined && !Number.isNaN(x)));
        out.restarts.push({ n, variant: v.name, rounds: list.length, accepted: col('accepted'), line: col('line'), recoveryMs: col('recoveryMs'), complete: col('complete'), cpu: col('cpu'), allUp: col('allUp'), registered: col('registered') });
      }
      const fcol = (k) => summarize(floors.map((x) => x[k]));
      out.restarts.push({ n, variant: 'floor', rounds: floors.length, nodeE0: fcol('nodeE0'), bare: fcol('bare'), bareCpu: fcol('bareCpu'), load: loadavg() });
      // Leave the shipped daemon running for what follows.
      if (RESTART_VARIANTS.at(-1) !== SHIPPED) d = (await restartOnce(root, d, n, SHIPPED)).d;
    }
  }
  // Footprint at the largest size: virtqemud, and all shims and QEMUs together.
  await sleep(2000);
  const states = readShimStates(root);
  const sum = (pids) => pids.reduce((a, p) => { try { return a + smapsRollup(p).pss; } catch { return a; } }, 0) / 1024;
  out.memory = {
    ...out.memory, n: have, daemonPss: smapsRollup(d.child.pid).pss / 1024, daemonRss: smapsRollup(d.child.pid).rss / 1024,
    daemonThreads: Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${d.child.pid}/status`, 'utf8'))[1]),
    daemonCpuMs: cpuMs(d.child.pid),
    shimsPss: sum(states.map((s) => s.shimPid)), qemusPss: sum(states.map((s) => s.qemuPid)), vms: states.length,
  };
  d.child.kill('SIGKILL');
  await exitOf(d.child);
  await cleanup.drop(root);
  return out;
}

function readShimStates(root) {
  const dir = join(root, 'run', 'shims');
  return spawnSync('ls', [dir], { encoding: 'utf8' }).stdout.split('\n').filter((f) => f.endsWith('.json') && !f.startsWith('.')).flatMap((f) => {
    try { return [JSON.parse(readFileSync(join(dir, f), 'utf8'))]; } catch { return []; }
  });
}

// ---- run ----------------------------------------------------------------------------------------------

// A section that fails is reported as failed; the other still runs and prints.
const section = sectionRunner(results, log);
try {
  // Scale first: the concurrent starts leave the load average high for minutes.
  if (ONLY.has('scale')) await section('scale', scaleSection);
  if (ONLY.has('concurrent')) await section('concurrent', concurrentSection);
} finally {
  cleanup.run();
}
facts.loadAfter = loadavg();
results.seconds = (now() - started) / 1000;

// ---- report -------------------------------------------------------------------------------------------

const ms = (s) => (s === undefined ? '–' : `${fmt(s.p50)} (p90 ${fmt(s.p90)}, max ${fmt(s.max)})`);
const lines = [];
lines.push(`machine: ${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, kernel ${facts.kernel}, ${facts.qemu}, node ${facts.node}`);
lines.push(`load average before ${facts.loadBefore}, after ${facts.loadAfter}; ${results.seconds.toFixed(0)} s`);
if (results.scale !== undefined) {
  const s = results.scale;
  lines.push('', `### listDomains round trip (ms; median over ${LIST_ROUNDS} rounds of ${LIST_CALLS} sequential calls from a separate process)`, '');
  lines.push(table(['VMs', 'unpinned p50', 'p90', 'p99', 'p99.9', 'pinned p50', 'p99', 'virtqemud PSS MiB'], s.sizes.map((x) => [
    String(x.n), fmt(x.unpinned.p50, 3), fmt(x.unpinned.p90, 3), fmt(x.unpinned.p99, 3), fmt(x.unpinned.p999, 3), fmt(x.pinned.p50, 3), fmt(x.pinned.p99, 3), fmt(x.daemonPss),
  ])));
  lines.push('', `### Listing as a whole process (ms, spawn → exit, ${CLI_RUNS} runs interleaved)`, '');
  lines.push(table(['VMs', '`virtq list --all` (dist/bin/virtq.js)', 'minimal bundled client: connect + listDomains + print', '`node -e 0`'], s.cli.map((c) => [
    String(c.n), c.cli === undefined ? `failed: ${c.cliError}` : `${ms(c.cli)}; ${c.cliLines} lines`, `${ms(c.standIn)}; ${c.standInLines} lines`, ms(c.floor),
  ])));
  lines.push('', `### kill -9 virtqemud + restart (ms from spawning the new virtqemud; median (p90, max) over the rounds)`, '');
  lines.push(`virtqemud as shipped: ${DAEMON_SHEBANG}; no-flags: \`node dist/bin/virtqemud.js\`.`, '');
  lines.push(table(['VMs', 'virtqemud', 'rounds', 'socket accepts', 'ready line', 'recovery (its own report)', 'first listing with all N', 'its CPU by then', 'all N shimUp + paused', 'all N shims registered again'], s.restarts.filter((r) => r.variant !== 'floor').map((r) => [
    String(r.n), r.variant, String(r.rounds), ms(r.accepted), ms(r.line), ms(r.recoveryMs), ms(r.complete), ms(r.cpu), ms(r.allUp), ms(r.registered),
  ])));
  for (const f of s.restarts.filter((r) => r.variant === 'floor')) {
    lines.push('', `Floors at ${f.n} VMs, same rounds (load ${f.load}): \`node -e 0\` ${ms(f.nodeE0)}; bare Node unix-socket server, spawn → one framed request answered ${ms(f.bare)}, its CPU ${ms(f.bareCpu)}.`);
  }
  const m = s.memory;
  lines.push('', `virtqemud PSS: ${fmt(m.freshPss)} MiB fresh, ${fmt(m.daemonPss)} MiB (RSS ${fmt(m.daemonRss)}, ${m.daemonThreads} threads) with ${m.vms} VMs; all ${m.vms} shims together ${fmt(m.shimsPss)} MiB PSS (${fmt(m.shimsPss / m.vms)} each), their QEMUs ${fmt(m.qemusPss)} MiB (${fmt(m.qemusPss / m.vms)} each, paused).`);
}
if (results.concurrent !== undefined) {
  const c = results.concurrent;
  lines.push('', `### ${c.n} concurrent starts, paused idle guests (ms; ${c.rounds} rounds interleaved; median (p90, max) over rounds)`, '');
  lines.push(table(['', 'wall until all ready', 'one start, over all rounds: p50', 'max'], [
    [`${c.n} × create through virtqemud (paused)`, ms(c.create.wall), fmt(c.create.each.p50), fmt(c.create.each.max)],
    [`${c.n} × raw QEMU, same argv, -S, QMP server → 'prelaunch'`, ms(c.raw.wall), fmt(c.raw.each.p50), fmt(c.raw.each.max)],
    [`${c.n} × destroy through virtqemud`, ms(c.destroy), '', ''],
  ]));
}
if (results.errors !== undefined) lines.push('', `FAILED sections: ${JSON.stringify(results.errors)}`);
console.log(lines.join('\n'));
if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
