#!/usr/bin/env node
// What a Node daemon needs for virtstoraged's small operations, beside virtstoraged itself (issue
// #13, session 27): a minimal server (one unix socket, one line per call, no framework) that makes
// a create raw the way virtstoraged does (temp O_EXCL, ftruncate, link, unlink, fsync of the
// descriptor in the thread pool), against one or more virtstoraged builds, interleaved round by
// round, each call after IDLE ms of idle (the bench's calls come after a pause too). p50/p90 ms of
// a noop (listJobs), a create raw of 1 GiB and its delete, timed by a client in this process that
// does not fork. The gap between the minimal server and a build is the framework's and the
// driver's own work; the minimal server's delete is a plain unlink, for scale only.
//   node bench/storage/node-floor.mjs ROUNDS IDLE_MS DIST...   (absolute dist paths)
import { fork, spawn } from 'node:child_process';
import { fsync, ftruncateSync, linkSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

if (process.argv[2] === '--minimal-server') {
  const [sock, dir] = process.argv.slice(3);
  let n = 0;
  net.createServer((c) => {
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'n') { c.write('ok\n'); continue; }
        const tmp = join(dir, `.t${n++}`);
        const fd = openSync(tmp, 'wx', 0o600);
        ftruncateSync(fd, 1 << 30);
        linkSync(tmp, join(dir, line.slice(2)));
        unlinkSync(tmp);
        fsync(fd, () => { closeSync(fd); c.write('ok\n'); });
      }
    });
  }).listen(sock, () => process.send?.('ready'));
} else {
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
    const child = fork(fileURLToPath(import.meta.url), ['--minimal-server', join(work, 'm.sock'), dir]);
    children.push(child);
    await new Promise((r) => child.once('message', r));
    const c = net.connect(join(work, 'm.sock'));
    await new Promise((r) => c.once('connect', r));
    let answered = () => undefined;
    c.on('data', () => answered());
    const call = (line) => new Promise((r) => { answered = r; c.write(`${line}\n`); });
    sides.push({ name: 'minimal Node server', noop: () => call('n'), create: (v) => call(`c ${v}`), del: async (v) => unlinkSync(join(dir, v)) });
  }
  for (const [i, dist] of dists.entries()) {
    const root = join(work, `r${i}`);
    const child = spawn(join(dist, 'bin', 'virtstoraged.js'), ['--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise((r) => createInterface({ input: child.stdout }).once('line', r));
    child.stdout.resume();
    const { connectStorage } = await import(`${join(dist, 'lib', 'client', 'index.js')}?${i}`);
    const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 10_000 });
    sides.push({
      name: dist,
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
}
