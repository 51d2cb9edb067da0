#!/usr/bin/env node
// Fleet-wide claims under load from several hosts (issue 20): 1, 3 and 10 simulated hosts, each a
// process running virtqemud's real EtcdMembership (claim-host.mjs), against a three-member etcd on
// loopback started here. Per round and per host count, every host runs `--ops` claims back to back
// (all hosts at once), then the same hosts run `--ops` bare etcd Txns of the same shape (the floor);
// the order alternates round by round. Reported: latency p50/p90/p99 of each op and the aggregate
// ops/s (all hosts' ops over the wall time of the slowest).
//
// --storage disk (default) puts etcd's data on the repository's disk; --storage tmpfs on /dev/shm,
// where fsync costs nothing: etcd without fsync, for comparison only (never a deployment).
//   node bench/cluster/claims.mjs [--rounds 5] [--ops 40] [--hosts 1,3,10] [--storage disk|tmpfs|both] [--json FILE]
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO, fmt, loadavg, machineFacts, now, options, summarize, table } from '../lib/common.mjs';
import { startEtcd } from './etcd.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const OPS = o.num('ops', 40);
const HOSTS = String(o.get('hosts', '1,3,10')).split(',').map(Number);
const STORAGE = o.get('storage', 'both') === 'both' ? ['disk', 'tmpfs'] : [o.get('storage', 'disk')];
const roots = { disk: process.env.VQ_BENCH_DISK ?? tmpdir(), tmpfs: '/dev/shm' };

function startHost(endpoints, prefix, id) {
  const proc = spawn(process.execPath, [join(REPO, 'bench/cluster/claim-host.mjs'), endpoints.join(','), prefix, id], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`host ${id} exited`);
    return JSON.parse(r.value);
  };
  return { proc, next, send: (cmd) => proc.stdin.write(`${JSON.stringify(cmd)}\n`) };
}

const results = [];
for (const storage of STORAGE) {
  const etcd = await startEtcd(roots[storage]);
  try {
    for (const n of HOSTS) {
      const prefix = `bench-${randomUUID().slice(0, 8)}`;
      const hosts = Array.from({ length: n }, (_, i) => startHost(etcd.endpoints, prefix, `h${i}`));
      try {
        for (const h of hosts) await h.next();
        const acc = { claim: { ms: [], rate: [] }, txn: { ms: [], rate: [] } };
        for (let r = 0; r < ROUNDS; r++) {
          for (const mode of r % 2 === 0 ? ['claim', 'txn'] : ['txn', 'claim']) {
            const t0 = now();
            for (const h of hosts) h.send({ mode, count: OPS });
            const replies = await Promise.all(hosts.map((h) => h.next()));
            const wall = now() - t0;
            for (const rep of replies) acc[mode].ms.push(...rep.ms);
            acc[mode].rate.push((n * OPS) / (wall / 1000));
          }
        }
        for (const mode of ['claim', 'txn']) {
          const s = summarize(acc[mode].ms);
          const rate = summarize(acc[mode].rate);
          results.push({ storage, hosts: n, mode, n: s.n, p50: s.p50, p90: s.p90, p99: s.p99, opsPerSec: rate.p50 });
        }
      } finally {
        for (const h of hosts) { h.send({ mode: 'exit' }); }
        await Promise.all(hosts.map((h) => new Promise((res) => { if (h.proc.exitCode !== null) res(); else { h.proc.once('exit', res); setTimeout(() => h.proc.kill('SIGKILL'), 5000).unref(); } })));
      }
    }
  } finally {
    await etcd.stop();
  }
}
console.log(`rounds ${ROUNDS} x ${OPS} ops per host, load ${loadavg()}, ${JSON.stringify(machineFacts())}`);
const label = { claim: 'claim (EtcdMembership.claim)', txn: 'bare etcd Txn' };
console.log(table(['etcd data', 'hosts', 'op', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'ops/s (median round)'],
  results.map((r) => [r.storage === 'tmpfs' ? 'tmpfs (no fsync; comparison only)' : 'disk', String(r.hosts), label[r.mode], String(r.n), fmt(r.p50, 2), fmt(r.p90, 2), fmt(r.p99, 2), fmt(r.opsPerSec, 0)])));
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify(results));
