#!/usr/bin/env node
// Load benchmark (issue #8): N clients × M calls each, mixed reads and writes, against virtqemud's
// read-write socket (per-VM calls forwarded to the shims) and against one shim's socket directly.
// Real shims, real QEMU: the VMs are the idle guest (multiboot `cli; hlt`, 32 MiB, TCG), running.
//
//   virtqemud  80 % reads: getState 30 %, getInfo 25 %, listDomains 25 % (VMs picked at random);
//              20 % writes, in pairs: suspend + resume of one of the VMs (a VM is held by one
//              client for the pair, so a suspend never meets a paused VM), or define + undefine
//              of the client's own scratch name when every VM is held
//   shim       80 % reads: getState 40 %, getInfo 30 %, getDefinition 10 % of its VM;
//              20 % writes: suspend + resume pairs of its one VM, one pair at a time (a client
//              waits for the VM; the wait is reported, not counted in the calls' latency)
//   limits     deliberately past the limits, on both targets: maxInflightPerClient + 64 calls
//              pipelined on one connection (the excess must fail with TOO_MANY_CALLS, the rest
//              succeed), and maxClients lowered through the admin socket with 4 connections too
//              many (those fail with TOO_MANY_CLIENTS); the limits are restored after.
// Any other error fails the run. Each phase stops at its share of --time-limit (default 110 s).
//
//   node bench/load/run.mjs [--clients 32] [--calls 2000] [--vms 8] [--write-pct 20]
//                           [--targets virtqemud,shim] [--no-limits] [--seed 1]
//                           [--time-limit 110] [--dist DIR] [--json FILE]
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cleanupRegistry, cpuMs, firstLine, fmt, idleDefinition, loadavg, machineFacts, now, options, sleep, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';

const o = options();
const CLIENTS = o.num('clients', 32);
const CALLS = o.num('calls', 2000);
const VMS = o.num('vms', 8);
const WRITE_PCT = o.num('write-pct', 20);
const TARGETS = o.get('targets', 'virtqemud,shim').split(',');
const LIMITS = !o.has('no-limits');
const TIME_LIMIT_S = o.num('time-limit', 110);
const JSON_OUT = o.get('json');
let seed = o.num('seed', 1);

const started = now();
const cleanup = cleanupRegistry();
const facts = { ...machineFacts(), loadBefore: loadavg() };
const DIST = await snapshotDist('load', o.get('dist'));
const { RpcClient, VirtqError, systemClock, daemonSockets, rootLayout } = await import(join(DIST, 'lib', 'protocol', 'index.js'));
const clock = systemClock();
const log = (...a) => console.error(`[${((now() - started) / 1000).toFixed(1)}s load ${loadavg()}]`, ...a);
const R = cleanup.root(tmpRoot('vqload-'));
const SOCKS = daemonSockets(rootLayout(R));

/** xorshift32: the same call sequence for the same --seed. */
function rand() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 2 ** 32;
}

const connect = (socket) => RpcClient.connect(socket, { clock, defaultTimeoutMs: 60_000 });

// ---- setup: virtqemud and running idle VMs -------------------------------------------------------

const daemon = cleanup.child(spawn(join(DIST, 'bin', 'virtqemud.js'), ['--root', R], { stdio: ['ignore', 'pipe', 'pipe'] }));
daemon.stderr.resume();
await firstLine(daemon);
daemon.stdout.resume();
const admin = await connect(SOCKS.admin);
const setup = await connect(SOCKS.rw);
const VM_NAMES = Array.from({ length: VMS }, (_, i) => `load${i}`);
log(`setup: ${VMS} running idle VMs through virtqemud`);
const vmRows = [];
for (const name of VM_NAMES) {
  const row = await setup.call('virtq', 'create', { definition: idleDefinition(name) });
  if (row.state !== 'running') throw new Error(`${name}: created ${row.state}`);
  vmRows.push(row);
}

// ---- the generator ------------------------------------------------------------------------------

/** A lock per VM: a suspend/resume pair holds its VM, so no suspend ever meets a paused VM. */
class VmLocks {
  constructor(names) { this.free = new Set(names); this.waiters = []; }
  tryTake() {
    const i = Math.floor(rand() * this.free.size);
    const name = [...this.free][i];
    if (name !== undefined) this.free.delete(name);
    return name;
  }
  take() {
    const n = this.tryTake();
    return n !== undefined ? Promise.resolve(n) : new Promise((r) => this.waiters.push(r));
  }
  give(name) {
    const w = this.waiters.shift();
    if (w !== undefined) w(name); else this.free.add(name);
  }
}

/**
 * One phase: CLIENTS connections to `socket`, CALLS calls each, `pick` choosing the next step.
 * Returns per-kind latencies (ms), errors by code, wall time and the servers' CPU.
 */
async function phase(label, socket, steps, serverPids, budgetMs) {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect(socket)));
  const lat = {};
  const errors = {};
  const waits = [];
  let calls = 0;
  let stoppedEarly = false;
  const deadline = now() + budgetMs;
  const record = (kind, ms) => { (lat[kind] ??= []).push(ms); calls++; };
  const timed = async (c, kind, proc, args, check) => {
    const t = now();
    try {
      const res = await c.call('virtq', proc, args);
      record(kind, now() - t);
      if (check !== undefined) check(res);
      return res;
    } catch (err) {
      const e = VirtqError.from(err);
      errors[e.code] = (errors[e.code] ?? 0) + 1;
      throw new Error(`${label} ${kind}: ${e.code}: ${e.message}`);
    }
  };
  const cpu0 = serverPids.map(cpuMs);
  const t0 = now();
  await Promise.all(clients.map(async (c, ci) => {
    let done = 0;
    while (done < CALLS) {
      if (now() > deadline) { stoppedEarly = true; return; }
      done += await steps(c, ci, timed, waits);
    }
  }));
  const wallMs = now() - t0;
  const cpu = serverPids.map((p, i) => cpuMs(p) - cpu0[i]);
  for (const c of clients) c.close();
  const kinds = Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, { ...summarize(v), perSec: v.length / (wallMs / 1000) }]));
  return { label, clients: CLIENTS, callsPerClient: CALLS, calls, wallMs, perSec: calls / (wallMs / 1000), kinds, errors, stoppedEarly, serverCpuMs: cpu, serverCpuUsPerCall: cpu.map((x) => (x * 1000) / calls), waits: waits.length > 0 ? summarize(waits) : undefined };
}

// Share of steps that are write pairs, so that writes are WRITE_PCT % of calls: 2q / (1 + q) = w.
const w = WRITE_PCT / 100;
const PAIR_P = w / (2 - w);

function virtqemudSteps() {
  const locks = new VmLocks(VM_NAMES);
  const state = new Map(VM_NAMES.map((n) => [n, 'running']));
  const vm = () => VM_NAMES[Math.floor(rand() * VM_NAMES.length)];
  return async (c, ci, timed) => {
    const x = rand();
    if (x >= PAIR_P) {
      const r = (x - PAIR_P) / (1 - PAIR_P);
      if (r < 0.375) await timed(c, 'getState', 'getState', { name: vm() });
      else if (r < 0.6875) await timed(c, 'getInfo', 'getInfo', { name: vm() });
      else await timed(c, 'listDomains', 'listDomains', {}, (res) => { if (res.domains.length < VMS) throw new Error(`listDomains: ${res.domains.length} rows`); });
      return 1;
    }
    const name = rand() < 0.5 ? locks.tryTake() : undefined;
    if (name !== undefined) {
      try {
        if (state.get(name) !== 'running') throw new Error(`generator: ${name} is ${state.get(name)}`);
        await timed(c, 'suspend', 'suspend', { name }, (res) => { if (res.state !== 'paused') throw new Error(`suspend → ${res.state}`); });
        state.set(name, 'paused');
        await timed(c, 'resume', 'resume', { name }, (res) => { if (res.state !== 'running') throw new Error(`resume → ${res.state}`); });
        state.set(name, 'running');
      } finally {
        locks.give(name);
      }
      return 2;
    }
    const scratch = `scratch${ci}`;
    await timed(c, 'define', 'define', { definition: idleDefinition(scratch) });
    await timed(c, 'undefine', 'undefine', { name: scratch });
    return 2;
  };
}

function shimSteps(name) {
  const locks = new VmLocks([name]);
  return async (c, _ci, timed, waits) => {
    const x = rand();
    if (x >= PAIR_P) {
      const r = (x - PAIR_P) / (1 - PAIR_P);
      if (r < 0.5) await timed(c, 'getState', 'getState', { name });
      else if (r < 0.875) await timed(c, 'getInfo', 'getInfo', { name });
      else await timed(c, 'getDefinition', 'getDefinition', { name });
      return 1;
    }
    const t = now();
    await locks.take();
    waits.push(now() - t);
    try {
      await timed(c, 'suspend', 'suspend', { name }, (res) => { if (res.state !== 'paused') throw new Error(`suspend → ${res.state}`); });
      await timed(c, 'resume', 'resume', { name }, (res) => { if (res.state !== 'running') throw new Error(`resume → ${res.state}`); });
    } finally {
      locks.give(name);
    }
    return 2;
  };
}

// ---- limits: past them on purpose -----------------------------------------------------------------

/** Pipelines maxInflight + 64 getState calls on one connection: the excess fails with TOO_MANY_CALLS. */
async function tooManyCalls(socket, adminSocket, name) {
  const adm = await connect(adminSocket);
  const { maxInflightPerClient } = await adm.call('admin', 'getLimits', {});
  const c = await connect(socket);
  const n = maxInflightPerClient + 64;
  const res = await Promise.allSettled(Array.from({ length: n }, () => c.call('virtq', 'getState', { name })));
  c.close();
  adm.close();
  const codes = {};
  for (const r of res) {
    const k = r.status === 'fulfilled' ? 'OK' : VirtqError.from(r.reason).code;
    codes[k] = (codes[k] ?? 0) + 1;
  }
  return { limit: maxInflightPerClient, sent: n, codes };
}

/** Lowers maxClients to (clients now + 8), connects 12: the last 4 fail with TOO_MANY_CLIENTS. */
async function tooManyClients(socket, adminSocket, name) {
  const adm = await connect(adminSocket);
  const before = await adm.call('admin', 'getLimits', {});
  await sleep(300); // the phase's connections, closed just now, are gone on the server's side too
  const { clients } = await adm.call('admin', 'listClients', {});
  const present = clients.filter((x) => x.socket !== 'admin').length;
  const cap = present + 8;
  await adm.call('admin', 'setLimits', { maxClients: cap });
  const conns = [];
  const codes = {};
  try {
    for (let i = 0; i < 12; i++) {
      const c = await connect(socket);
      conns.push(c);
      try {
        await c.call('virtq', 'getState', { name });
        codes.OK = (codes.OK ?? 0) + 1;
      } catch (err) {
        const k = VirtqError.from(err).code;
        codes[k] = (codes[k] ?? 0) + 1;
      }
    }
  } finally {
    for (const c of conns) c.close();
    await adm.call('admin', 'setLimits', { maxClients: before.maxClients });
    adm.close();
  }
  return { present, cap, opened: 12, codes };
}

// ---- run -----------------------------------------------------------------------------------------

const results = { facts, clients: CLIENTS, callsPerClient: CALLS, vms: VMS, writePct: WRITE_PCT, phases: [], limits: [] };
const shimRow = vmRows[0];
const shimSocks = { rw: shimRow.shimSocket, admin: shimRow.shimSocket.replace(/\.sock$/, '-admin.sock') };
let failure;
try {
  const budget = (TIME_LIMIT_S * 1000 - (now() - started) - 10_000) / TARGETS.length;
  for (const target of TARGETS) {
    log(`${target}: ${CLIENTS} clients × ${CALLS} calls, ${WRITE_PCT} % writes`);
    const p = target === 'virtqemud'
      ? await phase('virtqemud', SOCKS.rw, virtqemudSteps(), [daemon.pid, ...vmRows.map((r) => r.shimPid)], budget)
      : await phase('shim', shimSocks.rw, shimSteps(shimRow.name), [shimRow.shimPid], budget);
    results.phases.push(p);
    log(`  ${p.calls} calls in ${fmt(p.wallMs / 1000, 2)} s: ${fmt(p.perSec)} calls/s${p.stoppedEarly ? ' (stopped at the time limit)' : ''}`);
  }
  if (LIMITS) {
    log('limits: past maxInflightPerClient and maxClients on purpose');
    for (const target of TARGETS) {
      const [sock, adm] = target === 'virtqemud' ? [SOCKS.rw, SOCKS.admin] : [shimSocks.rw, shimSocks.admin];
      results.limits.push({ target, calls: await tooManyCalls(sock, adm, shimRow.name), clients: await tooManyClients(sock, adm, shimRow.name) });
    }
  }
  // The VMs must all be running again, and the scratch names gone.
  const { domains } = await setup.call('virtq', 'listDomains', {});
  const bad = domains.filter((d) => (VM_NAMES.includes(d.name) && d.state !== 'running') || d.name.startsWith('scratch'));
  if (bad.length > 0) throw new Error(`after the run: ${bad.map((d) => `${d.name} ${d.state}`).join(', ')}`);
} catch (err) {
  failure = err;
  console.error(err);
} finally {
  setup.close();
  admin.close();
  cleanup.run();
}
facts.loadAfter = loadavg();
results.seconds = (now() - started) / 1000;

// ---- report --------------------------------------------------------------------------------------

const lines = [];
lines.push(`machine: ${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, kernel ${facts.kernel}, ${facts.qemu}, node ${facts.node}`);
lines.push(`load average before ${facts.loadBefore}, after ${facts.loadAfter}; ${results.seconds.toFixed(0)} s`);
for (const p of results.phases) {
  lines.push('', `### ${p.label}: ${p.clients} clients × ${p.callsPerClient} calls${p.label === 'virtqemud' ? `, ${VMS} VMs` : ', one VM'} — ${p.calls} calls in ${fmt(p.wallMs / 1000, 2)} s, **${fmt(p.perSec)} calls/s**${p.stoppedEarly ? ' (stopped at the time limit)' : ''}`, '');
  const order = ['getState', 'getInfo', 'getDefinition', 'listDomains', 'suspend', 'resume', 'define', 'undefine'];
  lines.push(table(['call', 'calls', 'share', 'calls/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], order.filter((k) => p.kinds[k] !== undefined).map((k) => {
    const s = p.kinds[k];
    return [k, String(s.n), `${fmt((100 * s.n) / p.calls)} %`, fmt(s.perSec), fmt(s.p50, 2), fmt(s.p90, 2), fmt(s.p99, 2), fmt(s.max, 1)];
  })));
  const errs = Object.entries(p.errors);
  lines.push('', `errors: ${errs.length === 0 ? 'none' : errs.map(([k, v]) => `${k} × ${v}`).join(', ')}; server CPU ${p.serverCpuUsPerCall.map((x) => fmt(x)).join(' + ')} µs per call (${p.label === 'virtqemud' ? 'virtqemud + the shims' : 'the shim'})${p.waits === undefined ? '' : `; wait for the VM before a suspend/resume pair: p50 ${fmt(p.waits.p50, 2)} ms, max ${fmt(p.waits.max)} ms`}.`);
}
if (results.limits.length > 0) {
  lines.push('', '### Past the limits on purpose', '');
  lines.push(table(['target', 'one connection, pipelined', 'results', 'maxClients lowered', 'results'], results.limits.map((l) => [
    l.target, `${l.calls.sent} calls, limit ${l.calls.limit} in flight`, Object.entries(l.calls.codes).map(([k, v]) => `${k} ${v}`).join(', '),
    `${l.clients.cap} (${l.clients.present} connected), ${l.clients.opened} more opened`, Object.entries(l.clients.codes).map(([k, v]) => `${k} ${v}`).join(', '),
  ])));
  for (const l of results.limits) {
    const okCalls = (l.calls.codes.TOO_MANY_CALLS ?? 0) > 0 && Object.keys(l.calls.codes).every((k) => k === 'OK' || k === 'TOO_MANY_CALLS');
    const okClients = l.clients.codes.TOO_MANY_CLIENTS === l.clients.opened - (l.clients.cap - l.clients.present) && Object.keys(l.clients.codes).every((k) => k === 'OK' || k === 'TOO_MANY_CLIENTS');
    if (!okCalls || !okClients) failure ??= new Error(`${l.target}: unexpected results past the limits`);
  }
}
if (failure !== undefined) lines.push('', `FAILED: ${failure.message}`);
console.log(lines.join('\n'));
if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, `${JSON.stringify(results, null, 2)}\n`);
process.exit(failure === undefined ? 0 : 1);
