// EXPERIMENT (issue #13 session 13, f-vol-up3): the device alone, 1 GiB from reused memory: O_DIRECT (MiB per write, writes in flight) or buffered + fsync.
//   node upload-device-only.mjs direct|buffered MIB INFLIGHT
import { open } from 'node:fs/promises';
import { constants, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
const [mode, mibS, qdS] = process.argv.slice(2); const B = Number(mibS) << 20, QD = Number(qdS); const SIZE = 1 << 30;
const f = '/var/tmp/fvu3/dev.out'; rmSync(f, { force: true });
const mem = new WebAssembly.Memory({ initial: (QD * B) / 65536 });
const bufs = Array.from({ length: QD }, (_, i) => Buffer.from(mem.buffer, i * B, B)); for (const b of bufs) randomFillSync(b);
spawnSync('sync'); writeFileSync('/proc/sys/vm/drop_caches', '3');
const ds = () => readFileSync('/proc/diskstats', 'utf8').split('\n').find((x) => / vda /.test(x)).trim().split(/\s+/).map(Number);
const d0 = ds(); const c0 = process.cpuUsage(); const t0 = performance.now();
const fh = await open(f, mode === 'direct' ? constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT : 'w');
if (mode === 'direct') await fh.truncate(SIZE);
let pos = 0; const inflight = [];
let i = 0;
while (pos < SIZE) { if (inflight.length >= QD) await inflight.shift(); const p = pos; inflight.push(fh.write(bufs[i++ % QD], 0, B, p)); pos += B; }
await Promise.all(inflight);
const t1 = performance.now();
await fh.sync(); await fh.close();
const d1 = ds(); const c = process.cpuUsage(c0); const w = performance.now() - t0;
console.log(mode, mibS, QD, 'wall', Math.round(w), 'writes', Math.round(t1 - t0), 'sync', Math.round(performance.now() - t1), 'cpu', Math.round((c.user + c.system) / 1000), 'reqs', d1[7] - d0[7], 'avgKiB', Math.round((d1[9] - d0[9]) / 2 / (d1[7] - d0[7])));
rmSync(f);
