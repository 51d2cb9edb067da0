#!/usr/bin/env node
// Two virtstoraged builds alternated call by call (issue #13, session 12): noop (listJobs), create raw
// 1 GiB and delete of a thin overlay; wall p50/p90, the daemon's CPU (schedstat) and the client's per call, and the
// cache flushes the pool's disk completed during the call (/sys/dev/block/MAJ:MIN/stat, field 15:
// one per fsync on ext4 without a journal; other writers rarely flush, so the mean is ~exact).
//   env -u NODE_EXTRA_CA_CERTS nice -n 5 node bench/storage/alt-ab.mjs DIST_A DIST_B [rounds]   (absolute dist paths)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMs } from '../lib/common.mjs';
const dists = process.argv.slice(2, 4); const N = Number(process.argv[4] ?? 40);
const work = mkdtempSync('/var/tmp/voalt-');
const sides = [];
// The whole disk's counters (a partition's stat has no flush field).
const devStat = (() => {
  const { dev } = statSync(work); const id = `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
  let path = `/sys/dev/block/${id}/stat`;
  try { readFileSync(`/sys/dev/block/${id}/partition`); path = `/sys/dev/block/${id}/../stat`; } catch { /* a whole disk */ }
  return path;
})();
const flushes = () => { const f = readFileSync(devStat, 'utf8').trim().split(/\s+/).map(Number); return f[15] ?? NaN; };
for (const [i, dist] of dists.entries()) {
  const root = join(work, `r${i}`), pool = join(work, `p${i}`);
  const child = spawn(join(dist, 'bin', 'virtstoraged.js'), ['--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout.once('data', r)); child.stdout.resume();
  const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js') + `?${i}`);
  const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20000 });
  await sc.api.definePool({ definition: { name: 'p', type: 'dir', path: pool } });
  await sc.api.startPool({ name: 'p', build: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(pool, 'src.qcow2'), '1G']);
  await sc.api.listVolumes({ pool: 'p' });
  sides.push({ dist, child, sc, t: { noop: [], create: [], del: [] }, c: { noop: [], create: [], del: [] }, u: { noop: [], create: [], del: [] }, f: { noop: [], create: [], del: [] } });
}
// The client's CPU (this process, process.cpuUsage) is taken inside the daemon's /proc reads.
const time = async (s, k, f) => {
  const f0 = flushes(); const c0 = cpuMs(s.child.pid); const u0 = process.cpuUsage(); const t0 = performance.now();
  await f();
  const t1 = performance.now(); const u1 = process.cpuUsage(u0);
  s.t[k].push(t1 - t0); s.c[k].push(cpuMs(s.child.pid) - c0); s.u[k].push((u1.user + u1.system) / 1000); s.f[k].push(flushes() - f0);
};
for (let i = 0; i < N + 3; i++) {
  for (const s of i % 2 ? sides : [...sides].reverse()) {
    const sc = s.sc;
    await time(s, 'noop', () => sc.api.listJobs({}));
    await time(s, 'create', () => sc.api.createVolume({ pool: 'p', name: 'x.raw', format: 'raw', capacity: 1 << 30 }));
    await sc.api.deleteVolume({ pool: 'p', name: 'x.raw' });
    await sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 'd.qcow2', thin: true });
    await new Promise((r) => setTimeout(r, 5));
    await time(s, 'del', () => sc.api.deleteVolume({ pool: 'p', name: 'd.qcow2' }));
    await new Promise((r) => setTimeout(r, 5)); // what a call left running after its reply (a record's sync) is not the next one's
    if (i < 3) for (const k of Object.keys(s.t)) { s.t[k].length = 0; s.c[k].length = 0; s.u[k].length = 0; s.f[k].length = 0; }
  }
}
const med = (a) => { const b = [...a].sort((x, y) => x - y); return b[Math.floor(b.length / 2)]; };
const p90 = (a) => { const b = [...a].sort((x, y) => x - y); return b[Math.floor(b.length * 0.9)]; };
for (const s of sides) console.log(s.dist, Object.keys(s.t).map((k) => `${k} p50 ${med(s.t[k]).toFixed(2)} p90 ${p90(s.t[k]).toFixed(2)} cpu ${med(s.c[k]).toFixed(2)} client cpu ${med(s.u[k]).toFixed(3)} flushes ${(s.f[k].reduce((a, b) => a + b, 0) / s.f[k].length).toFixed(2)}`).join(' | '));
for (const s of sides) { s.sc.close(); s.child.kill('SIGTERM'); }
await new Promise((r) => setTimeout(r, 500)); rmSync(work, { recursive: true, force: true }); process.exit(0);
