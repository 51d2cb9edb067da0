#!/usr/bin/env node
// One simulated host of bench/cluster/claims.mjs: a real EtcdMembership (virtqemud's member, from
// dist/lib) joined to the fleet, driven over stdin/stdout by JSON lines:
//   {"mode":"claim"|"txn","count":N}  ->  {"ms":[latency of each op]}
// "claim" is membership.claim(name, uuid), exactly what virtqemud's define awaits; "txn" is the
// bare etcd Txn of the same shape from a plain etcd3 client in this same process (the floor).
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO, now } from '../lib/common.mjs';

const [endpoints, prefix, hostId] = process.argv.slice(2);
const { EtcdMembership } = await import(join(REPO, 'dist/lib/aggregator/cluster/etcd-membership.js'));
const { systemClock, silentLogger } = await import(join(REPO, 'dist/lib/protocol/index.js'));
const { Etcd3 } = await import('etcd3');

const held = new Map();
const m = await EtcdMembership.create({
  uri: { endpoints: endpoints.split(','), prefix }, hostId, ttlSec: 10, clock: systemClock(), log: silentLogger(),
  self: { socket: '/nonexistent', roSocket: '/nonexistent', pid: process.pid },
  local: () => [...held].map(([name, uuid]) => ({ name, uuid })),
});
await m.start(10_000);
if (!m.available) throw new Error(`${hostId}: did not join`);
const raw = new Etcd3({ hosts: endpoints.split(',').map((e) => `http://${e}`) });
let seq = 0;
const ops = {
  claim: async () => {
    const name = `${hostId}-${seq++}`;
    const uuid = randomUUID();
    held.set(name, uuid);
    await m.claim(name, uuid);
  },
  txn: async () => {
    const name = `${prefix}/rawnames/${hostId}-${seq++}`;
    const uuid = `${prefix}/rawuuids/${randomUUID()}`;
    const r = await raw.if(name, 'Create', '==', 0).and(uuid, 'Create', '==', 0)
      .then(raw.put(name).value('{"host":"x","uuid":"y"}'), raw.put(uuid).value('{"host":"x","name":"y"}')).else(raw.get(name), raw.get(uuid)).commit();
    if (!r.succeeded) throw new Error('raw claim lost');
  },
};
// Warm both paths (connections, the client's first-call setup) before anything is measured.
for (let i = 0; i < 5; i++) { await ops.claim(); await ops.txn(); }
process.stdout.write('{"ready":true}\n');
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  if (cmd.mode === 'exit') break;
  const ms = [];
  for (let i = 0; i < cmd.count; i++) {
    const t0 = now();
    await ops[cmd.mode]();
    ms.push(now() - t0);
  }
  process.stdout.write(`${JSON.stringify({ ms })}\n`);
}
raw.close();
await m.close();
process.exit(0);
