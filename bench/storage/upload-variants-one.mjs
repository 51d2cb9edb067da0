// EXPERIMENT (issue #13 session 13, f-vol-up3): one upload per process, for upload-variants.sh; diskstats of vda around it.
// one DirPool upload or floor, with diskstats deltas
import { spawnSync } from 'node:child_process';
import { createReadStream, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
const [mode, dist] = process.argv.slice(2);
const dir = '/var/tmp/fvu3'; const SRC = join(dir, 'src.raw'); const SIZE = 1 << 30;
const sh = (s) => { const r = spawnSync('sh', ['-c', s]); if (r.status !== 0) throw new Error(s + r.stderr); };
const ds = () => { const l = readFileSync('/proc/diskstats', 'utf8').split('\n').find((x) => / vda /.test(x)).trim().split(/\s+/).map(Number); return { wios: l[7], wsec: l[9], wticks: l[10], inflight: l[11], ioticks: l[12], wq: l[13], flush: l[14+4] ?? 0 }; };
let fn;
if (mode === 'floor') fn = async () => sh(`cp ${SRC} ${dir}/out.t && sync ${dir}/out.t && mv ${dir}/out.t ${dir}/out.raw && sync ${dir}`);
else {
  const { DirPool } = await import(join(dist, 'lib/drivers/storage/dir-pool.js'));
  rmSync(join(dir, 'pool'), { recursive: true, force: true });
  const pool = new DirPool({ name: 'p', type: 'dir', path: join(dir, 'pool') });
  await pool.build();
  await pool.create({ name: 'up.raw', format: 'raw', capacityBytes: SIZE });
  fn = () => pool.upload('up.raw', createReadStream(SRC, { highWaterMark: 1 << 20 }), {}, { lengthBytes: SIZE });
}
sh(`rm -f ${dir}/out.raw; sync`); writeFileSync('/proc/sys/vm/drop_caches', '3'); if (process.env.WARM) sh('cat ' + SRC + ' > /dev/null');
// warm source into cache? no: both read cold
const d0 = ds(); const c0 = process.cpuUsage(); const t0 = performance.now();
await fn();
const wall = performance.now() - t0; const c = process.cpuUsage(c0); const d1 = ds();
const w = d1.wios - d0.wios;
console.log(JSON.stringify({ mode, wall: Math.round(wall), cpu: Math.round((c.user + c.system) / 1000), wios: w, avgReqKiB: Math.round((d1.wsec - d0.wsec) / 2 / w), writeMs: d1.wticks - d0.wticks, ioTicks: d1.ioticks - d0.ioticks, avgQ: +((d1.wq - d0.wq) / wall).toFixed(1), load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') }));
