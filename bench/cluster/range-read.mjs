#!/usr/bin/env node
// etcd's part of the fleet listing alone: one Range over N name claims in a real three-member
// etcd, read by the etcd3 library (client/etcd-range.ts, what virtqemud uses) and by the fleet
// view's own reader (client/etcd-reader.ts: gRPC over node:http2, protobuf read by hand),
// interleaved call by call. Wall time, and this process's CPU time per read.
//   node bench/cluster/range-read.mjs [--claims 10000] [--rounds 30]
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, fmt, loadavg, machineFacts, now, options, summarize, table } from '../lib/common.mjs';
import { startEtcd } from './etcd.mjs';
import { fakeVm, hostId } from './fake-fleet.mjs';

const o = options();
const N = o.num('claims', 10_000);
const ROUNDS = o.num('rounds', 30);
const { Etcd3 } = await import('etcd3');
const { EtcdReader } = await import(join(REPO, 'dist/lib/client/etcd-reader.js'));
const { rangeAll } = await import(join(REPO, 'dist/lib/client/etcd-range.js'));
const { systemClock } = await import(join(REPO, 'dist/lib/protocol/index.js'));
const etcd = await startEtcd(process.env.VQ_BENCH_DISK ?? tmpdir());
const prefix = 'fleet-bench/names/';
const wall = { etcd3: [], reader: [] };
const cpu = { etcd3: [], reader: [] };
try {
  const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`), grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 } });
  for (let i = 0; i < N; i += 64) {
    const ops = [];
    for (let j = i; j < Math.min(N, i + 64); j++) {
      const vm = fakeVm(j % 50, Math.floor(j / 50));
      ops.push(client.put(`${prefix}${vm.name}`).value(JSON.stringify({ host: hostId(j % 50), uuid: vm.uuid })));
    }
    await client.if('fleet-bench/none', 'Version', '==', 0).then(...ops).commit();
  }
  const reads = {
    // A client per read, as `virtq fleet` makes one per listing (the etcd3 one stays loaded, as in a long-lived process).
    etcd3: async () => rangeAll(client, prefix, 50_000),
    reader: async () => {
      const r = new EtcdReader({ endpoints: etcd.endpoints, callMs: 5000 }, systemClock());
      try {
        return await r.rangePrefix(prefix, 50_000);
      } finally {
        r.close();
      }
    },
  };
  for (let i = 0; i < ROUNDS + 3; i++) {
    const order = Object.entries(reads);
    for (const [k, f] of i % 2 === 0 ? order : order.reverse()) {
      const t0 = now();
      const c0 = process.cpuUsage();
      const got = await f();
      const c = process.cpuUsage(c0);
      if (got.length !== N) throw new Error(`${k} read ${got.length} claims`);
      if (i < 3) continue;
      wall[k].push(now() - t0);
      cpu[k].push((c.user + c.system) / 1000);
    }
  }
  client.close();
} finally {
  await etcd.stop();
}
console.log(`${N} claims, ${ROUNDS} rounds, load ${loadavg()}, ${JSON.stringify(machineFacts())}`);
console.log(table(['ms', 'n', 'p50', 'p90', 'p99', 'CPU ms p50'], Object.keys(wall).map((k) => {
  const s = summarize(wall[k]);
  return [k === 'etcd3' ? 'etcd3 (rangeAll)' : 'etcd-reader.ts (gRPC over http2)', String(s.n), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(summarize(cpu[k]).p50)];
})));
