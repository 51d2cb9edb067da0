#!/usr/bin/env node
// Where a restore's time goes (issue 16): the test guest (128 MiB, TCG) saved and restored through
// a virtqemud run under `strace -f --seccomp-bpf -ttt`, so its pool shims and QEMU are traced too,
// tracing only the calls that mark a step. Each mark is the first such call after the bench sent
// `restore` (strace's -ttt clock is the same wall clock as performance.timeOrigin + now()):
//   header        restore sent → virtqemud opens the image (header and definition check)
//   to hand-off   → virtqemud writes the start request to the idle shim's stdin
//   shim check    → the shim opens the image (its own header check, the descriptor QEMU inherits)
//   to QEMU       → execve(qemu)                      leases, argv
//   QEMU to QMP   → accept4 (the monitor)             QEMU's exec and start
//   to incoming   → write(migrate-incoming), when the shim sends one (none: -incoming fd:N in argv)
//   load          → write(cont)                       QEMU reads the stream (query-migrate polls)
//   cont → state  → openat(the state file's temp)
//   state → ready → write(1, ready line)
//   ready → reply → the bench has restore's reply
// Beside them, untraced rounds of the same daemon build give the restore's wall time, the CPU time
// (schedstat, all threads) of the shim that served it from the hand-off to the reply, and QEMU's
// CPU time from its exec to the reply (schedstat of its live threads): load-independent figures.
//
//   node bench/save/phases.mjs [--rounds 5] [--dist DIR[,DIR2]]    (needs strace; build first)
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { REPO, cleanupRegistry, cpuMs, exitOf, firstLine, fmt, loadavg, machineFacts, now, options, sleep, summarize, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const DISTS = o.get('dist', join(REPO, 'dist')).split(',');
const cleanup = cleanupRegistry();
const wall = () => performance.timeOrigin + now();
const G = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
const KERNEL = join(G, 'vmlinuz');
const INITRD = join(G, 'initrd.cpio.gz');
const APPEND = 'console=ttyS0 quiet panic=-1';

const MARKS = ['call', 'header', 'handed', 'shimOpen', 'qemu', 'monitor', 'incoming', 'cont', 'state', 'ready', 'reply'];
const NAMES = ['header', 'to hand-off', 'shim check', 'to QEMU', 'QEMU to QMP', 'to incoming', 'load', 'cont → state', 'state → ready', 'ready → reply'];

function parse(file, image, from, to) {
  const t = { call: from, reply: to };
  const mark = (k, v) => { if (t[k] === undefined) t[k] = v; };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+)\s+([\d.]+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const ts = Number(m[2]) * 1000;
    const call = m[3];
    if (ts < from || ts > to || /= -1 [A-Z]/.test(call)) continue;
    if (call.startsWith('openat(') && call.includes(image)) mark(t.header === undefined ? 'header' : 'shimOpen', ts); // virtqemud first, then the shim
    else if (call.startsWith('write(') && call.includes('{\\"definition\\"')) mark('handed', ts);
    else if (/^execve\("[^"]*qemu-system/.test(call)) mark('qemu', ts);
    else if (call.startsWith('accept4(') && t.qemu !== undefined) mark('monitor', ts);
    else if (call.includes('migrate-incoming')) mark('incoming', ts);
    else if (call.includes('\\"execute\\":\\"cont\\"')) mark('cont', ts);
    else if (call.startsWith('openat(') && call.includes('.b1.json.') && t.cont !== undefined) mark('state', ts);
    else if (call.startsWith('write(1, "{\\"ok\\"')) mark('ready', ts);
  }
  // No migrate-incoming: the stream was named in QEMU's argv, so loading began at QEMU's start.
  if (t.incoming === undefined) t.incoming = t.monitor;
  return t;
}

async function waitFile(file, marker, ms = 120_000) {
  for (const end = now() + ms; now() < end; await sleep(100)) {
    if (existsSync(file) && readFileSync(file, 'latin1').includes(marker)) return;
  }
  throw new Error(`no ${marker} in ${file}`);
}

/** Idle shims of `root` (started with `--definition -`, not yet a VM's). */
function shimsOf(root) {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd;
    try { cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0'); } catch { continue; }
    if (cmd.some((a) => a.endsWith('virtq-shim.js')) && cmd.includes(root)) out.push(Number(e));
  }
  return out;
}

/** Waits until a pool shim is loaded and blocked reading its stdin (read(2) is syscall 0). */
async function poolReady(root, busy) {
  for (const until = now() + 60_000; now() < until; await sleep(10)) {
    for (const pid of shimsOf(root)) {
      if (busy.has(pid)) continue;
      let sc = '';
      try { sc = readFileSync(`/proc/${pid}/syscall`, 'latin1'); } catch { continue; }
      if (sc.startsWith('0 ')) return pid;
    }
  }
  throw new Error(`no idle shim under ${root} within 60 s`);
}

async function daemon(dist, traced) {
  const root = cleanup.root(tmpRoot('vqsp-'));
  const bin = join(dist, 'bin', 'virtqemud.js');
  const trace = join(root, 'strace.out');
  const args = ['--root', root, '--shim-pool', '1'];
  const child = cleanup.child(traced
    ? spawn('strace', ['-f', '--seccomp-bpf', '-ttt', '-s', '80', '-e', 'trace=execve,openat,accept4,write', '-o', trace, process.execPath, bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const { pid } = JSON.parse((await firstLine(child)).line);
  child.stdout.resume();
  const { connect } = await import(join(dist, 'lib/client/index.js'));
  const vq = await connect(`qemu:///system?root=${root}`);
  await vq.virtq.create({ definition: { name: 'b1', memoryMiB: 128, accel: 'tcg', kernel: { path: KERNEL, initrd: INITRD, cmdline: APPEND } } });
  await waitFile(join(root, 'log', 'b1.console.log'), 'GUEST-READY');
  return { root, child, pid, vq, trace, traced, file: join(root, 'b1.save'), vmShim: undefined };
}

async function round(d) {
  await d.vq.virtq.save({ name: 'b1', file: d.file });
  const busy = new Set();
  const shim = await poolReady(d.root, busy);
  await sleep(20);
  const cpu0 = d.traced ? undefined : cpuMs(shim);
  const from = wall();
  const t0 = now();
  await d.vq.virtq.restore({ file: d.file });
  const ms = now() - t0;
  const to = wall();
  const cpu = cpu0 === undefined ? undefined : cpuMs(shim) - cpu0;
  // QEMU's CPU from its exec to the reply (init, the load, cont): the restored VM's state file names it.
  const qemuPid = JSON.parse(readFileSync(join(d.root, 'run', 'shims', 'b1.json'), 'utf8')).qemuPid;
  const qemuCpu = d.traced ? undefined : cpuMs(qemuPid);
  return { ms, cpu, qemuCpu, marks: d.traced ? parse(d.trace, d.file, from, to) : undefined };
}

const facts = { ...machineFacts(), loadBefore: loadavg() };
const plain = [];
const traced = [];
for (const dist of DISTS) {
  plain.push(await daemon(dist, false));
  traced.push(await daemon(dist, true));
}
const rows = { plain: DISTS.map(() => []), traced: DISTS.map(() => []) };
const kinds = DISTS.flatMap((_, j) => [['plain', j], ['traced', j]]);
for (let i = 0; i < ROUNDS; i++) {
  for (let k = 0; k < kinds.length; k++) {
    const [kind, j] = kinds[(k + i) % kinds.length];
    rows[kind][j].push(await round(kind === 'plain' ? plain[j] : traced[j]));
  }
  process.stderr.write(`round ${i + 1}/${ROUNDS}: ${DISTS.map((_, j) => `${fmt(rows.plain[j].at(-1).ms)} ms (cpu ${fmt(rows.plain[j].at(-1).cpu)})`).join(' / ')}\n`);
}
for (const d of [...plain, ...traced]) {
  await d.vq.virtq.destroy({ name: 'b1' }).catch(() => undefined);
  d.vq.close();
  process.kill(d.pid, 'SIGTERM');
  await exitOf(d.child);
}
console.log(`machine: ${facts.cpu}, ${facts.nproc} vCPU, node ${facts.node}, ${facts.qemu}; load before ${facts.loadBefore}, after ${loadavg()}; ${ROUNDS} rounds each, interleaved`);
for (const [j, dist] of DISTS.entries()) {
  const ms = summarize(rows.plain[j].map((r) => r.ms));
  const cpu = summarize(rows.plain[j].map((r) => r.cpu));
  const qcpu = summarize(rows.plain[j].map((r) => r.qemuCpu));
  console.log(`\n${dist}: restore p50 ${fmt(ms.p50)} p90 ${fmt(ms.p90)} ms (untraced); serving shim CPU p50 ${fmt(cpu.p50)} p90 ${fmt(cpu.p90)} ms; QEMU CPU to the reply p50 ${fmt(qcpu.p50)} p90 ${fmt(qcpu.p90)} ms`);
  console.log(table(['step (traced)', 'p50 ms', 'p90 ms'], NAMES.map((n, i) => {
    const s = summarize(rows.traced[j].map((r) => r.marks[MARKS[i + 1]] - r.marks[MARKS[i]]).filter((v) => Number.isFinite(v)));
    return [n, fmt(s.p50), fmt(s.p90)];
  })));
}
