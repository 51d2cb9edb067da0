#!/usr/bin/env node
// virtqemud's start as CPU time, for a loaded machine and for builds of older commits (issue 15
// target 4): interleaved rounds of each build on an empty root (--shim-pool 0 where the build has
// it), spawn → ready line; CPU summed over all threads from /proc/PID/task/*/schedstat.
//   [MODE=node] node bench/virtqemud/start-cpu.mjs ROUNDS TREE...   (TREE: a checkout with dist/ built)
// MODE=shebang (default) runs dist/bin/virtqemud.js through its shebang; MODE=node runs `node FILE`
// (no heap flags). Older trees: `git archive REV | tar -x -C /tmp/rs-REV`, npm ci, npm run build.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const [rounds, ...dirs] = process.argv.slice(2);
const cpuMs = (pid) => readdirSync(`/proc/${pid}/task`).reduce((s, t) => {
  try { return s + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6; } catch { return s; }
}, 0);
const mode = process.env.MODE ?? 'shebang';
async function once(dir) {
  const bin = join(dir, 'dist', 'bin', 'virtqemud.js');
  const pool = readFileSync(bin, 'utf8').includes('--shim-pool N') ? ['--shim-pool', '0'] : [];
  const root = mkdtempSync(join(tmpdir(), 'rsp-'));
  const t0 = performance.now();
  const child = mode === 'shebang' ? spawn(bin, ['--root', root, ...pool], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [bin, '--root', root, ...pool], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  try {
    await new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(); });
      child.once('exit', (c) => reject(new Error(`${dir} exited ${c}: ${err}`)));
    });
    const wall = performance.now() - t0;
    // the shebang's env -S execs node: same pid
    return { cpu: cpuMs(child.pid), wall };
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
    rmSync(root, { recursive: true, force: true });
  }
}
const res = Object.fromEntries(dirs.map((d) => [d, []]));
const l0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
for (let i = 0; i < Number(rounds); i++) {
  for (let k = 0; k < dirs.length; k++) {
    const d = dirs[(i + k) % dirs.length];
    res[d].push(await once(d));
  }
}
const l1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
console.log(`mode ${mode}; load ${l0} -> ${l1}; ${rounds} rounds; ms p50 (p90)`);
console.log('| build | CPU to ready | wall to ready |');
for (const d of dirs) {
  const c = res[d].map((r) => r.cpu), w = res[d].map((r) => r.wall);
  console.log(`| ${d} | ${q(c, 50).toFixed(0)} (${q(c, 90).toFixed(0)}) | ${q(w, 50).toFixed(0)} (${q(w, 90).toFixed(0)}) |`);
}
