#!/usr/bin/env node
// RPC round-trip and throughput benchmark (issue #2). Bundles the four bench processes with
// esbuild (never tsx) and measures two transports with one method:
//   bare   node:net + 4-byte length prefix + cbor-x, no virtq code (bare-server.ts, bare-client.ts)
//   virtq  RpcClient -> RpcServer (role 'shim', the real `virtq` program, stub getState handler)
// Each configuration starts a fresh server process and two client processes: one for sequential
// latency (warm-up, then >= 20,000 timed calls), one for throughput with 64 calls in flight.
// Placements: unpinned (the scheduler decides), pinned (both processes on CPU 0: software cost),
// split (server on CPU 0, client on CPU 1: the cross-CPU wake-up on every call). The "lean" rows
// run both processes with the shim's production V8 flags (scripts/build.mjs). Rounds are
// interleaved so drifting machine load hits every configuration alike; figures are the median
// over rounds. Takes about 80 s.
//
//   node bench/rpc/run.mjs [--rounds 3] [--calls 20000] [--warm 3000] [--ms 1000]
//                          [--no-split] [--no-lean] [--json out.json]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
// Not dist/: `npm run build` starts by deleting it. .cache/ is git-ignored and inside the repo,
// so the bundles' bare imports (cbor-x, typebox) resolve from its node_modules.
const out = join(repo, '.cache', 'bench', 'rpc');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const ROUNDS = Number(opt('rounds', 3));
const CALLS = Number(opt('calls', 20_000));
const WARM = Number(opt('warm', 3000));
const TPUT_MS = Number(opt('ms', 1000));
const TPUT_WARM_MS = 300;
const DEPTH = 64;
const JSON_OUT = opt('json', undefined);
// The shim's flags (scripts/build.mjs); the client side gets the one that matters for GC.
const LEAN_SERVER = ['--max-semi-space-size=1', '--max-old-space-size=64', '--v8-pool-size=1'];
const LEAN_CLIENT = ['--max-semi-space-size=1'];

const started = performance.now();

// ---- build -----------------------------------------------------------------------------------
const entries = ['bare-server', 'bare-client', 'virtq-server', 'virtq-client'];
const built = spawnSync(join(repo, 'node_modules', '.bin', 'esbuild'), [
  ...entries.map((e) => join(here, `${e}.ts`)),
  '--bundle', '--platform=node', '--format=esm', '--target=node20', '--packages=external',
  '--out-extension:.js=.mjs', `--outdir=${out}`, '--log-level=warning',
], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);

// ---- machine facts ---------------------------------------------------------------------------
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');
const busiest = () => {
  try {
    return execFileSync('ps', ['-eo', 'pcpu,comm', '--sort=-pcpu', '--no-headers'], { encoding: 'utf8' })
      .split('\n').slice(0, 3).map((l) => l.trim().replace(/\s+/, '% ')).join(', ');
  } catch {
    return 'unknown';
  }
};
const facts = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  nproc: os.availableParallelism(),
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  kernel: `${os.type()} ${os.release()}`,
  loadBefore: loadavg(),
  busiestBefore: busiest(),
  loadAfter: '',
  date: new Date().toISOString(),
};

// ---- configurations --------------------------------------------------------------------------
const PIN0 = ['taskset', '-c', '0'];
const PIN1 = ['taskset', '-c', '1'];
const placements = {
  unpinned: { server: [], client: [] },
  pinned: { server: PIN0, client: PIN0 },
  split: { server: PIN0, client: PIN1 },
};
const configs = [];
for (const [placement, on] of [['unpinned', true], ['pinned', true], ['split', !argv.includes('--no-split')]]) {
  if (!on) continue;
  for (const impl of ['bare', 'virtq']) configs.push({ impl, placement, flags: 'default', serverFlags: [], clientFlags: [] });
}
if (!argv.includes('--no-lean')) {
  for (const impl of ['bare', 'virtq']) configs.push({ impl, placement: 'pinned', flags: 'lean', serverFlags: LEAN_SERVER, clientFlags: LEAN_CLIENT });
}
const keyOf = (c) => `${c.impl}/${c.placement}/${c.flags}`;

function command(prefix, script, args, flags) {
  const full = [...prefix, process.execPath, ...flags, join(out, `${script}.mjs`), ...args];
  return [full[0], full.slice(1)];
}

async function startServer(c, socket) {
  const [cmd, args] = command(placements[c.placement].server, `${c.impl}-server`, ['--socket', socket], c.serverFlags);
  const env = c.flags === 'lean' ? { ...process.env, UV_THREADPOOL_SIZE: '1' } : process.env;
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], cwd: repo, env });
  const lines = createInterface({ input: child.stdout });
  const queue = [];
  const waiters = [];
  lines.on('line', (l) => (waiters.length > 0 ? waiters.shift()(l) : queue.push(l)));
  const next = () => new Promise((res, rej) => {
    if (queue.length > 0) return res(queue.shift());
    const timer = setTimeout(() => rej(new Error(`${c.impl} server did not answer`)), 10_000);
    waiters.push((l) => { clearTimeout(timer); res(l); });
  });
  const ready = await next();
  if (ready !== 'ready') throw new Error(`${c.impl} server said ${ready}`);
  return {
    async cpuUs() {
      child.stdin.write('cpu\n');
      return JSON.parse(await next()).cpuUs;
    },
    stop: () => new Promise((res) => { child.once('exit', res); child.stdin.end(); }),
  };
}

function runClient(c, socket, phaseArgs) {
  const [cmd, args] = command(placements[c.placement].client, `${c.impl}-client`, ['--socket', socket, ...phaseArgs], c.clientFlags);
  const r = spawnSync(cmd, args, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${c.impl} client failed (${r.status ?? r.signal})`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function measure(c, dir, round) {
  const socket = join(dir, `${c.impl}-${c.placement}-${c.flags}-${round}.sock`);
  const server = await startServer(c, socket);
  try {
    const seq = runClient(c, socket, ['--mode', 'seq', '--warm', String(WARM), '--calls', String(CALLS)]);
    const cpu0 = await server.cpuUs();
    const tput = runClient(c, socket, ['--mode', 'tput', '--depth', String(DEPTH), '--ms', String(TPUT_MS), '--warm-ms', String(TPUT_WARM_MS)]);
    const cpu1 = await server.cpuUs();
    // Server CPU over the whole throughput client divided by the calls it timed: its warm-up
    // calls are included in the CPU, so this overstates by up to ~TPUT_WARM_MS/TPUT_MS, alike
    // for both transports.
    return { ...seq, perSec: tput.perSec, clientCpuUsPerCall: tput.clientCpuUsPerCall, serverCpuUsPerCall: (cpu1 - cpu0) / tput.calls };
  } finally {
    await server.stop();
  }
}

const dir = mkdtempSync(join(os.tmpdir(), 'virtq-bench-'));
const results = {};
let cborNative;
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of configs) {
      const r = await measure(c, dir, round);
      cborNative ??= r.cborNative;
      (results[keyOf(c)] ??= []).push(r);
      process.stderr.write(`round ${round + 1}/${ROUNDS} ${keyOf(c).padEnd(22)} p50 ${r.p50.toFixed(1)} µs  p99 ${r.p99.toFixed(1)}  p99.9 ${r.p999.toFixed(1)}  ${Math.round(r.perSec)} calls/s  load ${loadavg()}\n`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
facts.loadAfter = loadavg();
facts.busiestAfter = busiest();

// ---- report ----------------------------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fields = ['p50', 'p90', 'p99', 'p999', 'mean', 'perSec', 'serverCpuUsPerCall', 'clientCpuUsPerCall'];
const summary = {};
for (const [key, runs] of Object.entries(results)) summary[key] = Object.fromEntries(fields.map((f) => [f, median(runs.map((r) => r[f]))]));

const us = (v) => v.toFixed(1);
const int = (v) => Math.round(v).toLocaleString('en-US');
const row = (cells) => `| ${cells.join(' | ')} |`;
const label = { bare: 'bare node:net + length prefix + cbor-x', virtq: 'virtq RpcClient → RpcServer' };
const lines = [];
lines.push(`Machine: ${facts.cpu}, nproc ${facts.nproc}, ${facts.memGiB} GiB, node ${facts.node}, ${facts.kernel}; cbor-x native acceleration: ${cborNative}`);
lines.push(`Load average (1/5/15 min): before ${facts.loadBefore}, after ${facts.loadAfter}. Busiest processes before: ${facts.busiestBefore}; after: ${facts.busiestAfter}`);
lines.push(`Method: ${ROUNDS} interleaved rounds. Per round and configuration: a fresh server process; a sequential client (${WARM} warm-up + ${CALLS} timed calls); a throughput client (${TPUT_WARM_MS} ms warm-up + ${TPUT_MS} ms with ${DEPTH} calls in flight on one connection). Figures: median over rounds. lean = server ${LEAN_SERVER.join(' ')} UV_THREADPOOL_SIZE=1, client ${LEAN_CLIENT.join(' ')}.`);
lines.push('');
lines.push(row(['transport', 'placement', 'node flags', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'mean µs', `calls/s, ${DEPTH} in flight`, 'server CPU µs/call', 'client CPU µs/call']));
lines.push(row(Array(11).fill('---')));
for (const c of configs) {
  const s = summary[keyOf(c)];
  lines.push(row([label[c.impl], c.placement, c.flags, us(s.p50), us(s.p90), us(s.p99), us(s.p999), us(s.mean), int(s.perSec), us(s.serverCpuUsPerCall), us(s.clientCpuUsPerCall)]));
}
lines.push('');
lines.push(row(['virtq ÷ bare', 'p50', 'p99', 'p99.9', 'calls/s', 'server CPU/call', 'client CPU/call']));
lines.push(row(Array(7).fill('---')));
const ratios = {};
for (const c of configs.filter((x) => x.impl === 'virtq')) {
  const v = summary[keyOf(c)];
  const b = summary[keyOf({ ...c, impl: 'bare' })];
  const r = { p50: v.p50 / b.p50, p99: v.p99 / b.p99, p999: v.p999 / b.p999, perSec: v.perSec / b.perSec, serverCpu: v.serverCpuUsPerCall / b.serverCpuUsPerCall, clientCpu: v.clientCpuUsPerCall / b.clientCpuUsPerCall };
  const k = `${c.placement}/${c.flags}`;
  ratios[k] = r;
  lines.push(row([k, `${r.p50.toFixed(2)}×`, `${r.p99.toFixed(2)}×`, `${r.p999.toFixed(2)}×`, `${r.perSec.toFixed(2)}×`, `${r.serverCpu.toFixed(2)}×`, `${r.clientCpu.toFixed(2)}×`]));
}
lines.push('');
const vp = summary['virtq/pinned/default'];
const vu = summary['virtq/unpinned/default'];
const verdict = (ok) => (ok ? 'met' : 'MISSED');
lines.push('Targets (issue #2), default flags:');
lines.push(`- pinned p50 ≤ 30 µs: ${us(vp.p50)} µs — ${verdict(vp.p50 <= 30)}`);
lines.push(`- unpinned p50 ≤ 80 µs: ${us(vu.p50)} µs — ${verdict(vu.p50 <= 80)}${summary['virtq/split/default'] ? `; forced cross-CPU (split): ${us(summary['virtq/split/default'].p50)} µs — ${verdict(summary['virtq/split/default'].p50 <= 80)}` : ''}`);
lines.push(`- ≥ 100,000 calls/s with ${DEPTH} in flight, unpinned: ${int(vu.perSec)} — ${verdict(vu.perSec >= 100_000)}`);
for (const [k, r] of Object.entries(ratios)) {
  lines.push(`- ≤ 1.5× the bare echo, ${k}: p50 ${r.p50.toFixed(2)}× — ${verdict(r.p50 <= 1.5)}; throughput cost ${(1 / r.perSec).toFixed(2)}× — ${verdict(1 / r.perSec <= 1.5)}`);
}
lines.push('');
lines.push('Per round (p50 µs / calls/s):');
for (const [key, runs] of Object.entries(results)) lines.push(`- ${key}: ${runs.map((r) => `${us(r.p50)} / ${Math.round(r.perSec)}`).join(', ')}`);
lines.push(`Elapsed: ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(lines.join('\n'));
if (JSON_OUT !== undefined) {
  writeFileSync(JSON_OUT, `${JSON.stringify({ facts, cborNative, rounds: ROUNDS, calls: CALLS, warm: WARM, tputMs: TPUT_MS, depth: DEPTH, configs, results, summary, ratios }, null, 2)}\n`);
}
