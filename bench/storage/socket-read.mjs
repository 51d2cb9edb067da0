#!/usr/bin/env node
// What reading 1 GiB from a unix socket costs a Node process, by how it reads (issue #13, the
// download's client side): Node's 'data' events (a fresh 64 KiB buffer and a JS call per read),
// `onread` into one reused buffer, `onread` into a fresh 1 MiB buffer per MiB (page faults, GC),
// `onread` into 4 reused 1 MiB buffers (what RpcClient does with recycled download chunks).
// Sender and reader share this process, so the CPU printed is both sides; compare modes only.
//
//   node bench/storage/socket-read.mjs [data,reused,fresh,ring] [rounds]
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const modes = (process.argv[2] ?? 'data,reused,fresh,ring').split(',');
const rounds = Number(process.argv[3] ?? 3);
const TOTAL = 1024 ** 3, CH = 1 << 20;
const path = join(tmpdir(), `vq-socket-read-${process.pid}.sock`);
const bufs = [1, 2, 3, 4].map((v) => Buffer.alloc(CH, v));
const srv = net.createServer((s) => {
  let sent = 0, i = 0;
  const pump = () => { while (sent < TOTAL) { sent += CH; if (!s.write(bufs[i++ % 4])) { s.once('drain', pump); return; } } s.end(); };
  pump();
});
await new Promise((r) => srv.listen(path, r));
function once(mode) {
  let got = 0, reads = 0;
  let onread;
  if (mode === 'reused') onread = { buffer: Buffer.allocUnsafe(CH), callback: (n) => { got += n; reads++; return true; } };
  if (mode === 'fresh' || mode === 'ring') {
    const ring = [0, 1, 2, 3].map(() => Buffer.allocUnsafe(CH));
    let cur = ring[0], filled = 0, frames = 0;
    onread = {
      buffer: () => cur.subarray(filled),
      callback: (n) => { got += n; reads++; filled += n; if (filled === CH) { frames++; filled = 0; cur = mode === 'ring' ? ring[frames % 4] : Buffer.allocUnsafe(CH); } return true; },
    };
  }
  const c0 = process.cpuUsage(), t0 = performance.now();
  return new Promise((resolve) => {
    const sock = onread === undefined ? net.connect(path) : net.connect({ path, onread });
    if (onread === undefined) sock.on('data', (b) => { got += b.length; reads++; });
    sock.on('end', () => { const c = process.cpuUsage(c0); resolve({ got, reads, wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 }); });
  });
}
const res = {};
for (let r = 0; r < rounds; r++) for (const m of modes) (res[m] ??= []).push(await once(m));
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const p90 = (a) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.ceil(a.length * 0.9) - 1)];
for (const [m, v] of Object.entries(res)) {
  const cpu = v.map((x) => x.cpu), wall = v.map((x) => x.wall);
  console.log(`${m.padEnd(7)} reads ${v[0].reads} (avg ${Math.round(v[0].got / v[0].reads)} B)  cpu p50 ${med(cpu).toFixed(0)} p90 ${p90(cpu).toFixed(0)} ms  wall p50 ${med(wall).toFixed(0)} p90 ${p90(wall).toFixed(0)} ms`);
}
srv.close();
