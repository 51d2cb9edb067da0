#!/usr/bin/env node
// `virtq vol-upload` / `vol-download` of one volume as whole processes, A/B between builds and
// settings, interleaved round after round (issue #13, session 18). Each variant names the build of
// the CLI it runs, the build of the virtstoraged it talks to and that daemon's environment: one
// daemon per distinct (build, environment), each with its own root and pool (the source a hard
// link of one file, so every side reads the same blocks). Before every run: `sync` and, as root,
// drop_caches (the 1 GiB groups of run.mjs do the same). A durable floor row (cp to temp, sync,
// mv, sync DIR) runs in the same loop. Prints every run, then p50/p90 of wall ms, the CLI's CPU
// (user + system and system alone, /usr/bin/time) and the daemon's CPU (/proc) per variant.
//
//   node bench/storage/xfer-ab.mjs --src FILE [--rounds 7] VARIANTS.json
//
// VARIANTS.json: [{ "name": "A", "op": "download" | "upload" | "floor", "cli": DIST,
//   "daemon": DIST, "env": { ... } (the CLI's), "daemonEnv": { ... } }, ...]; FILE on the
// filesystem to test (it is hard-linked into each pool). A download's output and each upload's
// volume are compared with FILE (cmp) at the end.
import { execFileSync, spawn } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { cleanupRegistry, firstLine, loadavg, options, pct, procCpu, table } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 7);
const SRC = resolve(o.get('src', ''));
const file = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'))[0];
if (file === undefined || o.get('src') === undefined) { console.error('usage: xfer-ab.mjs --src FILE [--rounds N] VARIANTS.json'); process.exit(2); }
const variants = JSON.parse(readFileSync(file, 'utf8'));
const SIZE = statSync(SRC).size;
const cleanup = cleanupRegistry();
const work = cleanup.root(mkdtempSync(join(dirname(SRC), 'vq-xfer-ab-')));
const DROP = await Promise.resolve().then(() => { writeFileSync('/proc/sys/vm/drop_caches', '3'); return true; }).catch(() => false);

// One daemon per distinct build and environment, with a pool holding SRC and an upload target.
const daemons = new Map();
async function daemonFor(v) {
  const key = JSON.stringify([v.daemon, v.daemonEnv ?? {}]);
  if (daemons.has(key)) return daemons.get(key);
  const dir = join(work, `d${daemons.size}`);
  mkdirSync(join(dir, 'pool'), { recursive: true });
  linkSync(SRC, join(dir, 'pool', 'src.raw'));
  const child = cleanup.child(spawn(join(v.daemon, 'bin', 'virtstoraged.js'), ['--root', join(dir, 'root')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...v.daemonEnv } }));
  await firstLine(child);
  child.stdout.resume();
  const uri = `storage:///system?root=${join(dir, 'root')}`;
  const { connectStorage } = await import(join(v.daemon, 'lib', 'client', 'index.js'));
  const sc = await connectStorage(uri, { waitMs: 10_000 });
  await sc.api.definePool({ definition: { name: 'b', type: 'dir', path: join(dir, 'pool') } });
  await sc.api.startPool({ name: 'b' });
  await sc.api.createVolume({ pool: 'b', name: 'up.raw', format: 'raw', capacity: SIZE });
  sc.close();
  const d = { child, uri, dir };
  daemons.set(key, d);
  return d;
}
for (const v of variants) if (v.op !== 'floor') v.d = await daemonFor(v);

const timeFile = join(work, 'time.txt');
const timed = (cmd, args, env) => new Promise((res, rej) => {
  spawn('/usr/bin/time', ['-o', timeFile, '-f', '%U %S', cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } })
    .once('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
});
const daemonMs = (v) => (v.d === undefined ? 0 : procCpu(v.d.child.pid).cpuSec * 1000);
const out = join(work, 'out.raw');
const runs = {};
let lastWriter;
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(i + r) % variants.length];
    rmSync(out, { force: true });
    execFileSync('sync');
    if (DROP) writeFileSync('/proc/sys/vm/drop_caches', '3');
    const d0 = daemonMs(v);
    const t0 = performance.now();
    const cli = v.op === 'floor' ? undefined : join(v.cli, 'bin', 'virtq.js');
    if (v.op === 'download') await timed(cli, ['-c', v.d.uri, 'vol-download', 'b', 'src.raw', out], v.env);
    else if (v.op === 'upload') await timed(cli, ['-c', v.d.uri, 'vol-upload', 'b', 'up.raw', SRC], v.env);
    else await timed('sh', ['-c', `cp "${SRC}" "${out}.t" && sync "${out}.t" && mv "${out}.t" "${out}" && sync "${work}"`]);
    const wall = performance.now() - t0;
    if (v.op !== 'upload') lastWriter = v.name;
    const [u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    const x = { variant: v.name, round: r, wall: Math.round(wall), cpu: Math.round((u + s) * 1000), sys: Math.round(s * 1000), daemon: Math.round(daemonMs(v) - d0), load: loadavg().split(' ')[0] };
    (runs[v.name] ??= []).push(x);
    console.log(JSON.stringify(x));
  }
}
const same = (path) => { try { execFileSync('cmp', [path, SRC]); return 'same'; } catch { return 'DIFFERENT'; } };
for (const v of variants) if (v.op === 'upload') console.log(`${v.name}: uploaded volume ${same(join(v.d.dir, 'pool', 'up.raw'))} as the source`);
if (lastWriter !== undefined) console.log(`the last output file (${lastWriter}'s): ${same(out)} as the source`);
const q = (xs, k, p) => pct(Float64Array.from(xs.map((x) => x[k])).sort(), p);
console.log(`\n${variants.length} variants x ${ROUNDS} rounds, ${DROP ? 'page cache dropped before each run' : 'page cache NOT dropped (not root)'}, load after: ${loadavg()}\n`);
console.log(table(['variant', 'wall p50 / p90 ms', 'CLI CPU p50 / p90 ms', 'CLI system p50 ms', 'daemon CPU p50 / p90 ms'],
  variants.map((v) => { const xs = runs[v.name]; return [v.name, `${q(xs, 'wall', 50)} / ${q(xs, 'wall', 90)}`, `${q(xs, 'cpu', 50)} / ${q(xs, 'cpu', 90)}`, `${q(xs, 'sys', 50)}`, `${q(xs, 'daemon', 50)} / ${q(xs, 'daemon', 90)}`]; })));
cleanup.run();
