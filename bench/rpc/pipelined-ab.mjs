#!/usr/bin/env node
// Pipelined calls through RpcClient, several builds interleaved (issue #13, session 19): each
// dist's client keeps INFLIGHT listJobs calls in flight against its own RpcServer (layers-server.mjs
// rpc, a noop) for MS ms per round; calls/s and client CPU per call, medians over rounds.
//   env -u NODE_EXTRA_CA_CERTS nice -n 5 node bench/rpc/pipelined-ab.mjs DIST_A,DIST_B [--rounds 7] [--ms 1000] [--inflight 64]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg, options, pct, sleep } from '../lib/common.mjs';

const o = options();
const dists = process.argv[2].split(',');
const ROUNDS = Number(o.get('rounds', '7')); const MS = Number(o.get('ms', '1000')); const INFLIGHT = Number(o.get('inflight', '64'));
const work = mkdtempSync('/var/tmp/vqpipe-');
const here = new URL('.', import.meta.url).pathname;
const sides = [];
for (const [i, dist] of dists.entries()) {
  const path = join(work, `s${i}.sock`);
  const child = spawn(process.execPath, [join(here, 'layers-server.mjs'), dist, 'rpc', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout.once('data', r));
  const p = await import(join(dist, 'lib', 'protocol', 'index.js'));
  const c = await p.RpcClient.connect(path, { clock: p.systemClock() });
  sides.push({ dist, child, c, rate: [], cpu: [] });
}
const run = async (s) => {
  let n = 0; let stop = false;
  const c0 = process.cpuUsage(); const t0 = performance.now();
  const lane = async () => { while (!stop) { await s.c.call('storage', 'listJobs', {}); n++; } };
  const lanes = Array.from({ length: INFLIGHT }, lane);
  await sleep(MS); stop = true; await Promise.all(lanes);
  const t = performance.now() - t0; const c = process.cpuUsage(c0);
  return { rate: n / (t / 1000), cpu: (c.user + c.system) / n };
};
const loads = [loadavg()];
for (let r = 0; r < ROUNDS + 1; r++) {
  for (const s of r % 2 ? sides : [...sides].reverse()) {
    const m = await run(s);
    if (r > 0) { s.rate.push(m.rate); s.cpu.push(m.cpu); }
  }
}
loads.push(loadavg());
const med = (a) => pct(Float64Array.from(a).sort(), 50);
console.log(`load ${loads.join(' -> ')}; ${ROUNDS} rounds of ${MS} ms, ${INFLIGHT} in flight`);
for (const s of sides) console.log(`${s.dist}: ${Math.round(med(s.rate))} calls/s (rounds ${s.rate.map((x) => Math.round(x)).join(' ')}), client CPU ${med(s.cpu).toFixed(2)} µs/call`);
for (const s of sides) { s.c.close(); s.child.kill('SIGTERM'); }
await sleep(200); rmSync(work, { recursive: true, force: true }); process.exit(0);
