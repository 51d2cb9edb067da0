#!/usr/bin/env node
// CPU of a 1 GiB volume download or upload through virtstoraged, per side (this process as the
// StorageClient, the daemon from /proc): under heavy load, CPU time separates two builds where
// wall time cannot. One build per run; run two builds alternately (A, B, A, B) to compare.
//
//   node bench/storage/stream-cpu.mjs DIST [dl-fn,dl-null,dl-cli,up,up-lent,up-cli] [rounds] SRC
//     DIST  a built dist/ inside a checkout (its node_modules resolve); SRC a 1 GiB file on the
//           filesystem to test (hard-linked into the pool, so it must be on the same one)
//   VERIFY=1 compares each uploaded volume with SRC (cmp) after its round
//   PROF_DIR=DIR also writes the daemon's --cpu-prof there (run this script itself with
//           `node --cpu-prof --cpu-prof-dir=DIR` for the client's)
// Prints, per variant, the medians of wall ms, client CPU ms and daemon CPU ms, and every round
// ([wall, client CPU, daemon CPU, daemon system CPU, client system CPU]);
// then the daemon's peak RSS.
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdirSync, linkSync, rmSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
const [dist, what = 'dl-fn,up', roundsS = '3', src] = process.argv.slice(2);
if (src === undefined) throw new Error('usage: stream-cpu.mjs DIST VARIANTS ROUNDS SRC');
const rounds = Number(roundsS);
const work = join(dirname(src), `stream-cpu-${process.pid}`); mkdirSync(join(work, 'pool'), { recursive: true });
linkSync(src, join(work, 'pool', 'src.raw'));
let child;
process.on('exit', () => { try { child?.kill('SIGKILL'); } catch {} });
child = spawn('node', [...(process.env.PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF_DIR}`] : []), join(dist, 'bin', 'virtstoraged.js'), '--root', join(work, 'root')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_TRIM_THRESHOLD_: '67108864' } });
if (process.env.PRINT_PID) console.error(`daemon pid ${child.pid}`);
const rl = createInterface({ input: child.stdout }); await new Promise((r) => rl.once('line', r)); child.stdout.resume();
const dstat = () => readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
const dcpu = () => { const f = dstat(); return (Number(f[11]) + Number(f[12])) * 10; };
const dsys = () => Number(dstat()[12]) * 10;
const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js'));
const sc = await connectStorage(`storage:///system?root=${join(work, 'root')}`, { waitMs: 10000 });
await sc.api.definePool({ definition: { name: 'b', type: 'dir', path: join(work, 'pool') } });
await sc.api.startPool({ name: 'b' });
const SIZE = 1024 ** 3;
await sc.api.createVolume({ pool: 'b', name: 'up.raw', format: 'raw', capacity: SIZE });
const out = join(work, 'out.raw');
const V = {
  'dl-fn': async () => { const fh = await open(out, 'w'); try { await sc.download('b', 'src.raw', async (c) => { await fh.write(c); }); } finally { await fh.close(); } },
  'dl-null': async () => { await sc.download('b', 'src.raw', async () => {}); },
  up: () => sc.upload('b', 'up.raw', createReadStream(src, { highWaterMark: 1 << 20 }), SIZE),
  // `virtq vol-upload` as a whole process, run as installed (its launcher, so the startup snapshot):
  // its CPU (user + system, from /usr/bin/time) is the client's.
  'up-cli': () => cliRun(['vol-upload', 'b', 'up.raw', src]),
  // `virtq vol-download` as a whole process (temp file, fsync, rename): its CPU as for up-cli.
  'dl-cli': () => cliRun(['vol-download', 'b', 'src.raw', out]),
  // As `virtq vol-upload` reads (cli/local-files.ts): two 1 MiB buffers in turn, each lent until the next is asked for.
  'up-lent': () => sc.upload('b', 'up.raw', lentReads(src), SIZE),
};
async function cliRun(args) {
  const out = join(work, 'time.txt');
  await new Promise((resolve, reject) => spawn('/usr/bin/time', ['-o', out, '-f', '%U %S', join(dist, 'bin', 'virtq.js'), '-c', `storage:///system?root=${join(work, 'root')}`, ...args], { stdio: 'ignore' })
    .once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`virtq ${args[0]} exited with ${code}`)))));
  const [u, s] = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { cpu: Math.round((u + s) * 1000), sys: Math.round(s * 1000) };
}
async function* lentReads(file) {
  const fh = await open(file, 'r');
  try {
    const ring = [Buffer.allocUnsafeSlow(1 << 20), Buffer.allocUnsafeSlow(1 << 20)];
    for (let k = 0; ; k++) {
      const { bytesRead } = await fh.read(ring[k % 2], 0, 1 << 20, null);
      if (bytesRead === 0) return;
      yield ring[k % 2].subarray(0, bytesRead);
    }
  } finally { await fh.close(); }
}
const res = {};
for (let r = 0; r < rounds; r++) for (const k of what.split(',')) {
  rmSync(out, { force: true });
  const c0 = process.cpuUsage(), d0 = dcpu(), s0 = dsys(), t0 = performance.now();
  const got = await V[k]();
  const c = process.cpuUsage(c0);
  // [wall, client CPU, daemon CPU, daemon system CPU, client system CPU] in ms (a CLI row: the CLI process's)
  const [cc, cs] = got?.cpu !== undefined ? [got.cpu, got.sys] : [Math.round((c.user + c.system) / 1000), Math.round(c.system / 1000)];
  (res[k] ??= []).push([Math.round(performance.now() - t0), cc, dcpu() - d0, dsys() - s0, cs]);
  // VERIFY=1: the uploaded volume must equal the source byte for byte (outside the timed part).
  if (process.env.VERIFY && k.startsWith('up')) execFileSync('cmp', [src, join(work, 'pool', 'up.raw')]);
}
for (const [k, v] of Object.entries(res)) {
  const med = (i) => { const a = v.map((x) => x[i]).sort((a, b) => a - b); return a[Math.floor(a.length / 2)]; };
  console.log(`${dist.split('/').pop()} ${k}: wall ${med(0)} clientCPU ${med(1)} daemonCPU ${med(2)}  all ${JSON.stringify(v)}`);
}
// Peak RSS of the daemon over the run: flow control must keep a 1 GiB transfer to a few MiB of buffers.
console.log(`daemon peak RSS (VmHWM): ${Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024)} MiB`);
sc.close(); child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
rmSync(work, { recursive: true, force: true });
