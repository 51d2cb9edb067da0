#!/usr/bin/env node
// One warm call traced on both sides (issue #13, session 19): virtstoraged and a StorageClient
// each under `strace -f -tt -T`, a noop (listJobs) and a create raw bracketed by marker stats on
// the client (newfstatat of /MARK-*) and marker getVolume calls on the daemon (lstat of
// MARK-*). Prints each side's system calls between its markers, with counts per call name.
//   node bench/rpc/trace-call.mjs [--dist DIR] [--op noop|create-raw] [--out DIR]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRegistry, options, REPO } from '../lib/common.mjs';

const o = options();
const DIST = o.get('dist', join(REPO, 'dist'));
const OP = o.get('op', 'noop');
const OUT = o.get('out', '/tmp/vq-trace-call');
mkdirSync(OUT, { recursive: true });
if (process.argv.includes('--client')) {
  // The client side, run as its own traced process.
  const [root] = process.argv.slice(process.argv.indexOf('--client') + 1);
  const { statSync } = await import('node:fs');
  const { connectStorage } = await import(join(DIST, 'lib', 'client', 'index.js'));
  const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20_000 });
  const op = OP === 'noop' ? () => sc.api.listJobs({}) : () => sc.api.createVolume({ pool: 'p', name: 'x.raw', format: 'raw', capacity: 1 << 30 });
  const undo = OP === 'noop' ? async () => {} : () => sc.api.deleteVolume({ pool: 'p', name: 'x.raw' });
  const mark = (n) => { try { statSync(`/MARK-${n}`); } catch { /* a marker */ } };
  for (let i = 0; i < 200; i++) { await op(); await undo(); }
  await new Promise((r) => setTimeout(r, 50));
  await sc.api.getVolume({ pool: 'p', name: 'MARK-BEGIN' }).catch(() => undefined);
  mark('BEGIN');
  await op();
  mark('END');
  await sc.api.getVolume({ pool: 'p', name: 'MARK-END' }).catch(() => undefined);
  await undo();
  sc.close();
  process.exit(0);
}
const cleanup = cleanupRegistry();
const work = cleanup.root(mkdtempSync('/var/tmp/vqtc-'));
const root = join(work, 'root');
const dTrace = join(OUT, `daemon-${OP}.txt`), cTrace = join(OUT, `client-${OP}.txt`);
const daemon = cleanup.child(spawn('strace', ['-f', '-tt', '-T', '-o', dTrace, '--', join(DIST, 'bin', 'virtstoraged.js'), '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] }));
daemon.stderr.resume();
await new Promise((resolve) => daemon.stdout.once('data', resolve));
daemon.stdout.resume();
const { connectStorage } = await import(join(DIST, 'lib', 'client', 'index.js'));
const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20_000 });
await sc.api.definePool({ definition: { name: 'p', type: 'dir', path: join(work, 'pool') } });
await sc.api.startPool({ name: 'p', build: true });
sc.close();
execFileSync('strace', ['-f', '-tt', '-T', '-o', cTrace, '--', process.execPath, new URL(import.meta.url).pathname, '--dist', DIST, '--op', OP, '--client', root], { stdio: 'inherit' });
await new Promise((resolve) => setTimeout(resolve, 300));
const segment = (file, begin, end) => {
  const lines = readFileSync(file, 'utf8').split('\n');
  const a = lines.findIndex((l) => l.includes(begin));
  const b = lines.findIndex((l, i) => i > a && l.includes(end));
  return lines.slice(a + 1, b);
};
const summary = (seg) => {
  const n = {};
  for (const l of seg) { const m = /^\d+ +[\d:.]+ (\w+)\(/.exec(l); if (m) n[m[1]] = (n[m[1]] ?? 0) + 1; }
  return n;
};
// Daemon: from the begin marker's reply write to the end marker's lstat.
const dSeg = segment(dTrace, 'MARK-BEGIN', 'MARK-END');
const cSeg = segment(cTrace, '/MARK-BEGIN', '/MARK-END');
writeFileSync(join(OUT, `daemon-${OP}.seg`), `${dSeg.join('\n')}\n`);
writeFileSync(join(OUT, `client-${OP}.seg`), `${cSeg.join('\n')}\n`);
console.log(JSON.stringify({ op: OP, dist: DIST, daemon: summary(dSeg), client: summary(cSeg), out: OUT }));
process.exit(0);
