#!/usr/bin/env node
// On-CPU breakdown of warm starts through virtqemud (issue #15, session 13): `perf record -a -g`
// (cpu-clock, 4 kHz: on-CPU samples only, so a loaded host's preemption is not counted, unlike a
// --cpu-prof profile) around each `create`, virtqemud and its shims run with --perf-basic-prof so
// JIT frames have names. Per create it prints the CPU of virtqemud, of the pool shim that took the
// start, of QEMU's forked child before its execve (comm still `node`: the spawn's cost that
// uv_spawn waits for), and the shim's samples under V8's lazy compiler.
// --perf-basic-prof changes V8's flags, so Node compiles its built-ins from source: the compile
// row is inflated, use it for direction only. Needs perf and root (or perf_event_paranoid <= 0).
//
//   node bench/shim/perf-vqd.mjs [--runs 5] [--dist DIR]
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, cleanupRegistry, exitOf, firstLine, fmt, idleDefinition, loadavg, options, sleep, summarize, tmpRoot } from '../lib/common.mjs';

const o = options();
const RUNS = o.num('runs', 5);
const DIST = o.get('dist', join(REPO, 'dist'));
const HZ = 4000;
const cleanup = cleanupRegistry();
const { RpcClient, systemClock } = await import(join(DIST, 'lib', 'protocol', 'index.js'));
const root = cleanup.root(tmpRoot('vqperf-'));
const wrap = join(root, 'shim-wrap.sh');
writeFileSync(wrap, `#!/bin/sh\nexport UV_THREADPOOL_SIZE=1 MALLOC_ARENA_MAX=2\nexec ${process.execPath} --max-semi-space-size=1 --max-old-space-size=64 --v8-pool-size=1 --perf-basic-prof --interpreted-frames-native-stack ${join(DIST, 'bin', 'virtq-shim.js')} "$@"\n`);
chmodSync(wrap, 0o755);
const d = cleanup.child(spawn(process.execPath, ['--max-semi-space-size=4', '--perf-basic-prof', '--interpreted-frames-native-stack', join(DIST, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', '1', '--shim', wrap], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, VIRTQ_NO_SNAPSHOT: '1' } }));
const { pid } = JSON.parse((await firstLine(d)).line);
d.stdout.resume();
const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud.sock'), { clock: systemClock(), defaultTimeoutMs: 60_000 });
for (let i = 0; i < 2; i++) { await sleep(2000); await rpc.call('virtq', 'create', { definition: idleDefinition(`w${i}`) }); await rpc.call('virtq', 'destroy', { name: `w${i}` }); }
const loadBefore = loadavg();
const rows = [];
for (let i = 0; i < RUNS; i++) {
  await sleep(2500);
  const data = join(root, `perf-${i}.data`);
  const perf = spawn('perf', ['record', '-a', '-e', 'cpu-clock', '-F', String(HZ), '-g', '-o', data], { stdio: ['ignore', 'ignore', 'pipe'] });
  // perf synthesizes every process's maps before it records: wait for its first wake-up line... or 3 s.
  await new Promise((resolve) => { const t = setTimeout(resolve, 3000); perf.stderr.once('data', () => { clearTimeout(t); resolve(); }); });
  await sleep(300);
  const r = await rpc.call('virtq', 'create', { definition: idleDefinition(`t${i}`) });
  perf.kill('SIGINT');
  await exitOf(perf);
  await rpc.call('virtq', 'destroy', { name: `t${i}` });
  rows.push(analyse(data, pid, r.shimPid, r.qemuPid));
}
rpc.close();
process.kill(pid, 'SIGTERM');
await exitOf(d);

/** On-CPU ms of one create's processes from one perf.data. */
function analyse(data, vqd, shim, qemu) {
  const out = spawnSync('perf', ['script', '-i', data, '-F', 'pid,comm,ip,sym'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout;
  const ms = { vqd: 0, shim: 0, preExec: 0, compile: 0, spawn: 0, samples: 0 };
  for (const block of out.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    const head = /^\s*(.*?)\s+(\d+)\s*$/.exec(lines[0] ?? '');
    if (head === null) continue;
    const [comm, p] = [head[1], Number(head[2])];
    const stack = lines.slice(1).join('\n');
    ms.samples++;
    const each = 1000 / HZ;
    if (p === vqd) ms.vqd += each;
    if (p === shim) {
      ms.shim += each;
      if (stack.includes('Compiler::Compile')) ms.compile += each;
      if (stack.includes('JS:~spawn node:child_process') || stack.includes('JS:^spawn node:child_process')) ms.spawn += each;
    }
    if (p === qemu && comm === 'node') ms.preExec += each;
  }
  return ms;
}
if (rows.some((r) => r.samples === 0)) console.log('some rounds recorded no samples: perf did not start in time');
const s = (k) => { const x = summarize(rows.map((r) => r[k])); return [fmt(x.p50), fmt(x.p90)]; };
console.log(`load before ${loadBefore}, after ${loadavg()}; ${RUNS} creates, perf cpu-clock ${HZ} Hz (on-CPU ms per create)\n`);
console.log('| process / part | p50 | p90 |\n| --- | --- | --- |');
for (const [k, what] of [['vqd', 'virtqemud'], ['shim', 'pool shim (whole)'], ['compile', 'pool shim under V8 Compiler::Compile (inflated, see top)'], ['spawn', "pool shim in child_process.spawn (fork included)"], ['preExec', "QEMU's forked child before execve"]]) console.log(`| ${what} | ${s(k).join(' | ')} |`);
