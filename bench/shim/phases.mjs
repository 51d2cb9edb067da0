#!/usr/bin/env node
// Phase-by-phase breakdown of one shim start (issue #15), from syscall timestamps: the shim runs
// under `strace -f --seccomp-bpf` tracing only the calls that mark a phase (execve, openat, bind,
// accept4, write, fsync), so untraced work runs at full speed. Phases:
//   bootstrap      execve(node) → openat(the bundle)             Node's own start, flags parsed
//   evaluation     → openat(the definition)                      the bundle's modules evaluated, main
//   to locks       → openat(lockspace marker | execve flock)     definition checked, dirs made, logs
//   lock manager   → openat(QEMU capability cache)               plugin load, flock self-check
//   caps + binds   → the last bind of the shim's sockets          capabilities (cached), services
//   leases         → execve(qemu)                                lifeline (a flock(1) child), argv
//   QEMU to QMP    → accept4(monitor)                            QEMU's exec and start
//   greeting       → write(qmp_capabilities)                     QMP greeting read
//   caps → cont    → write(cont)                                 capabilities reply, start steps
//   cont → ready   → write(1, ready line)                        cont reply, state file, journal
// strace adds its own cost to each traced call; the untraced total is measured alongside.
//
//   node bench/shim/phases.mjs [--runs 7] [--dist DIR[,DIR2]]    (needs strace; build first)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, firstLine, fmt, idleDefinition, loadavg, machineFacts, now, options, summarize, table } from '../lib/common.mjs';

const o = options();
const RUNS = o.num('runs', 7);
// --dist A,B: two builds (e.g. main's and this branch's), interleaved run by run, one table each.
const DISTS = o.get('dist', join(REPO, 'dist')).split(',');
const root = mkdtempSync(join(tmpdir(), 'vqph-'));

function parse(file, defFile) {
  const t = {};
  const mark = (k, v) => { if (t[k] === undefined) t[k] = v; };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+)\s+([\d.]+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const ts = Number(m[2]) * 1000;
    const call = m[3];
    if (/= -1 [A-Z]/.test(call)) continue; // a failed call (execvp's PATH search, a missing file) marks nothing
    if (call.startsWith('execve("/usr/bin/node"') || /^execve\("[^"]*node"/.test(call)) mark('node', ts);
    else if (call.includes('virtq-shim.js", O_RDONLY')) mark('bundle', ts);
    else if (call.startsWith('openat(') && call.includes(`"${defFile}"`)) mark('definition', ts);
    else if (call.includes('flock-checked.json') || (call.startsWith('execve(') && call.includes('"-s", '))) mark('locks', ts);
    else if (call.includes('qemu-caps-')) mark('caps', ts);
    else if (call.startsWith('bind(') && t.qemu === undefined) t.binds = ts;
    else if (/^execve\("[^"]*qemu-system/.test(call)) mark('qemu', ts);
    else if (call.startsWith('accept4(') && t.qemu !== undefined) mark('monitor', ts);
    else if (call.includes('qmp_capabilities')) mark('greeting', ts);
    else if (call.includes('\\"execute\\":\\"cont\\"')) mark('cont', ts);
    else if (call.startsWith('write(1, "{\\"ok\\"')) mark('ready', ts);
    if (/^f(data)?sync\(/.test(call) && t.ready === undefined) t.fsyncs = (t.fsyncs ?? 0) + 1;
    if (/^execve\("[^"]*flock"/.test(call) && t.ready === undefined) t.flocks = (t.flocks ?? 0) + 1;
  }
  return t;
}

const ORDER = ['node', 'bundle', 'definition', 'locks', 'caps', 'binds', 'qemu', 'monitor', 'greeting', 'cont', 'ready'];
const NAMES = ['bootstrap', 'evaluation', 'to locks', 'lock manager', 'caps + binds', 'leases', 'QEMU to QMP', 'greeting', 'caps → cont', 'cont → ready'];

async function run(name, traced, SHIM) {
  const def = join(root, `${name}.json`);
  writeFileSync(def, JSON.stringify(idleDefinition(name)));
  const trace = join(root, `${name}.strace`);
  const args = ['--root', root, '--no-register', '--definition', def];
  const t0 = now();
  const child = traced
    ? spawn('strace', ['-f', '--seccomp-bpf', '-ttt', '-s', '60', '-e', 'trace=execve,openat,bind,accept4,write,fsync,fdatasync', '-o', trace, SHIM, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(SHIM, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const { line, at } = await firstLine(child);
  const reply = JSON.parse(line);
  if (!reply.ok) throw new Error(line);
  child.stdout.resume();
  process.kill(reply.qemuPid, 'SIGKILL');
  await new Promise((r) => child.once('close', r));
  return { total: at - t0, ...(traced ? parse(trace, def) : {}) };
}

const facts = { ...machineFacts(), loadBefore: loadavg() };
const shims = DISTS.map((d) => join(d, 'bin', 'virtq-shim.js'));
for (const s of shims) await run(`warmup${shims.indexOf(s)}`, false, s); // probes QEMU's capabilities into the cache, as any first start
const all = shims.map(() => ({ traced: [], plain: [] }));
for (let i = 0; i < RUNS; i++) {
  for (let k = 0; k < shims.length; k++) {
    const j = (k + i) % shims.length;
    all[j].plain.push(await run(`p${i}-${j}`, false, shims[j]));
    all[j].traced.push(await run(`t${i}-${j}`, true, shims[j]));
  }
}
rmSync(root, { recursive: true, force: true });
console.log(`machine: ${facts.cpu}, ${facts.nproc} vCPU, node ${facts.node}, ${facts.qemu}; load before ${facts.loadBefore}, after ${loadavg()}; ${RUNS} runs each, interleaved`);
for (const [j, { traced, plain }] of all.entries()) {
const rows = NAMES.map((n, i) => {
  const deltas = traced.map((t) => t[ORDER[i + 1]] - t[ORDER[i]]).filter((v) => Number.isFinite(v));
  const s = summarize(deltas);
  return [n, fmt(s.p50), fmt(s.p90)];
});
const whole = summarize(traced.map((t) => t.ready - t.node));
rows.push(['execve(node) → ready (traced)', fmt(whole.p50), fmt(whole.p90)]);
rows.push(['spawn → ready line, untraced', fmt(summarize(plain.map((p) => p.total)).p50), fmt(summarize(plain.map((p) => p.total)).p90)]);
console.log(`\n${DISTS[j]}: flock(1) children per start: ${traced.map((t) => t.flocks ?? 0).join(', ')}; fsyncs before the ready line: ${traced.map((t) => t.fsyncs ?? 0).join(', ')}\n`);
console.log(table(['phase', 'p50 ms', 'p90 ms'], rows));
}

