// The upload write path alone, A/B between builds (issue #13, session 9): DirPool.upload of a
// file read in 1 MiB chunks (fresh buffers, as a socket hands them on) from each given build's
// dist, against the durable floor (cp to temp, sync, mv over, sync dir), interleaved round after
// round, each after `sync` and (as root) drop_caches. Prints p50/p90 of wall time and of this
// process's CPU time (user + system, process.cpuUsage): under a loaded machine the CPU is the
// steadier figure, though the kernel's writeback threads are not in it.
//
//   MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=67108864 \
//     node bench/storage/upload-ab.mjs [--rounds 5] [--mib 1024] [--dir DIR] DIST_A [DIST_B ...]
//
// DIST is a build's dist directory (e.g. a main checkout's dist and this checkout's dist).
import { spawnSync } from 'node:child_process';
import { closeSync, createReadStream, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg, options, summarize, table, fmt } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const SIZE = o.num('mib', 1024) * 1024 * 1024;
const MiB = 1024 * 1024;
const dists = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--')).map((d) => resolve(d));
if (dists.length === 0) { console.error('usage: upload-ab.mjs [--rounds N] [--mib N] [--dir DIR] DIST...'); process.exit(2); }
const dir = o.get('dir', mkdtempSync('/var/tmp/vq-upload-ab-'));
const SRC = join(dir, 'src.raw');

const sh = (s) => { const r = spawnSync('sh', ['-c', s]); if (r.status !== 0) throw new Error(`${s}: ${r.stderr}`); };
const canDrop = (() => { try { writeFileSync('/proc/sys/vm/drop_caches', '3'); return true; } catch { return false; } })();

try {
  sh(`head -c ${SIZE} /dev/urandom > ${SRC}`);
  const variants = [['floor: cp to temp, sync, mv over, sync dir', async () => sh(`cp ${SRC} ${dir}/out.t && sync ${dir}/out.t && mv ${dir}/out.t ${dir}/out.raw && sync ${dir}`)]];
  const MODES = o.get("modes", "direct").split(","); for (const [i, dist] of dists.entries()) for (const mode of MODES) {
    const { DirPool } = await import(join(dist, 'lib/drivers/storage/dir-pool.js'));
    const pool = new DirPool({ name: `ab${i}${mode.replaceAll(':','-')}`, type: 'dir', path: join(dir, `pool${i}${mode.replaceAll(':','-')}`) });
    await pool.build();
    await pool.create({ name: 'up.raw', format: 'raw', capacityBytes: SIZE });
    variants.push([`DirPool.upload, ${mode}`, () => { const [io, mib, inflight] = mode.split(':'); process.env.VIRTQ_UPLOAD_IO = io; process.env.VIRTQ_UPLOAD_SYNC_MIB = mib ?? '0'; process.env.VIRTQ_UPLOAD_INFLIGHT = inflight ?? '2'; return pool.upload('up.raw', createReadStream(SRC, { highWaterMark: MiB }), { onProgress: () => {} }, { lengthBytes: SIZE }); }]);
  }
  const wall = variants.map(() => []);
  const cpu = variants.map(() => []);
  for (let r = 0; r < ROUNDS; r += 1) {
    for (const [i, [, fn]] of variants.entries()) {
      sh(`rm -f ${dir}/out.raw; sync`);
      if (canDrop) writeFileSync('/proc/sys/vm/drop_caches', '3');
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await fn();
      wall[i].push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[i].push((c.user + c.system) / 1000);
    }
    console.error(`[round ${r + 1}/${ROUNDS}, load ${loadavg()}]`);
  }
  console.log(`# upload write path, ${SIZE / MiB} MiB, ${ROUNDS} rounds, ${canDrop ? 'sync + drop_caches' : 'sync only'} before each run, load after: ${loadavg()}`);
  console.log(table(['variant', 'wall p50 ms', 'wall p90 ms', 'CPU p50 ms', 'CPU p90 ms', 'MiB/s (p50)'], variants.map(([label], i) => {
    const w = summarize(wall[i]);
    const c = summarize(cpu[i]);
    return [label, fmt(w.p50), fmt(w.p90), i === 0 ? '(child)' : fmt(c.p50), i === 0 ? '' : fmt(c.p90), fmt((SIZE / MiB) / (w.p50 / 1000), 0)];
  })));
} finally {
  if (o.get('dir') === undefined) rmSync(dir, { recursive: true, force: true });
}
