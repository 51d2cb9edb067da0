// Issue #13 session 11: one DirPool.upload of SRC per round (after sync + drop_caches), printing wall, when the stream was consumed (the rest is truncate, fsync, rename, dir fsync) and CPU.
//   node bench/storage/upload-phases.mjs DIST SRC [POOL_DIR] [ROUNDS]   (run as root for drop_caches)
// one driver upload (after an untimed first one), phases printed
import { createReadStream, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { join } from 'node:path';
const [dist, src, dir = '/var/tmp/vup/pool', n = '2'] = process.argv.slice(2);
const { DirPool } = await import(join(dist, 'lib/drivers/storage/dir-pool.js'));
rmSync(dir, { recursive: true, force: true });
const pool = new DirPool({ name: 'p', type: 'dir', path: dir });
await pool.build();
const SIZE = 1024 ** 3;
await pool.create({ name: 'up.raw', format: 'raw', capacityBytes: SIZE });
for (let i = 0; i < Number(n); i++) {
  execSync('sync'); writeFileSync('/proc/sys/vm/drop_caches', '3');
  const c0 = process.cpuUsage(); const t0 = performance.now();
  let last = 0;
  await pool.upload('up.raw', createReadStream(src, { highWaterMark: 1 << 20 }), { onProgress: (d) => { if (d === SIZE) last = performance.now(); } }, { lengthBytes: SIZE });
  const c = process.cpuUsage(c0);
  console.log(`round ${i}: wall ${(performance.now() - t0).toFixed(0)} ms, stream consumed at ${(last - t0).toFixed(0)}, cpu user ${(c.user / 1000).toFixed(0)} sys ${(c.system / 1000).toFixed(0)}`);
}
