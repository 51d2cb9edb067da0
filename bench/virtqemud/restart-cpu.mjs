#!/usr/bin/env node
// virtqemud kill -9 + restart → first complete listing, as CPU, for one build against its own shims
// (so builds of older commits can be compared; issue 15 target 4):
//   [CLEAN=1] [PROFILE_ROUNDS=K PROF_DIR=D] node bench/virtqemud/restart-cpu.mjs TREE ROOT N ROUNDS [node flags...]
// ROOT gets N paused VMs if it has none (TREE's virtqemud, --shim-pool 0 where it has it); each round
// kills virtqemud, starts `node FLAGS TREE/dist/bin/virtqemud.js`, lists until all N rows and reads
// its CPU (all threads, schedstat). The first K rounds write --cpu-prof profiles into D. CLEAN=1
// destroys and undefines every VM at the end; without it they stay for the next run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
const [build, root, nStr, roundsStr, ...flags] = process.argv.slice(2);
const N = Number(nStr);
const dist = join(build, 'dist');
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(dist, 'lib', 'protocol', 'index.js'));
const { idleDefinition } = await import(join(build, 'bench', 'lib', 'common.mjs')).catch(() => ({}));
const clock = systemClock();
const cpuMs = (pid) => readdirSync(`/proc/${pid}/task`).reduce((s, t) => { try { return s + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6; } catch { return s; } }, 0);
const sock = () => daemonSockets(rootLayout(root)).rw;
const pidFile = join(root, 'rs-daemon.pid');
const profDir = process.env.PROF_DIR ?? '/tmp/rs-rprof';
mkdirSync(profDir, { recursive: true });
function start(pre) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...pre, join(dist, 'bin', 'virtqemud.js'), '--root', root, ...(readFileSync(join(dist, 'bin', 'virtqemud.js'), 'utf8').includes('--shim-pool N') ? ['--shim-pool', '0'] : [])], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const ready = new Promise((res, rej) => { let b = ''; child.stdout.on('data', (d) => { b += d; if (b.includes('\n')) res(JSON.parse(b.split('\n')[0])); }); child.once('exit', (c) => rej(new Error(`exit ${c}`))); });
  return { child, t0, ready };
}
const exitOf = (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r)));
async function connect(deadline) {
  for (;;) { try { return await RpcClient.connect(sock(), { clock, defaultTimeoutMs: 60_000 }); } catch (e) { if (performance.now() > deadline) throw e; await new Promise((r) => setTimeout(r, 1)); } }
}
let d = start([]);
await d.ready;
{
  const rpc = await connect(performance.now() + 30000);
  const have = (await rpc.call('virtq', 'listDomains', {})).domains.length;
  for (let i = have; i < N; i++) {
    const name = `vm${String(i).padStart(3, '0')}`;
    await rpc.call('virtq', 'create', { definition: idleDefinition(name), paused: true });
  }
  rpc.close();
  await new Promise((r) => setTimeout(r, 2000));
}
const rows = [];
for (let i = 0; i < Number(roundsStr); i++) {
  d.child.kill('SIGKILL'); await exitOf(d.child);
  const prof = i < Number(process.env.PROFILE_ROUNDS ?? 0);
  const n = start([...flags, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval', '250'] : [])]);
  const rpc = await connect(n.t0 + 30000);
  const accepted = performance.now() - n.t0;
  let complete, cpu;
  for (;;) {
    const { domains } = await rpc.call('virtq', 'listDomains', {});
    if (domains.length === N) { complete = performance.now() - n.t0; cpu = cpuMs(n.child.pid); break; }
    await new Promise((r) => setImmediate(r));
  }
  const line = await n.ready;
  rpc.close();
  await new Promise((r) => setTimeout(r, 1500));
  rows.push({ accepted, complete, cpu, recovery: line.recovered?.ms });
  console.log(JSON.stringify(rows.at(-1)));
  if (prof) { n.child.kill('SIGTERM'); await exitOf(n.child); d = start([]); await d.ready; } else d = n;
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
// No rounds (CLEAN=1 … 0 0: only the clean-up): nothing to summarize.
if (rows.length > 0) for (const k of ['accepted', 'complete', 'cpu', 'recovery']) console.log(k, q(rows.map((r) => r[k]), 50).toFixed(1), q(rows.map((r) => r[k]), 90).toFixed(1));
console.log('load', readFileSync('/proc/loadavg', 'utf8').trim());
if (process.env.CLEAN === '1') {
  const rpc = await connect(performance.now() + 30000);
  for (const x of (await rpc.call('virtq', 'listDomains', {})).domains) { await rpc.call('virtq', 'destroy', { name: x.name }).catch(() => {}); await rpc.call('virtq', 'undefine', { name: x.name }).catch(() => {}); }
  rpc.close();
}
d.child.kill('SIGTERM'); await exitOf(d.child);
