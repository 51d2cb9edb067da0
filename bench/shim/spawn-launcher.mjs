#!/usr/bin/env node
// QEMU's spawn from the shim against the launcher a pool shim pre-starts (issue 15 target 1,
// session 15; shim/vm/qemu-launcher.ts), in this process made about a settled shim's size
// (--heap-mib, touched). Interleaved rounds, each the exec of a tiny program that prints the wall
// clock (ns) the moment it runs:
//   direct    the shim's way before: child_process.spawn(file, args, {detached, stdio: [ignore, fd, fd, lifeline]})
//   launcher  the dist's startQemuLauncher, started ahead (not timed), then its spawner's spawn
// Per round: call → the program runs (wall, ms), this process's CPU in the call (user+sys, ms).
// The program is `/bin/date +%s%N` (a direct spawn and an exec by sh run the same binary).
//
//   node bench/shim/spawn-launcher.mjs [--rounds 40] [--heap-mib 12] [--objects 50000] [--dist DIR]
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, fmt, loadavg, options, sleep, summarize, table } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 40);
const HEAP = o.num('heap-mib', 12);
const DIST = o.get('dist', join(REPO, 'dist'));
const { startQemuLauncher } = await import(join(DIST, 'lib', 'shim', 'vm', 'qemu-launcher.js'));
const { childSpawner } = await import(join(DIST, 'lib', 'shim', 'vm', 'qemu-process.js'));
// A shim-sized process: JS heap objects and touched buffers (what fork copies page tables for).
const keep = [];
for (let i = 0; i < HEAP; i++) { const b = Buffer.allocUnsafe(1 << 20); b.fill(i); keep.push(b); }
const junk = Array.from({ length: o.num('objects', 50_000) }, (_, i) => ({ i, s: `x${i}` }));
const dir = mkdtempSync(join(tmpdir(), 'vq-spawnl-'));
const lifeline = openSync(join(dir, 'l.lifeline'), 'w+', 0o600);
const wallNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

async function round(kind, i) {
  const out = join(dir, `o${i}-${kind}`);
  const plain = childSpawner(undefined, process.env);
  let spawner = plain;
  if (kind === 'launcher') {
    const l = startQemuLauncher(lifeline, process.env);
    spawner = l.spawner(plain);
    await sleep(150); // the launcher is idle, as in a pool shim
  } else await sleep(150);
  // date's stdout is the "log": appended, then read back.
  const t0 = wallNs();
  const c0 = cpu();
  const p = spawner.spawn('/bin/date', ['+%s%N'], { logFile: out, inheritFds: [lifeline] });
  const callCpu = cpu() - c0;
  const callMs = Number(wallNs() - t0) / 1e6;
  await p.exited;
  const ran = BigInt(readFileSync(out, 'utf8').trim());
  return { toExec: Number(ran - t0) / 1e6, callMs, callCpu };
}

const rows = { direct: [], launcher: [] };
const before = loadavg();
for (let i = 0; i < 3; i++) { await round('direct', `w${i}`); await round('launcher', `w${i}`); } // first-use compiles, both
for (let i = 0; i < ROUNDS; i++) for (const k of (i % 2 === 0 ? ['direct', 'launcher'] : ['launcher', 'direct'])) rows[k].push(await round(k, i));
closeSync(lifeline);
rmSync(dir, { recursive: true, force: true });
const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
console.log(`load before ${before}, after ${loadavg()}; this process RSS ${fmt(rss)} MiB (${junk.length} objects, ${keep.length} MiB touched); ${ROUNDS} rounds interleaved; node ${process.version}`);
const line = (k, f) => { const s = summarize(rows[k].map((r) => r[f])); return [fmt(s.p50, 2), fmt(s.p90, 2)]; };
console.log(table(['', 'call → program runs p50', 'p90', 'spawn call wall p50', 'p90', 'spawn call CPU p50', 'p90'],
  ['direct', 'launcher'].map((k) => [k, ...line(k, 'toExec'), ...line(k, 'callMs'), ...line(k, 'callCpu')])));
