// Shared QMP socket benchmark (issue #17, part 2). One shim running the idle guest (TCG), and in
// one run, side by side, round by round:
//   proxy-1     `query-status` through run/shims/NAME-qmp-proxy.sock, one client, one call at a time
//   rpc-raw     the same QMP command through virtq's own passthrough (qemuMonitorCommand over the
//               shim's read-write socket: CBOR RPC, the VM's job lock), one call at a time
//   proxy-8     eight clients on the shared socket at once, each one call at a time
// Per-call latency in µs: medians over the rounds of each round's p50 / p90 / p99.
//
//   npm run build && node bench/qmp-proxy/run.mjs [--calls N] [--rounds N]
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  REPO, cleanupRegistry, firstLine, fmt, idleDefinition, loadavg, machineFacts, median, now, options, qmpSession, summarize, table, tmpRoot,
} from '../lib/common.mjs';

const o = options();
const CALLS = o.num('calls', 2000);
const ROUNDS = o.num('rounds', 3);
const CLIENTS = 8;
const cleanup = cleanupRegistry();
const root = cleanup.root(tmpRoot('vq-bqp-'));
const { RpcClient, systemClock } = await import(join(REPO, 'dist', 'lib', 'protocol', 'index.js'));

const def = { ...idleDefinition('bqp'), qmpProxy: { allow: [] } };
const file = join(root, 'bqp.json');
writeFileSync(file, JSON.stringify(def));
const shim = cleanup.child(spawn(process.execPath, [join(REPO, 'dist', 'bin', 'virtq-shim.js'), '--root', root, '--no-register', '--definition', file], { stdio: ['ignore', 'pipe', 'inherit'] }));
const ready = JSON.parse((await firstLine(shim)).line);
if (!ready.ok) throw new Error(`shim failed: ${JSON.stringify(ready)}`);
const proxyPath = join(root, 'run', 'shims', 'bqp-qmp-proxy.sock');

async function proxyClient() {
  const socket = connect(proxyPath);
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const q = qmpSession(socket);
  await q.greeting;
  await q.execute('qmp_capabilities');
  return q;
}

async function timed(n, call) {
  const us = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await call();
    us.push((now() - t) * 1000);
  }
  return us;
}

const rpc = await RpcClient.connect(ready.socket, { clock: systemClock(), defaultTimeoutMs: 30_000 });
const one = await proxyClient();
const many = await Promise.all(Array.from({ length: CLIENTS }, () => proxyClient()));
const cases = {
  'proxy-1': async () => summarize(await timed(CALLS, () => one.execute('query-status'))),
  'rpc-raw': async () => summarize(await timed(CALLS, () => rpc.call('virtq', 'qemuMonitorCommand', { name: 'bqp', command: { execute: 'query-status' } }))),
  'proxy-8': async () => summarize((await Promise.all(many.map((c) => timed(Math.ceil(CALLS / CLIENTS), () => c.execute('query-status'))))).flat()),
};
// Warm-up, then rounds in alternating order.
for (const run of Object.values(cases)) await run();
const per = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? Object.keys(cases) : Object.keys(cases).reverse();
  for (const k of order) per[k].push(await cases[k]());
}
const facts = machineFacts();
console.log(`machine: ${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, kernel ${facts.kernel}, ${facts.qemu}, node ${facts.node}`);
console.log(`load average at the end: ${loadavg()}; ${CALLS} calls per case per round, ${ROUNDS} rounds`);
console.log(table(['case', 'p50 µs', 'p90 µs', 'p99 µs'], Object.entries(per).map(([k, list]) => [k, ...['p50', 'p90', 'p99'].map((p) => fmt(median(list.map((s) => s[p]))))])));
rpc.close();
one.close();
for (const c of many) c.close();
shim.kill('SIGKILL');
process.exit(0);
