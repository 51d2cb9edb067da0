#!/usr/bin/env node
// The sh launcher heads alone (issue 15 target 4, session 14): each build's dist/bin/virtqemud.js
// second line, with node's exec replaced by /bin/true (a head that would run the bundle fails the
// run), run by /bin/sh N times per variant, interleaved, beside `exec /bin/true`. CPU is the waited
// children's utime+stime (/proc/self/stat, 10 ms ticks summed over N runs: the forked `command -v`
// subshell and `stat` included, which restart-ab.mjs's CPU column cannot see); wall p50/p90.
//   node bench/virtqemud/launcher-heads.mjs N NAME=PATH/dist/bin/virtqemud.js ...
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
const N = Number(process.argv[2] ?? 200);
const heads = { true: 'exec /bin/true --' };
for (const spec of process.argv.slice(3)) {
  const [name, file] = spec.split('=');
  const line = readFileSync(file, 'utf8').split('\n')[1].replace(/exec "\$n"/g, 'exec /bin/true').replace(/exec node/g, 'exec /bin/false').replace(/d=\$0;/, `d=${file};`);
  heads[name] = line;
}
const ticks = () => { const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' '); return Number(f[13]) + Number(f[14]); };
const res = Object.fromEntries(Object.keys(heads).map((k) => [k, { cpu: 0, wall: [] }]));
const l0 = readFileSync('/proc/loadavg', 'utf8').trim();
for (let i = 0; i < N; i++) for (const [k, h] of Object.entries(heads)) {
  const t0 = ticks(); const w0 = performance.now();
  const r = spawnSync('/bin/sh', ['-c', h, 'x', '--root', '/tmp/x'], { stdio: 'ignore', env: { PATH: process.env.PATH } });
  if (r.status !== 0) throw new Error(`${k}: ${r.status}`);
  res[k].wall.push(performance.now() - w0); res[k].cpu += ticks() - t0;
}
const q = (a, p) => a.sort((x, y) => x - y)[Math.floor(a.length * p)];
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(8), 'CPU ms/run', (v.cpu * 10 / N).toFixed(2), 'wall p50', q(v.wall, 0.5).toFixed(2), 'p90', q(v.wall, 0.9).toFixed(2));
console.log('load', l0, '->', readFileSync('/proc/loadavg', 'utf8').trim());
