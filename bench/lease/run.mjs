#!/usr/bin/env node
// Lease steps of the lockfile plugin, A/B between two builds in one run, interleaved round by
// round (issue 15's start, issue 16's switchover): with a stand-in QEMU (`sleep` holding the
// lifeline) and one exclusive disk,
//   start     acquireForStart with a spare lifeline (a warm pool shim's), until it resolves;
//   armed     a migration destination's `acquire` of leases armed beforehand (the pause's part);
//   release   the source's releaseAll of a lease its own manager took (the pause's part);
// wall ms and this process's CPU ms (user+sys) per step. Holders are children of this process.
//   node bench/lease/run.mjs [--rounds 30] [--dist DIR] [--baseline DIST]
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '30' }, dist: { type: 'string', default: 'dist' }, baseline: { type: 'string' } } });
const ROUNDS = Number(values.rounds);
const load = async (dist) => {
  const m = (p) => import(pathToFileURL(resolve(dist, 'lib', p)).href);
  const [mgr, space, spare, clock] = await Promise.all([m('drivers/lock/lockfile-manager.js'), m('drivers/lock/lockspace.js'), m('drivers/lock/spare-lifeline.js'), m('protocol/clock.js')]);
  return { name: dist, ...mgr, ...space, ...spare, ...clock };
};
const builds = [await load(values.dist)];
if (values.baseline !== undefined) builds.push(await load(values.baseline));

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-lease-bench-')));
const disk = join(dir, 'disk.raw');
writeFileSync(disk, '');
const procs = [];
const fakeQemu = async (leases) => {
  const child = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
  procs.push(child);
  await leases.spawned(child.pid);
  return child;
};
const killed = (c) => new Promise((r) => { c.once('exit', r); c.kill('SIGKILL'); });
const timed = async (fn) => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
};

const rows = new Map();
const add = (b, step, r) => {
  const k = `${b}\t${step}`;
  if (!rows.has(k)) rows.set(k, { wall: [], cpu: [] });
  rows.get(k).wall.push(r.wall);
  rows.get(k).cpu.push(r.cpu);
};
const A = { vm: 'a', uuid: 'aaaaaaaa-0000-4000-8000-000000000001', shimPid: process.pid };
const A2 = { ...A, shimPid: process.pid + 1 };

async function round(b, label) {
  const clock = b.systemClock();
  const space = new b.Lockspace(join(dir, `space-${label}`));
  const opts = { space, lifelineDir: join(dir, 'run'), host: 'h', clock, flock: 'flock', perl: '/usr/bin/perl' };
  const src = new b.LockfileManager({ ...opts, spare: b.lockSpareLifeline('flock', join(dir, 'run')) });
  let leases;
  add(label, 'start', await timed(async () => { leases = await src.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]); }));
  const sq = await fakeQemu(leases);
  const dst = new b.LockfileManager({ ...opts, spare: b.lockSpareLifeline('flock', join(dir, 'run')) });
  const dq = await fakeQemu(await dst.acquireForStart(A2, []));
  const armed = await dst.armForRunning(A2, dq.pid, [{ path: disk, mode: 'exclusive' }]);
  await new Promise((r) => setTimeout(r, 20)); // armed during the "transfer"
  add(label, 'release', await timed(() => src.releaseAll(A, [disk], sq.pid)));
  add(label, 'armed', await timed(() => armed.acquire()));
  await killed(sq);
  await dst.releaseAll(A2, [disk], dq.pid);
  await killed(dq);
}

for (let i = 0; i < ROUNDS; i++) {
  const order = i % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) await round(b, b === builds[0] ? 'this' : 'base');
}
for (const p of procs) p.kill('SIGKILL');
rmSync(dir, { recursive: true, force: true });
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]; };
console.log('| build | step | wall p50 | wall p90 | CPU ms p50 | CPU ms p90 |\n| --- | --- | --- | --- | --- | --- |');
for (const [k, v] of [...rows].sort()) {
  const [b, step] = k.split('\t');
  console.log(`| ${b} | ${step} | ${q(v.wall, 0.5).toFixed(2)} | ${q(v.wall, 0.9).toFixed(2)} | ${q(v.cpu, 0.5).toFixed(2)} | ${q(v.cpu, 0.9).toFixed(2)} |`);
}
console.log(`rounds ${ROUNDS}, this ${builds[0].name}${builds[1] ? `, base ${builds[1].name}` : ''}`);
