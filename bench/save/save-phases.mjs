#!/usr/bin/env node
// Where a save's time goes (issue 16): the test guest (128 MiB, TCG) saved through virtqemud while
// `strace -f -ttt` follows the VM's shim (and so its QEMU and the `cat` child), tracing only the
// calls that mark a step; then restored untraced, to be saved again. Each mark is the first such
// call after the bench sent `save` (strace's -ttt clock is the same wall clock as
// performance.timeOrigin + now()):
//   to stop       save sent → the shim writes QMP `stop`            (client → virtqemud → shim)
//   setup         → the shim writes QMP `migrate`                   (socket, temp file, header, caps)
//   to cat        → execve(cat)                                     (QEMU connects, accept, fork)
//   stream        → cat exits                                       (QEMU's transfer; query-migrate polls)
//   to fsync      → the final fsync of the image starts             (completed seen, the last write-behind, stat, length)
//   fsync         → rename                                          (the final fsync)
//   to SIGTERM    → kill(QEMU, SIGTERM)
//   QEMU exit     → QEMU's exit (+++ exited)
//   to state      → the state file's temp is opened                 (reap, leases, lifecycle)
//   state → reply → the bench has save's reply                       (registry flush, shim → virtqemud → client)
// Beside them, untraced saves of the same build give the wall time and each process's CPU time
// from the call to the reply: the shim's and virtqemud's (schedstat, all threads), QEMU's (its
// schedstat at the call, its total once reaped from the shim's cutime+cstime, 10 ms ticks) and
// cat's (its rusage, from the same children's ticks: QEMU and cat together).
//
//   node bench/save/save-phases.mjs [--rounds 5] [--dist DIR[,DIR2]]    (needs strace; build first)
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { REPO, cleanupRegistry, cpuMs, exitOf, firstLine, fmt, loadavg, machineFacts, now, options, sleep, snapshotDist, summarize, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const DISTS = o.get('dist', join(REPO, 'dist')).split(',').map((d) => resolve(d));
const cleanup = cleanupRegistry();
const wall = () => performance.timeOrigin + now();
const G = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
const KERNEL = join(G, 'vmlinuz');
const INITRD = join(G, 'initrd.cpio.gz');
const APPEND = 'console=ttyS0 quiet panic=-1';
const TICK_MS = 10;

const MARKS = ['call', 'stop', 'migrate', 'cat', 'catExit', 'fsync', 'renamed', 'sigterm', 'qemuExit', 'state', 'reply'];
const NAMES = ['to stop', 'setup', 'to cat', 'stream', 'to fsync', 'fsync', 'to SIGTERM', 'QEMU exit', 'to state', 'state → reply'];

function parse(file, qemuPid, from, to) {
  const t = { call: from, reply: to };
  let catPid;
  let polls = 0;
  let datasyncs = 0;
  let imageFd;
  // Marks in their order: a call like an earlier step's (the state file's fsync at the pause) is not taken for a later one.
  const mark = (k, v) => { if (t[k] === undefined && MARKS.slice(0, MARKS.indexOf(k)).every((p) => p === 'catExit' || t[p] !== undefined)) t[k] = v; };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+)\s+([\d.]+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const pid = Number(m[1]);
    const ts = Number(m[2]) * 1000;
    const call = m[3];
    if (ts < from || ts > to) continue;
    if (call.includes('\\"execute\\":\\"stop\\"')) mark('stop', ts);
    else if (call.includes('\\"execute\\":\\"migrate\\",')) mark('migrate', ts);
    else if (call.includes('\\"execute\\":\\"query-migrate\\"')) polls++;
    else if (/^execve\("[^"]*\/cat"/.test(call) && !/= -1 /.test(call)) { mark('cat', ts); catPid ??= pid; }
    else if (call.startsWith('+++ exited') && pid === catPid) mark('catExit', ts);
    else if (call.startsWith('openat(') && call.includes('.partial"')) imageFd ??= /= (\d+)$/.exec(call)?.[1];
    else if (imageFd !== undefined && call.startsWith(`fsync(${imageFd}`)) mark('fsync', ts);
    else if (imageFd !== undefined && call.startsWith(`fdatasync(${imageFd}`)) datasyncs++;
    else if (/^rename(at2?)?\(/.test(call)) mark('renamed', ts);
    else if (call.startsWith(`kill(${qemuPid}, SIGTERM`)) mark('sigterm', ts);
    else if (call.startsWith(`wait4(${qemuPid},`) && call.endsWith(`= ${qemuPid}`)) mark('qemuExit', ts);
    else if (call.startsWith('openat(') && call.includes('.b1.json.')) mark('state', ts);
  }
  return { ...t, polls, datasyncs };
}

async function waitFile(file, marker, ms = 120_000) {
  for (const end = now() + ms; now() < end; await sleep(100)) {
    if (existsSync(file) && readFileSync(file, 'latin1').includes(marker)) return;
  }
  throw new Error(`no ${marker} in ${file}`);
}

// User + system ticks of a process's waited-for children (cutime + cstime), in ms.
function childrenMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_MS;
}

async function daemon(dist) {
  const root = cleanup.root(tmpRoot('vqss-'));
  const child = cleanup.child(spawn(process.execPath, [join(dist, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', '1'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const { pid } = JSON.parse((await firstLine(child)).line);
  child.stdout.resume();
  const { connect } = await import(join(dist, 'lib/client/index.js'));
  const vq = await connect(`qemu:///system?root=${root}`);
  await vq.virtq.create({ definition: { name: 'b1', memoryMiB: 128, accel: 'tcg', kernel: { path: KERNEL, initrd: INITRD, cmdline: APPEND } } });
  await waitFile(join(root, 'log', 'b1.console.log'), 'GUEST-READY');
  return { root, child, pid, vq, file: join(root, 'b1.save') };
}

const running = (d) => JSON.parse(readFileSync(join(d.root, 'run', 'shims', 'b1.json'), 'utf8'));

async function strace(pid, out) {
  const st = spawn('strace', ['-f', '-ttt', '-s', '100', '-e', 'trace=execve,openat,write,writev,kill,fsync,fdatasync,rename,renameat,renameat2,wait4', '-p', String(pid), '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanup.child(st);
  // strace says "Process N attached" on stderr once it follows the process.
  await new Promise((resolve, reject) => {
    let err = '';
    st.stderr.on('data', (d) => { err += d; if (err.includes('attached')) resolve(); });
    st.once('exit', () => reject(new Error(`strace ended: ${err}`)));
  });
  return st;
}

async function round(d, traced, i) {
  const s = running(d);
  const shim = s.shimPid;
  const qemu = s.qemuPid;
  await sleep(200);
  let st;
  const out = join(d.root, `save-${i}.strace`);
  if (traced) st = await strace(shim, out);
  const c0 = { shim: cpuMs(shim), vqd: cpuMs(d.pid), qemu: cpuMs(qemu), children: childrenMs(shim) };
  const from = wall();
  const t0 = now();
  await d.vq.virtq.save({ name: 'b1', file: d.file });
  const ms = now() - t0;
  const to = wall();
  const cpu = {
    shim: cpuMs(shim) - c0.shim, vqd: cpuMs(d.pid) - c0.vqd,
    // QEMU's total CPU is in the shim's children's ticks once reaped; what it ran before the call is subtracted.
    qemuCat: childrenMs(shim) - c0.children - c0.qemu,
  };
  let marks;
  if (st !== undefined) {
    st.kill('SIGINT');
    await exitOf(st);
    marks = parse(out, qemu, from, to);
    if (process.env.KEEP_TRACE !== undefined) writeFileSync(`${process.env.KEEP_TRACE}-${i}`, readFileSync(out));
  }
  // Back to running for the next round (untimed); the shim that saved has finished by then.
  for (let k = 0; k < 100 && existsSync(join(d.root, 'run', 'shims', 'b1.json')) && running(d).shimPid === shim; k++) await sleep(20);
  await d.vq.virtq.restore({ file: d.file });
  return { ms, cpu, marks };
}

const facts = { ...machineFacts(), loadBefore: loadavg() };
const ds = [];
// A build from outside this tree is copied in (its bench run must not write into a shared tree).
for (const [j, dist] of DISTS.entries()) ds.push(await daemon(dist.startsWith(REPO) ? dist : await snapshotDist(`save-phases-${j}`, dist)));
const rows = DISTS.map(() => ({ plain: [], traced: [] }));
for (let i = 0; i < ROUNDS; i++) {
  for (let k = 0; k < ds.length * 2; k++) {
    const idx = (k + i) % (ds.length * 2);
    const j = idx >> 1;
    const traced = (idx & 1) === 1;
    rows[j][traced ? 'traced' : 'plain'].push(await round(ds[j], traced, `${i}-${k}`));
  }
  process.stderr.write(`round ${i + 1}/${ROUNDS}: ${DISTS.map((_, j) => { const r = rows[j].plain.at(-1); return `${fmt(r.ms)} ms (shim ${fmt(r.cpu.shim)}, vqd ${fmt(r.cpu.vqd)}, qemu+cat ${fmt(r.cpu.qemuCat, 0)})`; }).join(' / ')}; load ${loadavg()}\n`);
}
for (const d of ds) {
  await d.vq.virtq.destroy({ name: 'b1' }).catch(() => undefined);
  d.vq.close();
  process.kill(d.pid, 'SIGTERM');
  await exitOf(d.child);
}
console.log(`machine: ${facts.cpu}, ${facts.nproc} vCPU, node ${facts.node}, ${facts.qemu}; load before ${facts.loadBefore}, after ${loadavg()}; ${ROUNDS} rounds each, interleaved`);
for (const [j, dist] of DISTS.entries()) {
  const p = rows[j].plain;
  const s = (f) => summarize(p.map(f));
  const ms = s((r) => r.ms);
  console.log(`\n${dist}: save p50 ${fmt(ms.p50)} p90 ${fmt(ms.p90)} ms (untraced); CPU call → reply p50 (p90) ms: shim ${fmt(s((r) => r.cpu.shim).p50)} (${fmt(s((r) => r.cpu.shim).p90)}), virtqemud ${fmt(s((r) => r.cpu.vqd).p50)} (${fmt(s((r) => r.cpu.vqd).p90)}), QEMU + cat ${fmt(s((r) => r.cpu.qemuCat).p50, 0)} (${fmt(s((r) => r.cpu.qemuCat).p90, 0)}, 10 ms ticks)`);
  const t = rows[j].traced;
  console.log(table(['step (traced)', 'p50 ms', 'p90 ms'], [...NAMES.map((n, i) => {
    const v = summarize(t.map((r) => r.marks[MARKS[i + 1]] - r.marks[MARKS[i]]).filter((x) => Number.isFinite(x)));
    return [n, fmt(v.p50), fmt(v.p90)];
  }), ['(whole, traced)', fmt(summarize(t.map((r) => r.marks.reply - r.marks.call)).p50), ''], ['(query-migrate polls)', fmt(summarize(t.map((r) => r.marks.polls)).p50, 0), ''], ['(write-behind fdatasyncs)', fmt(summarize(t.map((r) => r.marks.datasyncs)).p50, 0), '']]));
}
