#!/usr/bin/env node
// Idle wake-ups and CPU of virtqemud and virtstoraged, this build against a baseline, in the same
// windows (issue 15, session 17: the event-loop lag gauges' sampler). Each round starts both
// daemons of both builds at once (own roots, rotating the spawn order), times spawn → first
// listDomains, waits for the process metrics to be added (1 s after the sockets open) and settle,
// then reads each daemon's main-thread voluntary context switches (/proc/PID/status) and all
// threads' CPU (schedstat) over the same --seconds window. Then a paused idle VM's create in each
// build, --list-calls listDomains round trips alternating between the builds call by call, the destroys.
//   node bench/virtqemud/idle-wakeups.mjs --baseline DIST [--dist DIR] [--rounds 5] [--seconds 10] [--list-calls 200]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO, cleanupRegistry, cpuMs, firstLine, fmt, idleDefinition, loadavg, now, options, sleep, summarize, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const builds = { this: resolve(o.get('dist', join(REPO, 'dist'))), base: resolve(o.get('baseline', '')) };
if (o.get('baseline') === undefined) throw new Error('--baseline DIST is required');
const ROUNDS = o.num('rounds', 5);
const SECONDS = o.num('seconds', 10);
const LIST_CALLS = o.num('list-calls', 200);
const cleanup = cleanupRegistry();
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(builds.this, 'lib/protocol/index.js'));
const clock = systemClock();

const ctxt = (pid) => Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

/** Starts one build's virtqemud and virtstoraged in a fresh root; resolves when virtqemud listed. */
async function startPair(name) {
  const root = cleanup.root(tmpRoot('vqlag-'));
  const t0 = now();
  const qemud = cleanup.child(spawn(process.execPath, [join(builds[name], 'bin/virtqemud.js'), '--root', root, '--shim-pool', '0'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const storaged = cleanup.child(spawn(process.execPath, [join(builds[name], 'bin/virtstoraged.js'), '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await Promise.all([firstLine(qemud), firstLine(storaged)]);
  const rpc = await RpcClient.connect(daemonSockets(rootLayout(root)).rw, { clock, defaultTimeoutMs: 120_000 });
  await rpc.call('virtq', 'listDomains', {});
  return { name, root, qemud, storaged, rpc, startMs: now() - t0, startCpu: cpuMs(qemud.pid) };
}

const rows = { this: [], base: [] };
const l0 = loadavg();
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? ['this', 'base'] : ['base', 'this'];
  const pairs = [];
  for (const name of order) pairs.push(await startPair(name));
  await sleep(3000);
  const before = pairs.map((p) => ({ qc: ctxt(p.qemud.pid), qu: cpuMs(p.qemud.pid), sc: ctxt(p.storaged.pid), su: cpuMs(p.storaged.pid) }));
  await sleep(SECONDS * 1000);
  const row = {};
  pairs.forEach((p, i) => {
    const b = before[i];
    row[p.name] = { qemudWakes: ctxt(p.qemud.pid) - b.qc, qemudCpu: cpuMs(p.qemud.pid) - b.qu, storagedWakes: ctxt(p.storaged.pid) - b.sc, storagedCpu: cpuMs(p.storaged.pid) - b.su, startMs: p.startMs, startCpu: p.startCpu };
  });
  // A paused VM's create, build by build; then listDomains round trips alternating call by call
  // between the builds (with a VM listed), and each virtqemud's CPU over them; then the destroys.
  for (const p of pairs) {
    const t0 = now();
    await p.rpc.call('virtq', 'create', { definition: idleDefinition(`lag${r}`), paused: true });
    row[p.name].createMs = now() - t0;
  }
  const lists = { this: [], base: [] };
  const listCpu0 = pairs.map((p) => cpuMs(p.qemud.pid));
  for (let i = 0; i < LIST_CALLS; i++) {
    for (const p of i % 2 === 0 ? pairs : [...pairs].reverse()) { const t = now(); await p.rpc.call('virtq', 'listDomains', {}); lists[p.name].push(now() - t); }
  }
  pairs.forEach((p, i) => {
    const s = summarize(lists[p.name]);
    Object.assign(row[p.name], { listP50: s.p50, listP90: s.p90, listCpuUs: ((cpuMs(p.qemud.pid) - listCpu0[i]) / LIST_CALLS) * 1000 });
  });
  for (const p of pairs) await p.rpc.call('virtq', 'destroy', { name: `lag${r}` });
  for (const p of pairs) {
    p.rpc.close();
    await cleanup.drop(p.root);
    rows[p.name].push(row[p.name]);
  }
  console.error(`round ${r + 1}/${ROUNDS}: ${JSON.stringify(row)}`);
}
const l1 = loadavg();
const cols = [['qemudWakes', 'virtqemud wake-ups / window'], ['qemudCpu', 'virtqemud CPU ms / window'], ['storagedWakes', 'virtstoraged wake-ups / window'], ['storagedCpu', 'virtstoraged CPU ms / window'],
  ['startMs', 'both spawned → first listDomains ms'], ['startCpu', 'virtqemud CPU ms to first listing'], ['createMs', 'create (paused idle VM) ms'], ['listP50', `listDomains p50 ms (${LIST_CALLS} calls, alternating)`], ['listP90', 'listDomains p90 ms'], ['listCpuUs', 'virtqemud CPU µs per listDomains']];
console.log(`# idle wake-ups, ${ROUNDS} rounds, ${SECONDS} s windows; load before ${l0}, after ${l1}\nthis: ${builds.this}\nbase: ${builds.base}\n`);
console.log(table(['figure', 'this p50', 'this p90', 'base p50', 'base p90'], cols.map(([k, label]) => {
  const a = summarize(rows.this.map((x) => x[k]));
  const b = summarize(rows.base.map((x) => x[k]));
  return [label, fmt(a.p50), fmt(a.p90), fmt(b.p50), fmt(b.p90)];
})));
cleanup.run();
