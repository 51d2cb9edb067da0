// Issue #13 session 11 prototype: SRC copied to a temp file through two 8 MiB WebAssembly-aligned buffers, with
// O_DIRECT or buffered, then fsync, rename, dir fsync; wall, when the writes were done, CPU.
//   node bench/storage/odirect-proto.mjs SRC [direct|buffered] [BATCH_MIB] [IN_FLIGHT] [ROUNDS]   (root; uses /var/tmp/vup/od)
// prototype: copy src to a temp with O_DIRECT from wasm-aligned staging buffers, N writes in flight, then fsync+rename+dir fsync
import { open, rename, rm } from 'node:fs/promises';
import { constants, writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
const [src, mode = 'direct', batchMiB = '8', inflight = '2', rounds = '3'] = process.argv.slice(2);
const B = Number(batchMiB) << 20, K = Number(inflight);
const dir = '/var/tmp/vup/od'; execSync(`mkdir -p ${dir}; rm -f ${dir}/*`);
const mem = new WebAssembly.Memory({ initial: (B * (K + 1)) / 65536 });
const bufs = Array.from({ length: K + 1 }, (_, i) => Buffer.from(mem.buffer, i * B, B));
for (let r = 0; r < Number(rounds); r++) {
  execSync('sync'); writeFileSync('/proc/sys/vm/drop_caches', '3');
  const c0 = process.cpuUsage(); const t0 = performance.now();
  const inp = await open(src, 'r');
  const tmp = `${dir}/t${r}`;
  const out = await open(tmp, constants.O_WRONLY | constants.O_CREAT | (mode === 'direct' ? constants.O_DIRECT : 0), 0o600);
  let pos = 0; const inflightP = []; let i = 0;
  for (;;) {
    const buf = bufs[i % (K + 1)]; i++;
    // read 1 MiB at a time into the staging buffer (as chunks arriving)
    let got = 0;
    while (got < B) { const { bytesRead } = await inp.read(buf, got, Math.min(1 << 20, B - got), pos + got); if (bytesRead === 0) break; got += bytesRead; }
    if (got === 0) break;
    if (inflightP.length >= K) await inflightP.shift();
    const p = pos;
    inflightP.push(out.write(buf, 0, got, p).then(({ bytesWritten }) => { if (bytesWritten !== got) throw new Error('short'); }));
    pos += got;
    if (got < B) break;
  }
  await Promise.all(inflightP);
  const tw = performance.now();
  await out.sync(); await out.close(); await inp.close();
  await rename(tmp, `${dir}/final`);
  const d = await open(dir, 'r'); await d.sync(); await d.close();
  const c = process.cpuUsage(c0);
  console.log(`${mode} batch ${batchMiB} MiB x${K}: wall ${(performance.now() - t0).toFixed(0)} (writes done ${(tw - t0).toFixed(0)}), cpu u ${(c.user / 1000).toFixed(0)} s ${(c.system / 1000).toFixed(0)}`);
}
