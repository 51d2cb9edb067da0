#!/usr/bin/env node
// The cost of a fleet-wide claim (issue 20), side by side in one run, rounds interleaved, against
// a real three-member etcd (Debian's etcd-server) on loopback started here:
//
//   etcd txn:         the claim itself, as virtqemud sends it: one Txn comparing both keys' create
//                     revision to 0 and putting the name and UUID claims (etcd3 client, gRPC)
//   define:           virtq define of a new VM through a virtqemud without --cluster
//   define --cluster: the same through a virtqemud with --cluster (local claim + etcd Txn + file)
//
// Each round defines (or claims) a fresh name, so every sample is a first claim.
//   node bench/cluster/run.mjs [--rounds 300] [--json FILE]      (after npm run build)
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcd } from './etcd.mjs';
import { firstLine, fmt, idleDefinition, killUnder, loadavg, machineFacts, now, options, REPO, sleep, summarize, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 300);
const { Etcd3 } = await import('etcd3');
const { RpcClient, typedClient, virtqProgram, systemClock, rootLayout, daemonSockets } = await import(join(REPO, 'dist/lib/protocol/index.js'));

async function startDaemon(root, extra) {
  const proc = spawn(process.execPath, [join(REPO, 'dist/bin/virtqemud.js'), '--root', root, '--reconcile-ms', '0', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
  const line = JSON.parse((await firstLine(proc)).line);
  if (!line.ok) throw new Error(JSON.stringify(line));
  const rpc = await RpcClient.connect(daemonSockets(rootLayout(root)).rw, { clock: systemClock(), defaultTimeoutMs: 30_000 });
  return { proc, rpc, api: typedClient(virtqProgram, rpc) };
}

const dir = tmpRoot('vq-bench-cluster-');
const etcd = await startEtcd(dir);
const prefix = `bench-${randomUUID().slice(0, 8)}`;
const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
const samples = { txn: [], plain: [], fleet: [] };
let plain;
let fleet;
try {
  plain = await startDaemon(join(dir, 'plain'), []);
  fleet = await startDaemon(join(dir, 'fleet'), ['--cluster', `etcd://${etcd.endpoints.join(',')}/${prefix}`, '--cluster-host', 'bench0']);
  const txn = async (i) => {
    const name = `${prefix}/names/raw${i}`;
    const uuid = `${prefix}/uuids/${randomUUID()}`;
    const t0 = now();
    const r = await client.if(name, 'Create', '==', 0).and(uuid, 'Create', '==', 0)
      .then(client.put(name).value('{"host":"bench"}'), client.put(uuid).value('{"host":"bench"}')).else(client.get(name), client.get(uuid)).commit();
    samples.txn.push(now() - t0);
    if (!r.succeeded) throw new Error('raw claim lost');
  };
  const define = async (d, out, name) => {
    const t0 = now();
    await d.api.define({ definition: idleDefinition(name) });
    out.push(now() - t0);
  };
  for (let i = 0; i < 20; i++) { await txn(`w${i}`); await define(plain, [], `w${i}`); await define(fleet, [], `w${i}`); }
  samples.txn.length = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const order = [() => txn(i), () => define(plain, samples.plain, `p${i}`), () => define(fleet, samples.fleet, `p${i}`)];
    for (const k of i % 2 === 0 ? order : order.reverse()) await k();
  }
} finally {
  client.close();
  for (const d of [plain, fleet]) { d?.rpc.close(); d?.proc.kill('SIGKILL'); }
  await etcd.stop();
  killUnder(dir);
  await sleep(200);
  rmSync(dir, { recursive: true, force: true });
}
const rows = [['etcd txn (the claim)', samples.txn], ['define (no --cluster)', samples.plain], ['define --cluster', samples.fleet]].map(([label, v]) => {
  const s = summarize(v);
  return [label, String(s.n), fmt(s.p50, 2), fmt(s.p90, 2), fmt(s.p99, 2), fmt(s.max, 1)];
});
console.log(`rounds ${ROUNDS}, load ${loadavg()}, ${JSON.stringify(machineFacts())}`);
console.log(table(['ms', 'n', 'p50', 'p90', 'p99', 'max'], rows));
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify(samples));
