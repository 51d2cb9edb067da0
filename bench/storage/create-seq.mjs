#!/usr/bin/env node
// The system calls of a raw create without its flush, three ways (issue #13, session 19), on the
// loop's thread as a local pool makes them, interleaved, µs per create (p50 / p90, CPU):
//   temp   virtstoraged's: open O_EXCL a temp name, ftruncate, close, link to the final name,
//          unlink the temp name, open the final name (for its fsync), close
//   keep   the same, the temp name's descriptor kept for the fsync (no close + open)
//   excl   libvirt's: open O_EXCL under the final name, ftruncate, close (a crash before the
//          fsync can leave an empty or unsized file under the final name)
//   node bench/storage/create-seq.mjs [--rounds 3000] [--dir /var/tmp]
import { closeSync, ftruncateSync, linkSync, mkdtempSync, openSync, rmSync, unlinkSync, constants as C } from 'node:fs';
import { join } from 'node:path';
import { loadavg, options, pct } from '../lib/common.mjs';

const o = options();
const ROUNDS = Number(o.get('rounds', '3000'));
const dir = mkdtempSync(join(o.get('dir', '/var/tmp'), 'vqseq-'));
const SIZE = 1 << 30;
const fin = join(dir, 'x.raw');
const tmp = join(dir, '.vq-0123456789abcdef.tmp');
const EXCL = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_TRUNC;
const ways = {
  temp: () => { const fd = openSync(tmp, EXCL, 0o600); ftruncateSync(fd, SIZE); closeSync(fd); linkSync(tmp, fin); unlinkSync(tmp); closeSync(openSync(fin, 'r')); },
  keep: () => { const fd = openSync(tmp, EXCL, 0o600); ftruncateSync(fd, SIZE); linkSync(tmp, fin); unlinkSync(tmp); closeSync(fd); },
  excl: () => { const fd = openSync(fin, EXCL, 0o600); ftruncateSync(fd, SIZE); closeSync(fd); },
};
const t = Object.fromEntries(Object.keys(ways).map((k) => [k, { wall: [], cpu: [] }]));
const loads = [loadavg()];
for (let r = 0; r < ROUNDS + 100; r++) {
  for (const [k, f] of r % 2 ? Object.entries(ways) : Object.entries(ways).reverse()) {
    const c0 = process.cpuUsage(); const t0 = performance.now();
    f();
    const t1 = performance.now(); const c1 = process.cpuUsage(c0);
    unlinkSync(fin);
    if (r >= 100) { t[k].wall.push((t1 - t0) * 1000); t[k].cpu.push((c1.user + c1.system)); }
  }
}
loads.push(loadavg());
const s = (a) => Float64Array.from(a).sort();
console.log(`load ${loads.join(' -> ')}; ${ROUNDS} rounds; µs per create without its fsync`);
for (const [k, v] of Object.entries(t)) console.log(`${k.padEnd(5)} wall p50 ${pct(s(v.wall), 50).toFixed(1)} p90 ${pct(s(v.wall), 90).toFixed(1)}  cpu mean ${(v.cpu.reduce((a, b) => a + b, 0) / v.cpu.length).toFixed(1)}`);
rmSync(dir, { recursive: true, force: true });
