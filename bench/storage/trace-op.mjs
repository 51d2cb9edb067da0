#!/usr/bin/env node
// One virtstoraged operation under strace (issue #13): what the daemon does for a single create,
// clone or delete, system call by system call (files, fsyncs, processes). Counts are exact at
// any load; the times strace prints are not (it slows every call, and the machine is shared).
//
//   node bench/storage/trace-op.mjs [--dist DIR] [--op create-raw|create-qcow2|thin|full-raw|
//       full-qcow2|delete-thin|delete-data] [--mib 64] [--out FILE]
//
// The daemon runs under `strace -f -tt -T` from its start; the op is bracketed by two
// getVolume calls of marker names (their lstat shows in the trace), and the lines between them
// are printed, with a summary: fsyncs, processes spawned, files opened, renames/links/unlinks.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRegistry, options, REPO } from '../lib/common.mjs';
import { run, sh } from './sides.mjs';

const o = options();
const DIST = o.get('dist', join(REPO, 'dist'));
const OP = o.get('op', 'create-raw');
const SIZE = o.num('mib', 64) * 1024 * 1024;
const OUT = o.get('out', `/tmp/vq-trace-${OP}.txt`);
const cleanup = cleanupRegistry();
const work = cleanup.root(mkdtempSync('/var/tmp/vqtr-'));
const root = join(work, 'root');
const poolDir = join(work, 'pool');
const straceOut = join(work, 'strace.txt');

const child = cleanup.child(spawn('strace', ['-f', '-tt', '-T', '-o', straceOut, '-e', 'trace=%file,%desc,%process,fsync,fdatasync,sync_file_range', '--', join(DIST, 'bin', 'virtstoraged.js'), '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] }));
child.stderr.resume();
await new Promise((resolve) => child.stdout.once('data', resolve));
child.stdout.resume();
const { connectStorage } = await import(join(DIST, 'lib', 'client', 'index.js'));
const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20_000 });
await sc.api.definePool({ definition: { name: 'p', type: 'dir', path: poolDir } });
await sc.api.startPool({ name: 'p', build: true });
// Sources as the bench makes them: random data, raw and qcow2, put in the pool by hand.
await sh(`head -c ${SIZE} /dev/urandom > ${poolDir}/src.raw`);
await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(poolDir, 'src.raw'), join(poolDir, 'src.qcow2')]);
await sc.api.listVolumes({ pool: 'p' });
const setups = {
  'delete-thin': () => sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 'x.qcow2', thin: true }),
  'delete-data': () => sc.cloneVolume({ pool: 'p', source: 'src.raw', name: 'x.raw' }),
};
const ops = {
  'create-raw': () => sc.api.createVolume({ pool: 'p', name: 'x.raw', format: 'raw', capacity: SIZE }),
  'create-qcow2': () => sc.api.createVolume({ pool: 'p', name: 'x.qcow2', format: 'qcow2', capacity: SIZE }),
  thin: () => sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 'x.qcow2', thin: true }),
  'full-raw': () => sc.cloneVolume({ pool: 'p', source: 'src.raw', name: 'x.raw' }),
  'full-qcow2': () => sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 'x.qcow2' }),
  'delete-thin': () => sc.api.deleteVolume({ pool: 'p', name: 'x.qcow2' }),
  'delete-data': () => sc.api.deleteVolume({ pool: 'p', name: 'x.raw' }),
};
if (ops[OP] === undefined) throw new Error(`--op: one of ${Object.keys(ops).join(', ')}`);
// Once untimed (the daemon's code for the op loaded, its caches warm), then traced.
for (const round of [0, 1]) {
  await setups[OP]?.();
  if (round === 1) await sc.api.getVolume({ pool: 'p', name: 'MARK-BEGIN' }).catch(() => undefined);
  await ops[OP]();
  if (round === 1) await sc.api.getVolume({ pool: 'p', name: 'MARK-END' }).catch(() => undefined);
  if (round === 0) await sc.api.deleteVolume({ pool: 'p', name: OP.includes('raw') || OP === 'delete-data' ? 'x.raw' : 'x.qcow2' }).catch(() => undefined);
}
sc.close();
await new Promise((resolve) => setTimeout(resolve, 300));
const lines = readFileSync(straceOut, 'utf8').split('\n');
const a = lines.findIndex((l) => l.includes('MARK-BEGIN'));
const b = lines.findIndex((l) => l.includes('MARK-END'));
// From the reply to the begin marker's request to the end marker's request.
const seg = lines.slice(a + 1, b).filter((l) => !/epoll_|^\d+ +[\d:.]+ (read|write)\((\d+), .*(= -1 EAGAIN)/.test(l));
writeFileSync(OUT, `${seg.join('\n')}\n`);
const count = (re) => seg.filter((l) => re.test(l)).length;
console.log(JSON.stringify({
  op: OP, dist: DIST, lines: seg.length,
  fsync: count(/ (fsync|fdatasync)\(/), execve: count(/ execve\(/), clone: count(/ (clone|clone3|vfork)\(/),
  openat: count(/ openat\(/), rename: count(/ rename(at2?)?\(/), link: count(/ link(at)?\(/), unlink: count(/ unlink(at)?\(/),
  statfs: count(/ statfs\(/), out: OUT,
}));
process.exit(0);
