#!/usr/bin/env node
// A warm (pool) shim's CPU after the hand-off — its definition written on stdin → its ready line — for
// two or more shim bundles, interleaved round by round (issue 15: what a shim flag costs target 1).
// Each bundle runs through its own shebang and should lie inside a "type": "module" package (see run.mjs).
//   node bench/shim/handoff-ab.mjs ROUNDS NAME=FILE NAME=FILE ...
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRegistry, cpuMs, exitOf, firstLine, idleDefinition, sleep, tmpRoot, median } from '../lib/common.mjs';
const cleanup = cleanupRegistry();
const R = cleanup.root(tmpRoot('vqho-'));
const rounds = Number(process.argv[2] ?? 6);
const bins = Object.fromEntries(process.argv.slice(3).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
const names = Object.keys(bins);
const out = Object.fromEntries(names.map((n) => [n, []]));
async function settled(pid) { let a = cpuMs(pid); for (;;) { await sleep(300); const b = cpuMs(pid); if (b - a < 1) return; a = b; } }
for (let r = 0; r < rounds; r++) {
  for (const k of names.map((_, i) => names[(i + r) % names.length])) {
    const name = `ho-${k}-${r}`;
    const child = cleanup.child(spawn(bins[k], ['--root', R, '--no-register', '--definition', '-'], { stdio: ['pipe', 'pipe', 'inherit'], env: process.env }));
    await sleep(100); await settled(child.pid);
    const c0 = cpuMs(child.pid);
    child.stdin.end(JSON.stringify(idleDefinition(name)));
    const { line } = await firstLine(child);
    const c1 = cpuMs(child.pid);
    child.stdout.resume();
    const rep = JSON.parse(line); if (!rep.ok) throw new Error(line);
    out[k].push(c1 - c0);
    const s = JSON.parse(readFileSync(join(R, 'run', 'shims', `${name}.json`), 'utf8'));
    for (const p of [s.qemuPid, rep.shimPid]) try { process.kill(p, 'SIGKILL'); } catch {}
    await exitOf(child);
  }
}
for (const k of Object.keys(out)) console.log(k, 'median', median(out[k]).toFixed(1), 'ms CPU after hand-off; all', out[k].map((x) => x.toFixed(0)).join(' '));
process.exit(0);
