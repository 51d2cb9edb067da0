#!/usr/bin/env node
// Where N concurrent starts through virtqemud spend their time (issue 15 target 1's "50 concurrent
// starts ≤ 0.3× libvirt"), without libvirt: one virtqemud per variant (a build, a warm pool size,
// a workerConcurrency limit), N defined idle VMs each, rounds interleaved variant by variant. Per
// burst: wall until all N `start` calls returned (one connection each, as run.mjs's concurrent
// group), when each returned, and the CPU (/proc/PID/task/*/schedstat) of virtqemud, of the shims
// and of the QEMUs of the burst at the moment all are running; how many shims were starting at
// once (sampled every 50 ms). CPU totals are the stable figure on a loaded machine; wall is
// direction only there.
//
// Floors, in the same rounds: NAME=raw (N raw QEMUs with the shim's argv, `-S`, this process as
// their QMP peer: spawn → `cont` returned) and NAME=raw,node (the same, each with a cold Node
// process beside it that loads the shim's bundle: `virtq-shim --help` under its shebang's flags,
// i.e. Node's bootstrap + the bundle's evaluation; a VM counts when both are done): what N
// starts cost with no shim work at all, and with one Node process per VM that does nothing else.
//
//   node bench/compare-libvirt/burst.mjs [--n 50] [--rounds 3] [--pause-ms 1500]
//       [--variant NAME=DIST[,pool=N][,workers=N][,env=K:V]]... [--variant NAME=raw[,node]]...
//       (default: base=dist; a raw variant takes its argv from the first virtq variant's VM)
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  burstVm, cleanupRegistry, cpuMs, exitOf, firstLine, fmt, idleDefinition, loadavg, machineFacts, median, now, pct, rewriteArgv,
  shimArgv, sleep, snapshotDist, tmpRoot,
} from '../lib/common.mjs';

const argv = process.argv.slice(2);
const num = (name, d) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const N = num('n', 50);
const ROUNDS = num('rounds', 3);
// Between bursts: long enough for a warm pool of N to refill (one shim's load each) before the next.
const PAUSE_MS = num('pause-ms', 1500);
const specs = argv.flatMap((a, i) => (a === '--variant' ? [argv[i + 1]] : []));
if (specs.length === 0) specs.push('base=dist');

const started = now();
const cleanup = cleanupRegistry();
const log = (...a) => console.error(`[${((now() - started) / 1000).toFixed(1)}s load ${loadavg()}]`, ...a);
const CLK_TCK = 100;
// Everything a variant's virtqemud starts (shims, QEMUs, their short-lived children such as
// flock(1)) stays in its cpuacct cgroup (v1; root only): its usage is the burst's whole CPU.
const CG = '/sys/fs/cgroup/cpuacct';
const cgroups = new Set();
// Last, after the cleanup registry's kills (registered first): an empty cgroup is removed.
process.on('exit', () => { for (const d of cgroups) try { rmdirSync(d); } catch { /* tasks left */ } });
function cgroup(name) {
  const dir = join(CG, `vqburst-${process.pid}-${name}`);
  try { mkdirSync(dir); } catch { return undefined; }
  cgroups.add(dir);
  return {
    dir,
    add: (pid) => { try { writeFileSync(join(dir, 'cgroup.procs'), String(pid)); } catch { /* gone */ } },
    usageMs: () => Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1e6,
    async remove() { for (let i = 0; i < 100; i++) { try { rmdirSync(dir); cgroups.delete(dir); return; } catch { await sleep(50); } } },
  };
}

/** A variant: NAME=DIST,pool=N,workers=N,env=K:V. */
function parse(spec) {
  const [head, ...opts] = spec.split(',');
  const [name, dist] = head.split('=');
  const v = { name, dist, pool: undefined, workers: undefined, env: {}, raw: dist === 'raw', node: false };
  for (const o of opts) {
    if (o === 'node') v.node = true;
    const [k, val] = o.split('=');
    if (k === 'pool') v.pool = val;
    else if (k === 'workers') v.workers = Number(val);
    else if (k === 'env') { const [ek, ev] = val.split(':'); v.env[ek] = ev; }
  }
  return v;
}

const uptimeMs = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
function statOf(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { startMs: (Number(f[19]) / CLK_TCK) * 1000 };
}
/** Shims (node running virtq-shim) and QEMUs whose command line names `root`. */
function processesOf(root) {
  const out = { shims: [], qemus: [] };
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    let cmd;
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1'); } catch { continue; }
    if (!cmd.includes(root)) continue;
    if (cmd.includes('virtq-shim')) out.shims.push(pid);
    else if (cmd.includes('qemu-system')) out.qemus.push(pid);
  }
  return out;
}

async function startVariant(v) {
  const dist = await snapshotDist(`burst-${v.name}`, v.dist);
  const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(dist, 'lib', 'protocol', 'index.js'));
  const clock = systemClock();
  const root = cleanup.root(tmpRoot('vqburst-'));
  const args = ['--root', root, ...(v.pool === undefined ? [] : ['--shim-pool', v.pool])];
  const child = cleanup.child(spawn(join(dist, 'bin', 'virtqemud.js'), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...v.env } }));
  const cg = cgroup(v.name);
  cg?.add(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const { line } = await firstLine(child);
  child.stdout.resume();
  if (!JSON.parse(line).ok) throw new Error(`virtqemud ${v.name}: ${line}\n${stderr}`);
  const sockets = daemonSockets(rootLayout(root));
  const client = async (which = 'rw') => {
    const rpc = await RpcClient.connect(sockets[which], { clock, defaultTimeoutMs: 600_000 });
    return { rpc, call: (proc, a = {}) => rpc.call(which === 'admin' ? 'admin' : 'virtq', proc, a) };
  };
  const admin = await client('admin');
  if (v.workers !== undefined) await admin.call('setLimits', { workerConcurrency: v.workers });
  const rw = await client();
  const names = Array.from({ length: N }, (_, i) => `b${String(i).padStart(2, '0')}`);
  for (const name of names) await rw.call('define', { definition: idleDefinition(name) });
  return { ...v, root, child, client, rw, names, cg };
}

/** A floor variant: a root for raw QEMUs' sockets and logs, a console listener, the argv template. */
async function startRaw(v, template) {
  const root = cleanup.root(tmpRoot('vqburst-'));
  const cg = cgroup(v.name);
  const con = join(root, 'con.sock');
  const conServer = createServer((sock) => { sock.on('error', () => undefined); sock.resume(); });
  await new Promise((r) => conServer.listen(con, r));
  const tmpl = shimArgv(template.root, template.names[0]);
  const shimBin = join(template.dist, 'bin', 'virtq-shim.js');
  // The shim's shebang: `env -S VARS node FLAGS`; --help then evaluates the bundle and exits.
  const shebang = readFileSync(shimBin, 'utf8').split('\n')[0].replace(/^#!\/usr\/bin\/env -S /, '').split(' ');
  return { ...v, root, cg, con, conServer, tmpl, nodeCmd: [...shebang, shimBin, '--help'], child: undefined };
}

/** Spawns `argv` inside cgroup `cg` from its first instruction (sh joins it, then execs). */
function spawnIn(cg, argv, opts) {
  if (cg === undefined) return spawn(argv[0], argv.slice(1), opts);
  return spawn('/bin/sh', ['-c', `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`, 'sh', ...argv], opts);
}

async function rawBurst(s, round) {
  const cg0 = s.cg?.usageMs() ?? NaN;
  const done = new Array(N).fill(undefined);
  const t0 = now();
  const vms = await Promise.all(Array.from({ length: N }, async (_, i) => {
    const name = `raw${round + 1}-${i}`;
    const qmp = join(s.root, `${name}.qmp`);
    const argv = rewriteArgv(s.tmpl.argv, s.tmpl.from, { name, console: s.con }, { qmpServer: qmp });
    const vm = await burstVm({ argv, qmp, nodeCmd: s.node ? s.nodeCmd : undefined, t0, cleanup, spawnArgv: (a, o) => spawnIn(s.cg, a, o) });
    done[i] = now() - t0;
    return vm;
  }));
  const wall = now() - t0;
  const cgroupCpu = (s.cg?.usageMs() ?? NaN) - cg0;
  const qemuCpu = vms.reduce((a, v) => a + (cpuMs(v.child.pid) || 0), 0);
  for (const v of vms) { v.q.close(); v.child.kill('SIGKILL'); }
  await Promise.all(vms.map((v) => exitOf(v.child)));
  const order = [...done].sort((a, b) => a - b);
  return {
    wall, vqd: 0, shimCpu: s.node ? cgroupCpu - qemuCpu : 0, qemuCpu, total: cgroupCpu, cgroupCpu, maxStarting: s.node ? N : 0,
    first: order[0], p10: order[Math.floor(N / 10) - 1], p50: order[Math.floor(N / 2) - 1], order,
  };
}

async function burst(s, round) {
  if (s.raw) return rawBurst(s, round);
  const clients = await Promise.all(s.names.map(() => s.client()));
  const before = processesOf(s.root);
  const poolCpu0 = before.shims.reduce((a, p) => a + (cpuMs(p) || 0), 0);
  const vqd0 = cpuMs(s.child.pid);
  for (const p of [...before.shims, ...before.qemus]) s.cg?.add(p);
  const cg0 = s.cg?.usageMs() ?? NaN;
  const done = new Array(N).fill(undefined);
  const samples = [];
  const t0 = now();
  const up0 = uptimeMs() - t0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const p = processesOf(s.root);
      samples.push({ t: now() - t0, shims: p.shims.length, qemus: p.qemus.length, returned: done.filter((x) => x !== undefined).length });
      await sleep(50);
    }
  })();
  await Promise.all(clients.map(async (c, i) => {
    const row = await c.call('start', { name: s.names[i] });
    if (row.state !== 'running') throw new Error(`${s.names[i]}: ${row.state}`);
    done[i] = now() - t0;
  }));
  const wall = now() - t0;
  sampling = false;
  await sampler;
  const cgroupCpu = (s.cg?.usageMs() ?? NaN) - cg0;
  const after = processesOf(s.root);
  const vqd = cpuMs(s.child.pid) - vqd0;
  const shimCpu = after.shims.reduce((a, p) => a + (cpuMs(p) || 0), 0) - poolCpu0;
  const qemuCpu = after.qemus.reduce((a, p) => a + (cpuMs(p) || 0), 0);
  const shimStarts = after.shims.map((p) => { try { return statOf(p).startMs - up0; } catch { return NaN; } }).filter((x) => x >= -50);
  // "Starting": shims alive minus VMs whose start returned (an idle pool shim counts too).
  const maxStarting = Math.max(...samples.map((x) => x.shims - x.returned));
  const order = [...done].sort((a, b) => a - b);
  await Promise.all(clients.map((c, i) => c.call('destroy', { name: s.names[i] })));
  for (const c of clients) c.rpc.close();
  for (let i = 0; i < 400; i++) {
    const { domains } = await s.rw.call('listDomains', {});
    if (domains.every((d) => d.state === 'shutoff' && d.shimPid === undefined)) break;
    await sleep(25);
  }
  return {
    wall, vqd, shimCpu, qemuCpu, total: vqd + shimCpu + qemuCpu, cgroupCpu, maxStarting,
    first: order[0], p10: order[Math.floor(N / 10) - 1], p50: order[Math.floor(N / 2) - 1],
    shimsSpawnedBy50pct: shimStarts.filter((x) => x <= order[Math.floor(N / 2) - 1]).length,
    order,
  };
}

const facts = machineFacts();
log(`burst: ${N} starts, ${ROUNDS} rounds, variants ${specs.join(' | ')}; ${facts.cpu ?? ''}`);
const variants = [];
for (const spec of specs.map(parse).sort((a, b) => Number(a.raw) - Number(b.raw))) {
  const template = variants.find((x) => !x.raw);
  if (spec.raw && template === undefined) throw new Error('a raw variant needs a virtq variant (its argv template)');
  if (spec.raw && template.argvReady !== true) {
    // One start and destroy: the shim logs its QEMU argv ("spawning qemu" in log/NAME.log).
    await template.rw.call('start', { name: template.names[0] });
    await template.rw.call('destroy', { name: template.names[0] });
    template.argvReady = true;
  }
  variants.push(spec.raw ? await startRaw(spec, template) : await startVariant(spec));
}
const rows = Object.fromEntries(variants.map((v) => [v.name, []]));
try {
  for (let r = -1; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const s of order) {
      await sleep(PAUSE_MS);
      const load = loadavg();
      const b = await burst(s, r);
      if (r >= 0) rows[s.name].push({ ...b, load });
      log(`  round ${r} ${s.name}: wall ${fmt(b.wall)} ms (first ${fmt(b.first)}, 10% ${fmt(b.p10)}, 50% ${fmt(b.p50)}); CPU ms virtqemud ${fmt(b.vqd)} shims ${fmt(b.shimCpu)} QEMUs ${fmt(b.qemuCpu)} total ${fmt(b.total)}, cgroup ${fmt(b.cgroupCpu)}; max starting ${b.maxStarting}`);
    }
  }
} finally {
  for (const s of variants) {
    s.conServer?.close();
    if (s.child !== undefined) { s.child.kill('SIGKILL'); await exitOf(s.child); }
    await cleanup.drop(s.root);
    await s.cg?.remove();
  }
}
const med = (list, k) => median(list.map((x) => x[k]));
console.log(`\n| variant | rounds | wall p50 (max) | first / 10% / 50% running | CPU ms: virtqemud | shims | QEMUs | the three (per start) | cgroup: all processes (per start) | max shims starting |`);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const [name, list] of Object.entries(rows)) {
  const walls = Float64Array.from(list.map((x) => x.wall)).sort();
  console.log(`| ${name} | ${list.length} | ${fmt(med(list, 'wall'))} (${fmt(pct(walls, 100))}) | ${fmt(med(list, 'first'))} / ${fmt(med(list, 'p10'))} / ${fmt(med(list, 'p50'))} | ${fmt(med(list, 'vqd'))} | ${fmt(med(list, 'shimCpu'))} | ${fmt(med(list, 'qemuCpu'))} | ${fmt(med(list, 'total'))} (${fmt(med(list, 'total') / N)}) | ${fmt(med(list, 'cgroupCpu'))} (${fmt(med(list, 'cgroupCpu') / N)}) | ${med(list, 'maxStarting')} |`);
}
console.log(JSON.stringify({ facts, rows: Object.fromEntries(Object.entries(rows).map(([k, l]) => [k, l.map(({ order, ...x }) => x)])) }));
