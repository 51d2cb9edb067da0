#!/usr/bin/env node
// Phase-by-phase breakdown of a warm start through virtqemud (issue #15): `create` to a virtqemud
// with its default pool of one warm shim. virtqemud runs under `strace -f --seccomp-bpf`, so its
// pool shims and their children are traced too, tracing only the calls that mark a phase;
// untraced starts and raw QEMU (the shim's argv, -S + QMP cont) run interleaved beside them.
// Each mark is the first such call after the bench sent `create` (strace's -ttt clock is the
// same wall clock as performance.timeOrigin + now()):
//   to hand-off    create sent → virtqemud writes the definition to the idle shim's stdin
//   to locks       → openat(lockspace marker)                    definition read and checked, dirs, logs
//   lock manager   → openat(QEMU capability cache)               plugin load (self-check cached)
//   caps + rw bind → the first bind (the VM's socket: its name)  capabilities, services
//   rw bind → lease → execve(flock)                              ro/admin binds, the register round
//                                                                trip, console + monitor binds, argv
//   lease → QEMU   → execve(qemu)                                the lifeline's flock(1) child
//   QEMU to QMP    → accept4 (monitor)                           QEMU's exec and start
//   greeting       → write(qmp_capabilities)
//   caps → cont    → write(cont)
//   cont → state   → openat(the state file's temp)               cont's reply, lifecycle
//   state → ready  → write(1, ready line)                        state file, journal, qmp proxy, update flush
//   ready → reply  → the bench has create's reply                virtqemud relays the outcome
// (A disk-less VM of a pool shim with a spare lifeline has no flock(1) child: no lease mark, see "rw bind → QEMU".)
// Beside them, untraced: the pool shim's CPU time (all threads, schedstat) from the hand-off to the reply.
// Beside them: when the shim connected to virtqemud's socket (its registrar), from the hand-off, and
// its `register` round trip (written → reply read) against QEMU's exec.
//
//   node bench/shim/phases-vqd.mjs [--runs 7] [--dist DIR[,DIR2]]    (needs strace; build first)
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  distBench, exitOf, firstLine, fmt, idleDefinition, loadavg, machineFacts, now, rawQemuStart, shimArgv, sleep,
  summarize, table, tmpRoot,
} from '../lib/common.mjs';

const { RUNS, DISTS, cleanup, wall } = distBench(7);
const { RpcClient, systemClock } = await import(join(DISTS[0], 'lib', 'protocol', 'index.js'));
const clock = systemClock();

const MARKS = ['call', 'handed', 'locks', 'caps', 'bindRw', 'flock', 'qemu', 'monitor', 'greeting', 'cont', 'state', 'ready', 'reply'];
const NAMES = ['to hand-off', 'to locks', 'lock manager', 'caps + rw bind', 'rw bind → lease', 'lease → QEMU', 'QEMU to QMP', 'greeting', 'caps → cont', 'cont → state', 'state → ready', 'ready → reply'];

function parse(file, name, from, to) {
  const t = { call: from, reply: to };
  const mark = (k, v) => { if (t[k] === undefined) t[k] = v; };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+)\s+([\d.]+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const ts = Number(m[2]) * 1000;
    const call = m[3];
    if (ts < from || ts > to || /= -1 [A-Z]/.test(call)) continue;
    if (call.startsWith('write(') && call.includes(`{\\"name\\":\\"${name}\\"`)) mark('handed', ts);
    else if (call.includes('flock-checked.json')) mark('locks', ts);
    else if (call.includes('qemu-caps-')) mark('caps', ts);
    else if (call.startsWith('bind(') && t.bindRw === undefined) t.bindRw = ts;
    else if (call.startsWith('connect(') && call.includes('virtqemud.sock')) mark('regConnect', ts);
    else if (call.startsWith('write(') && call.includes('registerdtypedcall')) mark('regSent', ts);
    else if (call.startsWith('read(') && call.includes('registerdtypeereply')) mark('regReply', ts);
    else if (/^execve\("[^"]*flock"/.test(call)) mark('flock', ts);
    else if (/^execve\("[^"]*qemu-system/.test(call)) mark('qemu', ts);
    else if (call.startsWith('accept4(') && t.qemu !== undefined) mark('monitor', ts);
    else if (call.includes('qmp_capabilities')) mark('greeting', ts);
    else if (call.includes('\\"execute\\":\\"cont\\"')) mark('cont', ts);
    else if (call.startsWith('openat(') && call.includes(`.${name}.json.`) && t.cont !== undefined) mark('state', ts);
    else if (call.startsWith('write(1, "{\\"ok\\"')) mark('ready', ts);
  }
  return t;
}

/** Idle shims of `root`: a shim with `--definition -` no state file names yet. */
function idleShims(root) {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd;
    try { cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0'); } catch { continue; }
    if (cmd.some((a) => a.endsWith('virtq-shim.js')) && cmd.includes(root) && cmd.includes('-')) out.push(Number(e));
  }
  return out;
}

/** Waits for the pool's shim to be loaded and blocked reading its stdin (read(2) is syscall 0). */
async function poolReady(root) {
  for (const until = now() + 60_000; now() < until; await sleep(10)) {
    for (const pid of idleShims(root)) {
      let sc = '';
      try { sc = readFileSync(`/proc/${pid}/syscall`, 'latin1'); } catch { continue; }
      // Under strace the shim sits in read(2) too; a traced process shows it the same way.
      if (sc.startsWith('0 ')) return;
    }
  }
  throw new Error(`no idle shim under ${root} within 60 s`);
}

async function daemon(dist, traced) {
  const root = cleanup.root(tmpRoot('vqpv-'));
  const bin = join(dist, 'bin', 'virtqemud.js');
  const trace = join(root, 'strace.out');
  const args = ['--root', root, '--shim-pool', '1'];
  const child = cleanup.child(traced
    ? spawn('strace', ['-f', '--seccomp-bpf', '-ttt', '-s', '80', '-e', 'trace=execve,openat,bind,connect,accept4,write,read', '-o', trace, process.execPath, bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const { pid } = JSON.parse((await firstLine(child)).line);
  child.stdout.resume();
  const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud.sock'), { clock, defaultTimeoutMs: 60_000 });
  return { root, child, pid, rpc, trace, traced };
}

/** CPU time (ms) `pid` has run so far, all its threads (schedstat: ns on a CPU); its children not counted. */
function cpuMs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'latin1').split(' ')[0]);
  return ns / 1e6;
}

async function create(d, name) {
  await poolReady(d.root);
  await sleep(20);
  // The pool shim that takes this start: its CPU from the hand-off to the reply is virtq's own
  // work of a warm start (a load-independent figure; flock(1) children not counted).
  const [shim] = d.traced ? [] : idleShims(d.root);
  const cpu0 = shim === undefined ? undefined : cpuMs(shim);
  const from = wall();
  const t0 = now();
  const r = await d.rpc.call('virtq', 'create', { definition: idleDefinition(name) });
  const ms = now() - t0;
  const to = wall();
  const cpu = cpu0 === undefined ? undefined : cpuMs(shim) - cpu0;
  if (r.state !== 'running') throw new Error(`${name}: ${JSON.stringify(r)}`);
  const marks = d.traced ? parse(d.trace, name, from, to) : undefined;
  await d.rpc.call('virtq', 'destroy', { name });
  return { ms, marks, cpu };
}

const facts = { ...machineFacts(), loadBefore: loadavg() };
const plain = [];
const traced = [];
for (const dist of DISTS) {
  plain.push(await daemon(dist, false));
  traced.push(await daemon(dist, true));
}
// A template for raw QEMU: the argv the first daemon's shim logged (binary, then arguments).
await create(plain[0], 'tmpl');
const t = shimArgv(plain[0].root, 'tmpl');
const tmpl = { argv: [process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64', ...t.argv], from: t.from };
const rawDir = cleanup.root(tmpRoot('vqpr-'));
for (const d of [...plain, ...traced]) await create(d, 'warmup');
const rows = { raw: [], plain: DISTS.map(() => []), traced: DISTS.map(() => []) };
const kinds = [['raw'], ...DISTS.flatMap((_, j) => [['plain', j], ['traced', j]])];
for (let i = 0; i < RUNS; i++) {
  for (let k = 0; k < kinds.length; k++) {
    const [kind, j] = kinds[(k + i) % kinds.length];
    if (kind === 'raw') rows.raw.push({ ms: await rawQemuStart(tmpl, rawDir, `r${i}`, cleanup) });
    else rows[kind][j].push(await create(kind === 'plain' ? plain[j] : traced[j], `${kind[0]}${i}-${j}`));
  }
}
for (const d of [...plain, ...traced]) { d.rpc.close(); process.kill(d.pid, 'SIGTERM'); await exitOf(d.child); }
console.log(`machine: ${facts.cpu}, ${facts.nproc} vCPU, node ${facts.node}, ${facts.qemu}; load before ${facts.loadBefore}, after ${loadavg()}; ${RUNS} runs each, interleaved`);
const raw = summarize(rows.raw.map((r) => r.ms));
console.log(`\nraw QEMU (shim argv, -S + cont): p50 ${fmt(raw.p50)} p90 ${fmt(raw.p90)} ms`);
for (const [j, dist] of DISTS.entries()) {
  const ms = rows.plain[j].map((r) => r.ms);
  const paired = ms.map((v, i) => v - rows.raw[i].ms);
  const rowsOut = NAMES.map((n, i) => {
    const s = summarize(rows.traced[j].map((r) => r.marks[MARKS[i + 1]] - r.marks[MARKS[i]]).filter((v) => Number.isFinite(v)));
    return [n, fmt(s.p50), fmt(s.p90)];
  });
  // The lock manager and the capabilities run side by side since f-start-floor (so "lock manager"
  // can come out negative): the hand-off → the first bind spans both, whichever order they ran in.
  const toBind = summarize(rows.traced[j].map((r) => r.marks.bindRw - r.marks.handed).filter((v) => Number.isFinite(v)));
  rowsOut.push(['(hand-off → rw bind: to locks + lock manager + caps)', fmt(toBind.p50), fmt(toBind.p90)]);
  // With a spare lifeline (a pool shim locks it while idle) there is no flock(1) before QEMU: this spans both.
  const toQemu = summarize(rows.traced[j].map((r) => r.marks.qemu - r.marks.bindRw).filter((v) => Number.isFinite(v)));
  rowsOut.push(['(rw bind → QEMU: rw bind → lease + lease → QEMU)', fmt(toQemu.p50), fmt(toQemu.p90)]);
  const toSpawn = summarize(rows.traced[j].map((r) => r.marks.qemu - r.marks.handed).filter((v) => Number.isFinite(v)));
  rowsOut.push(['(hand-off → QEMU spawned)', fmt(toSpawn.p50), fmt(toSpawn.p90)]);
  const cpu = summarize(rows.plain[j].map((r) => r.cpu).filter((v) => Number.isFinite(v)));
  rowsOut.push(['shim CPU ms, hand-off → reply (untraced)', fmt(cpu.p50), fmt(cpu.p90)]);
  const conn = summarize(rows.traced[j].map((r) => r.marks.regConnect - r.marks.handed).filter((v) => Number.isFinite(v)));
  rowsOut.push(['(virtqemud connect, after hand-off)', fmt(conn.p50), fmt(conn.p90)]);
  // The registration's round trip, and where QEMU's exec falls against it (session 16: beside it for a start on stdin).
  for (const [what, a, b] of [['register written → its reply read', 'regSent', 'regReply'], ['register written → QEMU exec', 'regSent', 'qemu'], ['register reply read → QEMU exec', 'regReply', 'qemu']]) {
    const x = summarize(rows.traced[j].map((r) => r.marks[b] - r.marks[a]).filter((v) => Number.isFinite(v)));
    rowsOut.push([`(${what}, traced)`, fmt(x.p50), fmt(x.p90)]);
  }
  rowsOut.push(['create → reply (traced)', fmt(summarize(rows.traced[j].map((r) => r.ms)).p50), fmt(summarize(rows.traced[j].map((r) => r.ms)).p90)]);
  rowsOut.push(['create → reply, untraced', fmt(summarize(ms).p50), fmt(summarize(ms).p90)]);
  rowsOut.push(['untraced − raw QEMU, paired', fmt(summarize(paired).p50), fmt(summarize(paired).p90)]);
  console.log(`\n${dist}:\n`);
  console.log(table(['phase', 'p50 ms', 'p90 ms'], rowsOut));
}
