#!/usr/bin/env node
// What replacing a save image costs on this filesystem (issue 16, session 15): an 88 MiB file
// (the test guest's image size), written and fsync'd, then replaced the ways a save can:
//   rename over      rename(new, old): the rename drops the old file's last name and frees it
//   rename, linked   the same with the old file still linked elsewhere (what the shim does now)
//   unlink old       dropping that other name afterwards (where the freeing went: after the reply)
//   O_TRUNC          open(old, O_TRUNC) of the old file, as raw QEMU's `exec:cat > FILE` does
// Wall ms per call, and the CPU of this process during the call (the rest is waiting on the disk).
//
//   node bench/save/replace-cost.mjs [--rounds 5] [--dir /tmp]
import { closeSync, fsyncSync, linkSync, mkdtempSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { fmt, loadavg, now, options, summarize, table } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const dir = mkdtempSync(join(o.get('dir', '/tmp'), 'vq-replace-'));
const chunk = randomFillSync(Buffer.alloc(2 ** 20));

function make(path) {
  const fd = openSync(path, 'w', 0o600);
  for (let i = 0; i < 88; i++) writeSync(fd, chunk);
  fsyncSync(fd);
  closeSync(fd);
}
function timed(into, fn) {
  const c = process.cpuUsage();
  const t = now();
  fn();
  into.wall.push(now() - t);
  const d = process.cpuUsage(c);
  into.cpu.push((d.user + d.system) / 1000);
}

const rows = { 'rename over': { wall: [], cpu: [] }, 'rename, linked': { wall: [], cpu: [] }, 'unlink old': { wall: [], cpu: [] }, 'O_TRUNC': { wall: [], cpu: [] } };
const A = join(dir, 'A');
const B = join(dir, 'B');
try {
  for (let r = 0; r < ROUNDS; r++) {
    make(A); make(B);
    timed(rows['rename over'], () => renameSync(B, A));
    make(B); linkSync(A, `${A}.old`);
    timed(rows['rename, linked'], () => renameSync(B, A));
    timed(rows['unlink old'], () => unlinkSync(`${A}.old`));
    make(A);
    timed(rows.O_TRUNC, () => closeSync(openSync(A, 'w')));
  }
  console.log(table(['step', 'wall p50 ms', 'wall p90 ms', 'CPU p50 ms'], Object.entries(rows).map(([k, v]) => [k, fmt(summarize(v.wall).p50), fmt(summarize(v.wall).p90), fmt(summarize(v.cpu).p50)])));
  console.log(`${ROUNDS} rounds, 88 MiB files in ${dir}; load ${loadavg()}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
