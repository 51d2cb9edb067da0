#!/usr/bin/env node
// What a Node daemon needs for virtstoraged's small operations, beside virtstoraged itself (issue
// #13, session 27): the minimal server of node-min.mjs (one unix socket, one line per call, no
// framework, the same file steps as virtstoraged's create raw and delete) against one or more
// virtstoraged builds, interleaved round by round, each call after IDLE ms of idle (the bench's
// calls come after a pause too). p50/p90 ms of a noop (listJobs), a create raw of 1 GiB and its
// delete, timed by a client in this process that does not fork. The gap between the minimal
// server and a build is the framework's and the driver's own work.
//   node bench/storage/node-floor.mjs ROUNDS IDLE_MS DIST...   (absolute dist paths)
// A DIST given as FLAGS@DIST runs that virtstoraged as `node FLAGS DIST/bin/virtstoraged.js` (FLAGS
// comma-separated, e.g. --max-semi-space-size=2@/abs/dist): one build under other V8 flags (session 36).
// Builds from 38f6dd7 on set --interrupt-budget themselves once they serve (daemon/v8-tiering.ts),
// over one given here; session 36 compared budgets on the build before it.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { minimalServer } from './node-min.mjs';

const [ROUNDS, IDLE, ...dists] = process.argv.slice(2);
const rounds = Number(ROUNDS ?? 100), idle = Number(IDLE ?? 15), WARM = 5;
const work = mkdtempSync('/var/tmp/vqnf-');
const children = [];
const stop = () => { for (const c of children) c.kill('SIGKILL'); rmSync(work, { recursive: true, force: true }); };
process.on('exit', stop);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sides = [];
{
  const dir = join(work, 'minimal');
  mkdirSync(dir);
  const srv = await minimalServer(dir);
  children.push(srv.child);
  sides.push({ name: 'minimal Node server', noop: () => srv.call('n'), create: (v) => srv.call(`c ${v} ${2 ** 30}`), del: (v) => srv.call(`d ${v}`) });
}
for (const [i, given] of dists.entries()) {
  const root = join(work, `r${i}`);
  const [flags, dist] = given.includes('@') ? [given.slice(0, given.indexOf('@')).split(','), given.slice(given.indexOf('@') + 1)] : [[], given];
  const bin = join(dist, 'bin', 'virtstoraged.js');
  // Through its shebang unless flags are given; then under node with them, and the shebang's
  // environment (`env -S NAME=VALUE... node`: its malloc settings) taken from the bin itself.
  const shebangEnv = Object.fromEntries(readFileSync(bin, 'utf8').split('\n', 1)[0].split(' ').filter((w) => /^[A-Z_]+=/.test(w)).map((w) => w.split('=')));
  const child = flags.length === 0
    ? spawn(bin, ['--root', root], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [...flags, bin, '--root', root], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...shebangEnv } });
  children.push(child);
  await new Promise((r) => createInterface({ input: child.stdout }).once('line', r));
  child.stdout.resume();
  const { connectStorage } = await import(`${join(dist, 'lib', 'client', 'index.js')}?${i}`);
  const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 10_000 });
  sides.push({
    name: given,
    noop: () => sc.api.listJobs({}),
    create: (v) => sc.api.createVolume({ pool: 'default', name: v, format: 'raw', capacity: 1 << 30 }),
    del: (v) => sc.api.deleteVolume({ pool: 'default', name: v }),
  });
}
const times = sides.map(() => ({ noop: [], create: [], delete: [] }));
const timed = async (f) => { await sleep(idle); const t0 = performance.now(); await f(); return performance.now() - t0; };
for (let r = 0; r < rounds + WARM; r++) {
  for (const [i, s] of sides.entries()) {
    const v = `v${r}`;
    const t = { noop: await timed(s.noop), create: await timed(() => s.create(v)), delete: await timed(() => s.del(v)) };
    if (r >= WARM) for (const k of Object.keys(t)) times[i][k].push(t[k]);
  }
}
const q = (a, p) => [...a].sort((x, y) => x - y)[Math.floor(a.length * p)].toFixed(2);
console.log(`${rounds} rounds, ${idle} ms idle before each call, load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const [i, s] of sides.entries()) {
  console.log(`${s.name}: ${Object.entries(times[i]).map(([k, v]) => `${k} p50 ${q(v, 0.5)} p90 ${q(v, 0.9)}`).join(', ')}`);
}
process.exit(0);
