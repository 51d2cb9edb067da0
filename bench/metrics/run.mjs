// Issue #6: latency and size of virtqemud's host-wide GET /metrics with 1, 20 and 50 running VMs
// (real shims, real QEMU running the idle guest), sequential scrapes, medians and tails.
//   node bench/metrics/run.mjs [--scrapes 50] [--sizes 1,20,50]
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cleanupRegistry, firstLine, fmt, idleDefinition, loadavg, machineFacts, now, options, snapshotDist, summarize, table, tmpRoot } from '../lib/common.mjs';

const opt = options();
const scrapes = opt.num('scrapes', 50);
const sizes = opt.get('sizes', '1,20,50').split(',').map(Number);
const cleanup = cleanupRegistry();
const dist = await snapshotDist('metrics');
const { RpcClient, systemClock } = await import(join(dist, 'lib/protocol/index.js'));

async function measure(n) {
  const root = cleanup.root(tmpRoot('vqm-'));
  const daemon = cleanup.child(spawn(process.execPath, [join(dist, 'bin/virtqemud.js'), '--root', root, '--http', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const ready = JSON.parse((await firstLine(daemon)).line);
  const client = await RpcClient.connect(join(root, 'run/virtqemud.sock'), { clock: systemClock(), defaultTimeoutMs: 300_000 });
  for (let i = 0; i < n; i += 10) {
    await Promise.all(Array.from({ length: Math.min(10, n - i) }, (_, k) => client.call('virtq', 'create', { definition: idleDefinition(`m${i + k}`) })));
  }
  const url = `http://127.0.0.1:${ready.httpPort}/metrics`;
  // Let a background refresh see every VM before measuring.
  for (let i = 0; i < 100 && ((await (await fetch(url)).text()).match(/^virtq_shim_up\{[^}]*\} 1$/gm) ?? []).length < n; i++) await new Promise((r) => setTimeout(r, 100));
  const ms = [];
  let bytes = 0;
  let up = 0;
  for (let i = 0; i < scrapes; i++) {
    const t0 = now();
    const text = await (await fetch(url)).text();
    ms.push(now() - t0);
    bytes = Buffer.byteLength(text);
    up = (text.match(/^virtq_shim_up\{[^}]*\} 1$/gm) ?? []).length;
  }
  client.close();
  await cleanup.drop(root);
  return { ...summarize(ms), n, up, bytes };
}

const facts = machineFacts();
const before = loadavg();
const rows = [];
for (const n of sizes) rows.push(await measure(n));
const after = loadavg();
console.log(`# virtqemud /metrics scrape (issue #6)\n\n${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, Linux ${facts.kernel}, ${facts.qemu}, Node ${facts.node}, ${facts.date}\nload before ${before}, after ${after}; ${scrapes} sequential scrapes each\n`);
console.log(table(['running VMs', 'shims up', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'bytes/scrape'],
  rows.map((r) => [r.n, r.up, fmt(r.p50), fmt(r.p90), fmt(r.p99), fmt(r.max), r.bytes])));
const at50 = rows.find((r) => r.n === 50);
if (at50 !== undefined) console.log(`\ntarget p50 ≤ 50 ms at 50 VMs: ${at50.p50 <= 50 ? 'met' : 'MISSED'} (${fmt(at50.p50)} ms)`);
cleanup.run();
