#!/usr/bin/env node
// What one call costs, layer by layer (issue #13, session 15): interleaved in one run,
//   bare      node:net echo of length-prefixed frames (no virtq code either side)
//   codec     the same with protocol/framing.ts + codec.ts + parseMessage on both sides
//   rpc       RpcServer (storage program, noop listJobs) + RpcClient
//   storaged  virtstoraged's listJobs through StorageClient (the real daemon: ACL, metrics, logging)
// each back to back and after 20 ms idle: wall p50/p90 per call, the client's CPU (this process,
// process.cpuUsage) and the server's (all its threads' schedstat) per call. Servers run from
// layers-server.mjs, each its own process. With several dists (A,B) the rpc and storaged layers
// run once per dist, interleaved.
//   env -u NODE_EXTRA_CA_CERTS nice -n 5 node bench/rpc/layers.mjs [--dists A,B] [--rounds 150] [--burst 5]
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMs, loadavg, options, pct, REPO, sleep } from '../lib/common.mjs';

const o = options();
const dists = o.get('dists', join(REPO, 'dist')).split(',');
const ROUNDS = Number(o.get('rounds', '150'));
const BURST = Number(o.get('burst', '5'));
const work = mkdtempSync('/var/tmp/vqlayers-');
const children = [];
const here = new URL('.', import.meta.url).pathname;

function startServer(args) {
  const child = spawn(process.execPath, [join(here, 'layers-server.mjs'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve) => child.stdout.once('data', () => resolve(child)));
}

// A client of length-prefixed frames over node:net; `onFrame` gets each whole frame's body.
function framedSocket(path, onFrame) {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
    s.setNoDelay(true);
    let held = Buffer.alloc(0);
    s.on('data', (chunk) => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      while (held.length >= 4) {
        const n = held.readUInt32BE(0);
        if (held.length < 4 + n) break;
        onFrame(held.subarray(4, 4 + n));
        held = held.subarray(4 + n);
      }
    });
  });
}

const p0 = await import(join(dists[0], 'lib', 'protocol', 'index.js'));
const layers = [];
{
  // bare: the frame of a real listJobs call, encoded once, echoed.
  const path = join(work, 'bare.sock');
  const child = await startServer([dists[0], 'bare', path]);
  const frame = p0.encodeFrame(p0.createCodec().encode({ prog: 'storage', proc: 'listJobs', type: 'call', serial: 1, status: 'ok', body: {} }));
  let wake;
  const s = await framedSocket(path, () => wake());
  layers.push({ name: 'bare', child, call: () => new Promise((r) => { wake = r; s.write(frame); }) });
}
{
  const path = join(work, 'codec.sock');
  const child = await startServer([dists[0], 'codec', path]);
  const codec = p0.createCodec();
  let wake;
  let serial = 1;
  const s = await framedSocket(path, (f) => wake(p0.parseMessage(codec.decode(f)).body));
  layers.push({ name: 'codec', child, call: () => new Promise((r) => { wake = r; s.write(p0.encodeFrame(codec.encode({ prog: 'storage', proc: 'listJobs', type: 'call', serial: serial++, status: 'ok', body: {} }))); }) });
}
for (const [i, dist] of dists.entries()) {
  const tag = dists.length > 1 ? `-${'AB'[i] ?? i}` : '';
  const p = i === 0 ? p0 : await import(join(dist, 'lib', 'protocol', 'index.js'));
  const path = join(work, `rpc${i}.sock`);
  const child = await startServer([dist, 'rpc', path]);
  const c = await p.RpcClient.connect(path, { clock: p.systemClock() });
  layers.push({ name: `rpc${tag}`, child, call: () => c.call('storage', 'listJobs', {}) });
  const root = join(work, `st${i}`);
  const st = spawn(join(dist, 'bin', 'virtstoraged.js'), ['--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(st);
  await new Promise((r) => st.stdout.once('data', r));
  st.stdout.resume();
  const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js'));
  const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20000 });
  layers.push({ name: `storaged${tag}`, child: st, call: () => sc.api.listJobs({}) });
}

for (const l of layers) l.s = { b2b: { wall: [], cli: [], srv: [], flt: [] }, idle: { wall: [], cli: [], srv: [], flt: [] } };
// Minor page faults of a process (/proc/PID/stat field 10).
const minflt = (pid) => { const t = readFileSync(`/proc/${pid}/stat`, 'utf8'); return Number(t.slice(t.lastIndexOf(')') + 2).split(' ')[7]); };
const timed = async (l, shape, keep) => {
  const f0 = minflt(l.child.pid); const s0 = cpuMs(l.child.pid); const c0 = process.cpuUsage(); const t0 = performance.now();
  await l.call();
  const t1 = performance.now(); const c1 = process.cpuUsage(c0); const s1 = cpuMs(l.child.pid); const f1 = minflt(l.child.pid);
  // The client's CPU excludes the /proc reads of the server's (taken outside it).
  if (!keep) return;
  l.s[shape].wall.push(t1 - t0); l.s[shape].cli.push((c1.user + c1.system) / 1000); l.s[shape].srv.push(s1 - s0); l.s[shape].flt.push(f1 - f0);
};
const loads = [loadavg()];
const WARM = 30;
for (let r = 0; r < WARM + ROUNDS; r++) {
  const order = r % 2 ? layers : [...layers].reverse();
  for (const l of order) {
    await sleep(20);
    await timed(l, 'idle', r >= WARM);
    for (let k = 0; k < BURST; k++) await timed(l, 'b2b', r >= WARM);
  }
}
loads.push(loadavg());
const f = (v) => v.toFixed(3);
const sorted = (a) => Float64Array.from(a).sort();
console.log(`load before ${loads[0]}, after ${loads[1]}; ${ROUNDS} rounds, burst ${BURST}; ms per call (p50 / p90)`);
console.log('layer        shape  wall p50  wall p90  client CPU p50  server CPU p50  server CPU mean  server faults/call');
for (const l of layers) for (const shape of ['b2b', 'idle']) {
  const s = l.s[shape];
  const mean = s.srv.reduce((a, b) => a + b, 0) / s.srv.length;
  console.log(`${l.name.padEnd(12)} ${shape.padEnd(5)} ${f(pct(sorted(s.wall), 50)).padStart(9)} ${f(pct(sorted(s.wall), 90)).padStart(9)} ${f(pct(sorted(s.cli), 50)).padStart(15)} ${f(pct(sorted(s.srv), 50)).padStart(15)} ${f(mean).padStart(16)} ${(s.flt.reduce((a, b) => a + b, 0) / s.flt.length).toFixed(2).padStart(19)}`);
}
for (const c of children) c.kill('SIGTERM');
await sleep(300);
rmSync(work, { recursive: true, force: true });
process.exit(0);
