#!/usr/bin/env node
// The fleet listing (issue 20): 10,000 VMs over 50 simulated hosts. etcd is a real three-member
// cluster on loopback started here and seeded with 50 host entries (under one lease) and 10,000
// name and UUID claims; the hosts are cheap fakes (fake-hosts.mjs: real RpcServers answering
// listDomains over read-only unix sockets, two processes of 25). Measured: readFleet of
// client/fleet-view.ts (what `virtq fleet` runs, in process) — this build's, and with
// `--baseline DIST` another build's, interleaved call by call — and `virtq fleet --json` end to
// end (a CLI process each time, run as a user runs it: dist/bin/virtq.js as a program, so with its
// startup snapshot; with --baseline, the baseline's CLI interleaved with it). The CPU column is this process's CPU time per readFleet (the
// client's own work), which the machine's load inflates less than the wall time.
//   node bench/cluster/listing.mjs [--hosts 50] [--vms 10000] [--calls 30] [--cli 10] [--baseline DIST] [--json FILE]
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { REPO, fmt, loadavg, machineFacts, now, options, summarize, table, tmpRoot } from '../lib/common.mjs';
import { startEtcd } from './etcd.mjs';
import { fakeVm, hostId } from './fake-fleet.mjs';

const o = options();
const HOSTS = o.num('hosts', 50);
const VMS = o.num('vms', 10_000);
const CALLS = o.num('calls', 30);
const CLI = o.num('cli', 10);
const BASELINE = o.get('baseline') === undefined ? undefined : resolve(o.get('baseline'));
const perHost = Math.ceil(VMS / HOSTS);
const { Etcd3 } = await import('etcd3');
const { systemClock } = await import(join(REPO, 'dist/lib/protocol/index.js'));
const impls = { current: (await import(join(REPO, 'dist/lib/client/fleet-view.js'))).readFleet };
if (BASELINE !== undefined) impls.baseline = (await import(join(BASELINE, 'lib/client/fleet-view.js'))).readFleet;

const dir = tmpRoot('vq-bench-fleet-');
const etcd = await startEtcd(process.env.VQ_BENCH_DISK ?? tmpdir());
const prefix = `fleet-${randomUUID().slice(0, 8)}`;
const farms = [];
const cpu = Object.fromEntries(Object.keys(impls).map((k) => [k, []]));
const clis = { cli: join(REPO, 'dist/bin/virtq.js'), ...(BASELINE === undefined ? {} : { cliBaseline: join(BASELINE, 'bin/virtq.js') }) };
const samples = Object.fromEntries([...Object.keys(impls), ...Object.keys(clis)].map((k) => [k, []]));
try {
  const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
  const lease = client.lease(600);
  for (let h = 0; h < HOSTS; h++) {
    await lease.put(`${prefix}/hosts/${hostId(h)}`).value(JSON.stringify({ host: hostId(h), pid: 1, socket: join(dir, `h${h}.sock`), roSocket: join(dir, `h${h}.ro.sock`), since: Date.now(), conflicts: [] }));
  }
  // 64 claims (128 puts, etcd's default --max-txn-ops) per Txn.
  const all = Array.from({ length: HOSTS }, (_, h) => Array.from({ length: perHost }, (_, i) => ({ h, ...fakeVm(h, i) }))).flat().slice(0, VMS);
  for (let i = 0; i < all.length; i += 64) {
    const ops = all.slice(i, i + 64).flatMap((v) => [
      client.put(`${prefix}/names/${v.name}`).value(JSON.stringify({ host: hostId(v.h), uuid: v.uuid })),
      client.put(`${prefix}/uuids/${v.uuid}`).value(JSON.stringify({ host: hostId(v.h), name: v.name })),
    ]);
    await client.if(`${prefix}/hosts/${hostId(0)}`, 'Version', '>', 0).then(...ops).commit();
  }
  const half = Math.ceil(HOSTS / 2);
  for (const [first, count] of [[0, half], [half, HOSTS - half]]) {
    const p = spawn(process.execPath, [join(REPO, 'bench/cluster/fake-hosts.mjs'), dir, String(first), String(count), String(perHost)], { stdio: ['pipe', 'pipe', 'inherit'] });
    farms.push(p);
    const first1 = await createInterface({ input: p.stdout })[Symbol.asyncIterator]().next();
    if (first1.done) throw new Error('fake hosts exited');
  }
  const cluster = { endpoints: etcd.endpoints, prefix };
  const check = (view) => {
    const up = view.hosts.filter((x) => x.state === 'up').length;
    const known = view.domains.filter((d) => d.state === 'running').length;
    if (view.domains.length !== VMS || up !== HOSTS || known !== VMS) throw new Error(`listed ${view.domains.length} VMs (${known} with a state) and ${up} hosts up`);
  };
  for (const f of Object.values(impls)) for (let i = 0; i < 3; i++) check(await f(cluster, systemClock()));
  for (let i = 0; i < CALLS; i++) {
    const order = Object.entries(impls);
    for (const [k, f] of i % 2 === 0 ? order : order.reverse()) {
      const t0 = now();
      const c0 = process.cpuUsage();
      check(await f(cluster, systemClock()));
      samples[k].push(now() - t0);
      const c = process.cpuUsage(c0);
      cpu[k].push((c.user + c.system) / 1000);
    }
  }
  for (let i = 0; i < CLI; i++) {
    const order = Object.entries(clis);
    for (const [k, bin] of i % 2 === 0 ? order : order.reverse()) {
      const t0 = now();
      // GNU time reports the CLI process's own CPU time (user + system), which load inflates less than its wall time.
      const rusage = join(dir, 'cli-time.txt');
      const { stdout } = await promisify(execFile)('/usr/bin/time', ['-f', '%U %S', '-o', rusage, bin, 'fleet', '--cluster', `etcd://${etcd.endpoints.join(',')}/${prefix}`, '--json'], { maxBuffer: 64 << 20 });
      samples[k].push(now() - t0);
      (cpu[k] ??= []).push(readFileSync(rusage, 'utf8').trim().split(/\s+/).reduce((sum, x) => sum + Number(x) * 1000, 0));
      if (JSON.parse(stdout).length !== VMS) throw new Error('virtq fleet listed the wrong count');
    }
  }
  lease.release();
  client.close();
} finally {
  for (const p of farms) p.kill('SIGKILL');
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
}
const label = { current: 'readFleet (this build)', baseline: `readFleet (baseline ${BASELINE})`, cli: 'virtq fleet --json (CLI process, end to end)', cliBaseline: `virtq fleet --json (baseline CLI process)` };
console.log(`${VMS} VMs on ${HOSTS} fake hosts, ${CALLS} calls, load ${loadavg()}, ${JSON.stringify(machineFacts())}`);
console.log(table(['ms', 'n', 'p50', 'p90', 'p99', 'max', 'CPU ms p50 (this process; CLI rows: the CLI process)'], Object.entries(samples).filter(([, v]) => v.length > 0).map(([k, v]) => {
  const s = summarize(v);
  return [label[k], String(s.n), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max), cpu[k] === undefined ? '–' : fmt(summarize(cpu[k]).p50)];
})));
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify({ samples, cpu }));
