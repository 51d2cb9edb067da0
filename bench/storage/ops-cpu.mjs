#!/usr/bin/env node
// virtstoraged's own cost per small operation (issue #13), robust to a loaded machine: the
// daemon's CPU time (utime + stime from /proc/PID/stat, its threads included) per operation, and
// the client's wall-clock latency (p50/p90; meaningful only when the machine is quiet). Two
// builds are run interleaved, round by round (A/B), each with its own daemon and pool.
//
//   node bench/storage/ops-cpu.mjs --a DIST_A [--b DIST_B] [--rounds 6] [--n 40] [--mib 1024]
//       [--ops noop,create-raw,create-qcow2,thin,delete-thin,delete-raw]
//
// Each round runs every op `n` times per build; a create is followed by an untimed delete of
// the volume (and a delete preceded by an untimed create or clone), so CPU is read around the
// timed calls only. "noop" is listJobs: the RPC alone.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRegistry, fmt, loadavg, median, now, options, pct, table } from '../lib/common.mjs';
import { run } from './sides.mjs';

const o = options();
const builds = [['A', o.get('a')], ['B', o.get('b')]].filter(([, d]) => d !== undefined);
const ROUNDS = o.num('rounds', 6);
const N = o.num('n', 40);
const SIZE = o.num('mib', 1024) * 1024 * 1024;
const OPS = o.get('ops', 'noop,create-raw,create-qcow2,thin,delete-thin,delete-raw').split(',');
const cleanup = cleanupRegistry();
const work = cleanup.root(mkdtempSync('/var/tmp/vqoc-'));

// CPU time on the CPU of every thread of the daemon (schedstat: nanoseconds, not 10 ms ticks);
// threads that ended meanwhile are lost, but libuv's pool and V8's threads live as long as it.
const cpuMs = (pid) => {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try { ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]); } catch { /* ended */ }
  }
  return ns / 1e6;
};

async function side(label, dist) {
  const root = join(work, label);
  const poolDir = join(work, `${label}-pool`);
  const child = cleanup.child(spawn(join(dist, 'bin', 'virtstoraged.js'), ['--root', root], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.stdout.resume();
  const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js'));
  const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20_000 });
  await sc.api.definePool({ definition: { name: 'p', type: 'dir', path: poolDir } });
  await sc.api.startPool({ name: 'p', build: true });
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(poolDir, 'src.qcow2'), String(SIZE)]);
  await sc.api.listVolumes({ pool: 'p' });
  const del = (name) => () => sc.api.deleteVolume({ pool: 'p', name });
  const ops = {
    noop: { run: () => sc.api.listJobs({}) },
    'create-raw': { run: () => sc.api.createVolume({ pool: 'p', name: 'x.raw', format: 'raw', capacity: SIZE }), after: del('x.raw') },
    'create-qcow2': { run: () => sc.api.createVolume({ pool: 'p', name: 'x.qcow2', format: 'qcow2', capacity: SIZE }), after: del('x.qcow2') },
    thin: { run: () => sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 't.qcow2', thin: true }), after: del('t.qcow2') },
    'delete-thin': { before: () => sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 'd.qcow2', thin: true }), run: del('d.qcow2') },
    'delete-raw': { before: () => sc.api.createVolume({ pool: 'p', name: 'd.raw', format: 'raw', capacity: SIZE }), run: del('d.raw') },
  };
  return { label, dist, child, sc, ops, res: Object.fromEntries(OPS.map((k) => [k, { ms: [], cpu: [] }])) };
}

const sides = [];
for (const [label, dist] of builds) sides.push(await side(label, dist));
const loadBefore = loadavg();
for (let r = 0; r < ROUNDS + 1; r += 1) {
  for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
    for (const k of OPS) {
      const op = s.ops[k];
      let cpu = 0;
      for (let i = 0; i < N; i += 1) {
        await op.before?.();
        const c0 = cpuMs(s.child.pid);
        const t0 = now();
        await op.run();
        const t = now() - t0;
        cpu += cpuMs(s.child.pid) - c0;
        if (r > 0) s.res[k].ms.push(t);
        await op.after?.();
      }
      if (r > 0) s.res[k].cpu.push(cpu / N);
    }
  }
  console.error(`[load ${loadavg()}] round ${r}${r === 0 ? ' (warm-up)' : ''} done`);
}
const rows = [];
for (const k of OPS) {
  for (const s of sides) {
    const v = s.res[k];
    const sorted = Float64Array.from(v.ms).sort();
    rows.push([k, s.label, fmt(median(v.ms), 2), fmt(pct(sorted, 90), 2), fmt(median(v.cpu), 2), v.cpu.map((c) => fmt(c, 2)).join(' ')]);
  }
}
console.log(`# virtstoraged per-op cost, ${ROUNDS} rounds × ${N} ops, interleaved; load before ${loadBefore}, after ${loadavg()}`);
for (const s of sides) console.log(`# ${s.label}: ${s.dist}`);
console.log(table(['op', 'build', 'p50 ms', 'p90 ms', 'daemon CPU ms/op (median of rounds)', 'per round'], rows));
for (const s of sides) s.sc.close();
process.exit(0);
