#!/usr/bin/env node
// RPC round-trip and throughput benchmark (issue #2). Bundles the four bench processes with
// esbuild (never tsx), then for each transport (bare node:net + length prefix + cbor-x echo,
// and virtq's RpcClient -> RpcServer) and each placement (unpinned; both pinned to CPU 0)
// starts a server process and two client processes: one for sequential latency, one for
// throughput with 64 calls in flight. Rounds are interleaved so drifting machine load hits every
// configuration alike; each figure printed is the median over rounds.
//
//   node bench/rpc/run.mjs [--rounds 3] [--calls 20000] [--warm 5000] [--ms 1500] [--split]
//                          [--server-flags '<node flags>'] [--client-flags '<node flags>'] [--json out.json]
import { spawn, spawnSync } from 'node:child_process';
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
const WARM = Number(opt('warm', 5000));
const TPUT_MS = Number(opt('ms', 1500));
const DEPTH = 64;
const SPLIT = argv.includes('--split');
const JSON_OUT = opt('json', undefined);
// Extra node flags for both servers, e.g. the shim's: --server-flags '--max-semi-space-size=1 --max-old-space-size=64 --v8-pool-size=1'
const SERVER_FLAGS = (opt('server-flags', '') ?? '').split(' ').filter((f) => f !== '');
const CLIENT_FLAGS = (opt('client-flags', '') ?? '').split(' ').filter((f) => f !== '');

const started = performance.now();

// ---- build -----------------------------------------------------------------------------------
const entries = ['bare-server', 'bare-client', 'virtq-server', 'virtq-client'];
const esbuild = join(repo, 'node_modules', '.bin', 'esbuild');
const built = spawnSync(esbuild, [
  ...entries.map((e) => join(here, `${e}.ts`)),
  '--bundle', '--platform=node', '--format=esm', '--target=node20', '--packages=external',
  '--out-extension:.js=.mjs', `--outdir=${out}`, '--log-level=warning',
], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);

// ---- machine facts ---------------------------------------------------------------------------
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');
const facts = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  nproc: os.availableParallelism(),
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  kernel: `${os.type()} ${os.release()}`,
  loadBefore: loadavg(),
  loadAfter: '',
  date: new Date().toISOString(),
};

// ---- processes -------------------------------------------------------------------------------
const placements = [
  { name: 'unpinned', server: [], client: [] },
  { name: 'pinned', server: ['taskset', '-c', '0'], client: ['taskset', '-c', '0'] },
  ...(SPLIT ? [{ name: 'split', server: ['taskset', '-c', '0'], client: ['taskset', '-c', '1'] }] : []),
];
const impls = ['bare', 'virtq'];

function command(prefix, script, args, flags = []) {
  const full = [...prefix, process.execPath, ...flags, join(out, `${script}.mjs`), ...args];
  return [full[0], full.slice(1)];
}

async function startServer(impl, placement, socket) {
  const [cmd, args] = command(placement.server, `${impl}-server`, ['--socket', socket], SERVER_FLAGS);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], cwd: repo });
  const lines = createInterface({ input: child.stdout });
  const queue = [];
  const waiters = [];
  lines.on('line', (l) => (waiters.length > 0 ? waiters.shift()(l) : queue.push(l)));
  const next = () => new Promise((res, rej) => {
    if (queue.length > 0) return res(queue.shift());
    const timer = setTimeout(() => rej(new Error(`${impl} server did not answer`)), 10_000);
    waiters.push((l) => { clearTimeout(timer); res(l); });
  });
  const ready = await next();
  if (ready !== 'ready') throw new Error(`${impl} server said ${ready}`);
  return {
    async cpuUs() {
      child.stdin.write('cpu\n');
      return JSON.parse(await next()).cpuUs;
    },
    stop: () => new Promise((res) => { child.once('exit', res); child.stdin.end(); }),
  };
}

function runClient(impl, placement, socket, phaseArgs) {
  const [cmd, args] = command(placement.client, `${impl}-client`, ['--socket', socket, ...phaseArgs], CLIENT_FLAGS);
  const r = spawnSync(cmd, args, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${impl} client failed (${r.status ?? r.signal})`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function measure(impl, placement, dir, round) {
  const socket = join(dir, `${impl}-${placement.name}-${round}.sock`);
  const server = await startServer(impl, placement, socket);
  try {
    const seq = runClient(impl, placement, socket, ['--mode', 'seq', '--warm', String(WARM), '--calls', String(CALLS)]);
    const cpu0 = await server.cpuUs();
    const tput = runClient(impl, placement, socket, ['--mode', 'tput', '--depth', String(DEPTH), '--ms', String(TPUT_MS)]);
    const cpu1 = await server.cpuUs();
    // Server CPU over the whole throughput client (its 300 ms warm-up included) per call served:
    // an upper bound, since calls completed during warm-up are not counted.
    return { ...seq, perSec: tput.perSec, clientCpuUsPerCall: tput.clientCpuUsPerCall, serverCpuUsPerCall: (cpu1 - cpu0) / tput.calls, cborNative: seq.cborNative };
  } finally {
    await server.stop();
  }
}

const dir = mkdtempSync(join(os.tmpdir(), 'virtq-bench-'));
const results = {};
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const placement of placements) {
      for (const impl of impls) {
        const key = `${impl}/${placement.name}`;
        const r = await measure(impl, placement, dir, round);
        (results[key] ??= []).push(r);
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${key.padEnd(15)} p50 ${r.p50.toFixed(1)} µs  p99 ${r.p99.toFixed(1)}  p99.9 ${r.p999.toFixed(1)}  ${Math.round(r.perSec)} calls/s  load ${loadavg()}\n`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
facts.loadAfter = loadavg();

// ---- report ----------------------------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fields = ['p50', 'p90', 'p99', 'p999', 'mean', 'perSec', 'serverCpuUsPerCall', 'clientCpuUsPerCall'];
const summary = {};
for (const [key, runs] of Object.entries(results)) {
  summary[key] = Object.fromEntries(fields.map((f) => [f, median(runs.map((r) => r[f]))]));
}

const us = (v) => v.toFixed(1);
const row = (cells) => `| ${cells.join(' | ')} |`;
const lines = [];
lines.push(`Machine: ${facts.cpu}, nproc ${facts.nproc}, ${facts.memGiB} GiB, node ${facts.node}, ${facts.kernel}`);
lines.push(`Load average (1/5/15 min): before ${facts.loadBefore}, after ${facts.loadAfter}. cbor-x native acceleration: ${results['virtq/unpinned']?.[0]?.cborNative}`);
if (SERVER_FLAGS.length > 0) lines.push(`Server node flags: ${SERVER_FLAGS.join(' ')}`);
if (CLIENT_FLAGS.length > 0) lines.push(`Client node flags: ${CLIENT_FLAGS.join(' ')}`);
lines.push(`Method: ${ROUNDS} interleaved rounds; per round and configuration, a fresh server process, a sequential client (${WARM} warm-up + ${CALLS} timed calls) and a throughput client (300 ms warm-up + ${TPUT_MS} ms with ${DEPTH} in flight). Figures: median over rounds.`);
lines.push('');
lines.push(row(['transport', 'placement', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'mean µs', `calls/s, ${DEPTH} in flight`, 'server CPU µs/call', 'client CPU µs/call']));
lines.push(row(Array(10).fill('---')));
for (const placement of placements) {
  for (const impl of impls) {
    const s = summary[`${impl}/${placement.name}`];
    lines.push(row([impl === 'bare' ? 'bare node:net + len prefix + cbor-x' : 'virtq RpcClient → RpcServer', placement.name, us(s.p50), us(s.p90), us(s.p99), us(s.p999), us(s.mean), Math.round(s.perSec).toLocaleString('en-US'), us(s.serverCpuUsPerCall), us(s.clientCpuUsPerCall)]));
  }
}
lines.push('');
lines.push(row(['ratio virtq / bare', 'p50', 'p99', 'p99.9', 'calls/s', 'server CPU/call']));
lines.push(row(Array(6).fill('---')));
const ratios = {};
for (const placement of placements) {
  const b = summary[`bare/${placement.name}`];
  const v = summary[`virtq/${placement.name}`];
  const r = { p50: v.p50 / b.p50, p99: v.p99 / b.p99, p999: v.p999 / b.p999, perSec: v.perSec / b.perSec, serverCpu: v.serverCpuUsPerCall / b.serverCpuUsPerCall };
  ratios[placement.name] = r;
  lines.push(row([placement.name, `${r.p50.toFixed(2)}×`, `${r.p99.toFixed(2)}×`, `${r.p999.toFixed(2)}×`, `${r.perSec.toFixed(2)}×`, `${r.serverCpu.toFixed(2)}×`]));
}
lines.push('');
const vp = summary['virtq/pinned'];
const vu = summary['virtq/unpinned'];
const verdict = (ok) => (ok ? 'met' : 'MISSED');
lines.push('Targets (issue #2):');
lines.push(`- pinned p50 ≤ 30 µs: ${us(vp.p50)} µs — ${verdict(vp.p50 <= 30)}`);
lines.push(`- unpinned p50 ≤ 80 µs: ${us(vu.p50)} µs — ${verdict(vu.p50 <= 80)}`);
lines.push(`- ≥ 100,000 calls/s with 64 in flight, unpinned: ${Math.round(vu.perSec).toLocaleString('en-US')} — ${verdict(vu.perSec >= 100_000)}`);
for (const placement of placements) {
  lines.push(`- p50 ≤ 1.5× bare echo, ${placement.name}: ${ratios[placement.name].p50.toFixed(2)}× — ${verdict(ratios[placement.name].p50 <= 1.5)}`);
}
lines.push('');
lines.push('Per round (p50 µs / calls/s):');
for (const [key, runs] of Object.entries(results)) {
  lines.push(`- ${key}: ${runs.map((r) => `${us(r.p50)} / ${Math.round(r.perSec)}`).join(', ')}`);
}
lines.push(`Elapsed: ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(lines.join('\n'));
if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, `${JSON.stringify({ facts, rounds: ROUNDS, calls: CALLS, warm: WARM, tputMs: TPUT_MS, depth: DEPTH, results, summary, ratios }, null, 2)}\n`);
