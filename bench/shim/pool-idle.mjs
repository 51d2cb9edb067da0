#!/usr/bin/env node
// An idle pool shim's settled memory and the CPU it spent to get idle (issue 15 targets 1 and 2,
// session 14: the warm-up's cost), builds interleaved. Per round and build: a virtqemud with
// `--shim-pool 1`, its idle shim read 3 s after it appears (PSS, RSS from smaps_rollup; CPU from
// schedstat), then virtqemud is stopped.
//
//   node bench/shim/pool-idle.mjs [--rounds 3] --dist DIR[,DIR2]
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO, cleanupRegistry, cpuMs, exitOf, firstLine, fmt, loadavg, options, sleep, smapsRollup, summarize, tmpRoot } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 3);
const DISTS = o.get('dist', join(REPO, 'dist')).split(',');
const cleanup = cleanupRegistry();
const { RpcClient, systemClock } = await import(join(DISTS[0], 'lib', 'protocol', 'index.js'));
const rows = new Map(DISTS.map((d) => [d, []]));
const loadBefore = loadavg();
for (let round = 0; round < ROUNDS; round++) {
  for (const dist of round % 2 === 0 ? DISTS : [...DISTS].reverse()) {
    const root = cleanup.root(tmpRoot('vqidle-'));
    const d = cleanup.child(spawn(process.execPath, [join(dist, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', '1'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await firstLine(d);
    d.stdout.resume();
    const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud-admin.sock'), { clock: systemClock(), defaultTimeoutMs: 60_000 });
    let pid;
    for (let i = 0; i < 300 && pid === undefined; i++) {
      const info = await rpc.call('admin', 'serverInfo', {}).catch(() => undefined);
      pid = info?.details?.shimPool?.idle?.[0];
      if (pid === undefined) await sleep(50);
    }
    await sleep(3000);
    const m = smapsRollup(pid);
    rows.get(dist).push({ pss: m.pss / 1024, rss: m.rss / 1024, cpu: cpuMs(pid) });
    rpc.close();
    d.kill('SIGTERM');
    await exitOf(d);
  }
}
console.log(`load before ${loadBefore}, after ${loadavg()}; ${ROUNDS} rounds, builds interleaved\n`);
console.log('| build | idle pool shim PSS MiB p50 (p90) | RSS MiB | CPU to idle ms |\n| --- | --- | --- | --- |');
for (const [dist, r] of rows) {
  const s = (k) => { const x = summarize(r.map((v) => v[k])); return `${fmt(x.p50, 2)} (${fmt(x.p90, 2)})`; };
  console.log(`| ${dist} | ${s('pss')} | ${s('rss')} | ${s('cpu')} |`);
}
