#!/usr/bin/env node
// A full clone of 1 GiB through the driver alone (DirPool.clone in this process, no daemon),
// two builds interleaved round after round (issue #13, session 11, f-vol-copy): wall time, the
// CPU of this process and of the children it waited for (cp / qemu-img, from /proc/self/stat),
// and the result's extents (`filefrag`) and allocation. Sources: 1 GiB of random data as raw and
// as qcow2, and a mostly empty 1 GiB raw (8 MiB of data), hard links shared by both builds.
// Before every timed clone: sync, and drop_caches when this process may (root).
//
//   node bench/storage/clone-ab.mjs --a /tmp/vcopy-base/dist --b dist [--rounds 3] [--dir /var/tmp]
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fmt, loadavg, options, pct, REPO, table } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 3);
const GiB = 1024 ** 3;
const builds = { A: resolve(o.get('a', '/tmp/vcopy-base/dist')), B: resolve(REPO, o.get('b', 'dist')) };
const work = mkdtempSync(join(o.get('dir', '/var/tmp'), 'vqca-'));
const canDrop = await writeFile('/proc/sys/vm/drop_caches', '3').then(() => true, () => false);
const sh = (cmd) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
const childCpuMs = () => {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[13]) + Number(f[14])) * 10; // cutime + cstime, clock ticks of 10 ms
};
const selfCpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

try {
  const src = { raw: join(work, 'src.raw'), qcow2: join(work, 'src.qcow2'), sparse: join(work, 'sparse.raw') };
  sh(`head -c ${GiB} /dev/urandom > ${src.raw}`);
  sh(`qemu-img convert -f raw -O qcow2 ${src.raw} ${src.qcow2}`);
  sh(`truncate -s ${GiB} ${src.sparse} && dd if=/dev/urandom of=${src.sparse} bs=1M count=8 seek=100 conv=notrunc status=none`);
  const pools = {};
  for (const [k, dist] of Object.entries(builds)) {
    const dir = join(work, `pool-${k}`);
    mkdirSync(dir);
    for (const [f, p] of Object.entries(src)) linkSync(p, join(dir, `src-${f}.${f === 'qcow2' ? 'qcow2' : 'raw'}`));
    const { DirPool } = await import(join(dist, 'lib', 'drivers', 'storage', 'dir-pool.js'));
    pools[k] = new DirPool({ name: k, type: 'dir', path: dir });
    await pools[k].list();
  }
  const rows = {};
  const sources = ['raw', 'qcow2', 'sparse'];
  for (let r = 0; r < ROUNDS; r++) {
    for (const f of sources) {
      for (const k of r % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
        const name = `copy-${f}.${f === 'qcow2' ? 'qcow2' : 'raw'}`;
        sh('sync');
        if (canDrop) await writeFile('/proc/sys/vm/drop_caches', '3');
        const c0 = selfCpuMs(); const k0 = childCpuMs(); const t0 = performance.now();
        const v = await pools[k].clone(`src-${f}.${f === 'qcow2' ? 'qcow2' : 'raw'}`, name, { mode: 'full' });
        const ms = performance.now() - t0;
        const row = { ms, self: selfCpuMs() - c0, child: childCpuMs() - k0, load: Number(loadavg().split(' ')[0]) };
        row.extents = Number(/(\d+) extents? found/.exec(sh(`filefrag ${v.path}`))?.[1]);
        row.allocMiB = statSync(v.path).blocks * 512 / 2 ** 20;
        (rows[`${f} ${k}`] ??= []).push(row);
        console.error(`round ${r + 1} ${f} ${k}: ${ms.toFixed(0)} ms, cpu self ${row.self.toFixed(0)} child ${row.child} ms, ${row.extents} extents, ${row.allocMiB.toFixed(1)} MiB, load ${row.load}`);
        await pools[k].delete(name);
        await pools[k].info(); // waits for the blocks to be freed
      }
    }
  }
  const p = (xs, q) => pct(Float64Array.from(xs).sort(), q);
  const out = [];
  for (const [key, xs] of Object.entries(rows)) {
    const [f, k] = key.split(' ');
    out.push([f, k === 'A' ? `A ${builds.A}` : `B ${builds.B}`, fmt(p(xs.map((x) => x.ms), 50)), fmt(p(xs.map((x) => x.ms), 90)),
      fmt(p(xs.map((x) => x.self), 50)), fmt(p(xs.map((x) => x.child), 50)), String(p(xs.map((x) => x.extents), 50)), fmt(p(xs.map((x) => x.allocMiB), 50)),
      `${Math.min(...xs.map((x) => x.load))}–${Math.max(...xs.map((x) => x.load))}`]);
  }
  console.log(`rounds ${ROUNDS}, drop_caches ${canDrop ? 'yes' : 'no (not root)'}, load at the end ${loadavg()}`);
  console.log(table(['source', 'build', 'wall p50 ms', 'wall p90 ms', 'self CPU p50 ms', 'children CPU p50 ms', 'extents p50', 'allocated MiB', 'load (1 min)'], out));
} finally {
  rmSync(work, { recursive: true, force: true });
}
