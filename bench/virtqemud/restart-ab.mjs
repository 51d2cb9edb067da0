#!/usr/bin/env node
// virtqemud kill -9 + restart → first complete listing, A/B between ways of starting it over the
// same shims, with the floors in the same rounds, as CPU (all threads, /proc/PID/task/*/schedstat)
// and wall time; NODE_EXTRA_CA_CERTS is unset for every process (issue 15 target 4, session 11):
//   node bench/virtqemud/restart-ab.mjs ROOT N ROUNDS 'NAME=CMD ARGS...' ...
// ROOT must hold N VMs whose shims run (restart-cpu.mjs makes them); CMD gets `--root ROOT
// --shim-pool 0` appended. Each round: kill -9 of the running virtqemud, spawn the next variant
// (interleaved, rotating the order), list until N rows, read its CPU, wait for the shims to
// re-register; then the floors: `node -e 0` and a bare node:net server answering one framed request.
// Session 15: the socket is awaited by lstat, not by a refused connect each millisecond (POLL=connect
// for the old way; bench/lib/socket-wait.mjs), and the shims' and this bench's own CPU between the
// kill and the listing are columns; a variant named NAME+frozen runs with the shims stopped.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { connectWhenBound, socketIdentity } from '../lib/socket-wait.mjs';
const [root, nStr, roundsStr, ...specs] = process.argv.slice(2);
const N = Number(nStr);
const variants = specs.map((s) => { const i = s.indexOf('='); return { name: s.slice(0, i), argv: s.slice(i + 1).split(' ') }; });
const here = new URL('../../dist/', import.meta.url).pathname;
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(here, 'lib', 'protocol', 'index.js'));
const clock = systemClock();
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const cpuMs = (pid) => readdirSync(`/proc/${pid}/task`).reduce((s, t) => { try { return s + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6; } catch { return s; } }, 0);
const exitOf = (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sock = daemonSockets(rootLayout(root)).rw;
// The shims' CPU (utime+stime from /proc/PID/stat, clock ticks) in the window kill → first complete
// listing: what re-registration costs while the new virtqemud starts (session 15).
const tick = 1000 / 100;
const shimPids = () => readdirSync(join(root, 'run', 'shims')).filter((f) => f.endsWith('.json')).map((f) => { try { return JSON.parse(readFileSync(join(root, 'run', 'shims', f), 'utf8')).shimPid; } catch { return undefined; } }).filter((p) => p !== undefined);
const ticksOf = (pid) => { try { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return Number(f[11]) + Number(f[12]); } catch { return 0; } };
const shimsCpu = (pids) => pids.reduce((s, p) => s + ticksOf(p), 0) * tick;
function start(v) {
  const t0 = performance.now();
  const child = spawn(v.argv[0], [...v.argv.slice(1), '--root', root, '--shim-pool', '0'], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const ready = new Promise((res, rej) => { let b = ''; child.stdout.on('data', (d) => { b += d; if (b.includes('\n')) res(JSON.parse(b.split('\n')[0])); }); child.once('exit', (c) => rej(new Error(`${v.name} exited ${c}`))); });
  ready.catch(() => undefined);
  return { child, t0, ready };
}
// POLL=connect: the old way, a connect every millisecond until one is accepted (each refused one
// costs this process ~0.5–1 ms of CPU while the daemon starts); by default lstat until bound anew.
const rpcConnect = (path) => RpcClient.connect(path, { clock, defaultTimeoutMs: 60_000 });
async function connectRetry(path, deadline, stale) {
  if (process.env.POLL !== 'connect') return connectWhenBound(path, rpcConnect, deadline, stale);
  for (;;) { try { return await rpcConnect(path); } catch (e) { if (performance.now() > deadline) throw e; await sleep(1); } }
}
const rawConnect = (path) => new Promise((res, rej) => { const c = connect(path); c.once('connect', () => res(c)); c.once('error', rej); });
async function floors() {
  let t0 = performance.now();
  const e = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore', env });
  await exitOf(e);
  const nodeE0 = performance.now() - t0;
  const path = join(root, 'floor.sock');
  rmSync(path, { force: true });
  t0 = performance.now();
  const srv = spawn(process.execPath, ['-e', `require('node:net').createServer((c) => c.once('data', (d) => c.end(d))).listen(process.argv[1])`, path], { stdio: 'ignore', env });
  let s;
  if (process.env.POLL !== 'connect') s = await connectWhenBound(path, rawConnect, t0 + 60_000, undefined);
  else for (;;) { try { s = await rawConnect(path); break; } catch { await sleep(1); } }
  const frame = Buffer.alloc(8); frame.writeUInt32BE(4, 0);
  await new Promise((r) => { s.once('data', r); s.write(frame); });
  const bare = performance.now() - t0;
  const bareCpu = cpuMs(srv.pid);
  s.destroy(); srv.kill('SIGKILL'); await exitOf(srv);
  return { nodeE0, bare, bareCpu };
}
let d = start(variants[0]);
await d.ready;
const rows = Object.fromEntries([...variants.map((v) => v.name), 'floor'].map((k) => [k, []]));
const l0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
for (let i = 0; i < Number(roundsStr); i++) {
  for (let k = 0; k < variants.length; k++) {
    const v = variants[(i + k) % variants.length];
    const pids = shimPids();
    const s0 = shimsCpu(pids);
    const stale = socketIdentity(sock);
    const b0 = process.cpuUsage();
    // A variant named NAME+frozen: the shims stopped from before the kill until the listing (the bound
    // without their re-registration; they resume and re-register after it).
    const frozen = v.name.endsWith('+frozen');
    if (frozen) for (const p of pids) process.kill(p, 'SIGSTOP');
    d.child.kill('SIGKILL'); await exitOf(d.child);
    const n = start(v);
    const rpc = await connectRetry(sock, n.t0 + 60_000, stale);
    let complete, cpu, shims, bench;
    for (;;) {
      const { domains } = await rpc.call('virtq', 'listDomains', {});
      if (domains.length === N) { complete = performance.now() - n.t0; cpu = cpuMs(n.child.pid); shims = shimsCpu(pids) - s0; const b = process.cpuUsage(b0); bench = (b.user + b.system) / 1000; if (frozen) for (const p of pids) process.kill(p, 'SIGCONT'); break; }
      await new Promise((r) => setImmediate(r));
    }
    const line = await n.ready;
    rpc.close();
    rows[v.name].push({ complete, cpu, shims, bench, recovery: line.recovered?.ms });
    d = n;
    await sleep(1500);
  }
  rows.floor.push(await floors());
}
const l1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const f = (a) => `${q(a, 50).toFixed(1)} (${q(a, 90).toFixed(1)})`;
console.log(`N=${N}; POLL=${process.env.POLL === 'connect' ? 'connect' : 'lstat'}; ${roundsStr} rounds per variant, interleaved; load ${l0} -> ${l1}; ms p50 (p90); NODE_EXTRA_CA_CERTS unset`);
console.log('| variant | first listing with all N (wall) | its CPU by then | the shims\' CPU kill → listing (10 ms ticks) | this bench\'s CPU kill → listing | recovery (own report) |');
for (const v of variants) { const r = rows[v.name]; console.log(`| ${v.name} | ${f(r.map((x) => x.complete))} | ${f(r.map((x) => x.cpu))} | ${f(r.map((x) => x.shims))} | ${f(r.map((x) => x.bench))} | ${f(r.map((x) => x.recovery))} |`); }
const fl = rows.floor;
console.log(`| floor: bare node:net server answering one request | ${f(fl.map((x) => x.bare))} | ${f(fl.map((x) => x.bareCpu))} | | | |`);
console.log(`| floor: node -e 0 | ${f(fl.map((x) => x.nodeE0))} | | | | |`);
d.child.kill('SIGTERM'); await exitOf(d.child);
