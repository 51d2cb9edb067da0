#!/usr/bin/env node
// Where one create raw's wall time goes inside virtstoraged (issue #13, session 22): a
// StorageClient times listJobs and createVolume of a 1 GiB raw volume after 15 ms idle (as the
// storage bench's calls come), with the daemon left alone, or watched by `perf trace` filtered to
// the system calls that mark the steps (the request's read, the record's and the log's writes, the
// fsync on the thread pool, the reply's write), or profiled (`--cpu-prof` at 50 µs).
//
//   node bench/storage/create-timeline.mjs [--dist DIR] [--rounds 150] [--perf [--events read,write,fsync]] [--prof DIR]
//
// With --perf the trace is written to /tmp/vq-create-timeline.perf: on fd 23 (the client's
// connection) read = the request, write = the reply; fd 20 is the volume records' log.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRegistry, options, REPO } from '../lib/common.mjs';

const o = options();
const DIST = o.get('dist', join(REPO, 'dist'));
const ROUNDS = o.num('rounds', 150);
const PERF = o.has('perf');
const PROF = o.get('prof');
const cleanup = cleanupRegistry();
const work = cleanup.root(mkdtempSync('/var/tmp/vqct-'));
const root = join(work, 'root');
const profFlags = PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', PROF, '--cpu-prof-interval', '50'];
const daemon = cleanup.child(spawn(process.execPath, [...profFlags, join(DIST, 'bin', 'virtstoraged.js'), '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] }));
daemon.stderr.resume();
await new Promise((resolve) => daemon.stdout.once('data', resolve));
daemon.stdout.resume();
const { connectStorage } = await import(join(DIST, 'lib', 'client', 'index.js'));
const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20_000 });
await sc.api.definePool({ definition: { name: 'p', type: 'dir', path: join(work, 'pool') } });
await sc.api.startPool({ name: 'p', build: true });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const create = () => sc.api.createVolume({ pool: 'p', name: 'x.raw', format: 'raw', capacity: 1 << 30 });
const remove = () => sc.api.deleteVolume({ pool: 'p', name: 'x.raw' });
for (let i = 0; i < 50; i++) { await create(); await remove(); await sc.api.listJobs({}); }
let perf;
if (PERF) {
  perf = cleanup.child(spawn('perf', ['trace', '-e', o.get('events', 'read,write,fsync,fdatasync'), '-T', '-p', String(daemon.pid), '-o', '/tmp/vq-create-timeline.perf'], { stdio: 'inherit' }));
  await sleep(1500);
}
const noop = [];
const made = [];
const t = () => performance.now();
for (let i = 0; i < ROUNDS; i++) {
  await sleep(15);
  let a = t();
  await sc.api.listJobs({});
  noop.push(t() - a);
  await sleep(15);
  execFileSync('true'); // a process start between calls, as the bench's `sync`
  a = t();
  await create();
  made.push(t() - a);
  await sleep(5);
  await remove();
}
const q = (v, p) => [...v].sort((x, y) => x - y)[Math.floor(p * (v.length - 1))].toFixed(3);
console.log(JSON.stringify({ dist: DIST, rounds: ROUNDS, perf: PERF, prof: PROF ?? null, noop: { p50: q(noop, 0.5), p90: q(noop, 0.9) }, createRaw: { p50: q(made, 0.5), p90: q(made, 0.9) } }));
if (perf !== undefined) {
  perf.kill('SIGINT');
  await new Promise((resolve) => perf.once('exit', resolve));
}
sc.close();
// SIGTERM: the daemon exits by itself, so a --cpu-prof profile is written.
daemon.kill('SIGTERM');
await new Promise((resolve) => daemon.once('exit', resolve));
process.exit(0);
