#!/usr/bin/env node
// Untraced phase breakdown of a warm start through virtqemud (issue 15 target 1), A/B capable.
// phases-vqd.mjs marks phases with strace, which slows QEMU (its eventfd writes are traced too) and
// every traced call; this one copies each dist and inserts wall-clock marks into the copies' shim
// and virtqemud bundles (a write(2) of "VQM name ms" to stderr: a few µs each), then runs `create`
// against a virtqemud --shim-pool 1 of each copy, interleaved round by round with raw QEMU (the
// shim's argv, -S + QMP cont). The pool shim's marks are read from its stderr file
// (log/NAME.shim-stderr.log), virtqemud's from its stderr. Beside them: the CPU (schedstat, all
// threads) of virtqemud and of the pool shim from the call to the reply.
//   create    virtqemud's create handler begins        handed   the start is written to the pool shim
//   sstart    Shim.start (start request read, options, logs composed)
//   lockcaps  lock manager + QEMU binary/capabilities   rwbound  the read-write socket (the name's claim)
//   prejournal  definition resolved, Vm/console/metrics objects   journal  the event journal opened
//   assembled  QMP proxy, migration, admin service built
//   names     name check + ro/admin binds               connected  API served, registrar connected
//   registered  `register` written                      consoles  console + monitor sockets bound
//   ports     NIC ports                                 prestart  Vm.start begins
//   exec      the exec line goes to QEMU's launcher     contdone  `cont` returned (QEMU's start, greeting, caps)
//   settled   state file, shared QMP socket, updates posted   ready  the ready line is written
//   up        virtqemud has the ready line              listed   its listing shows what the line counts
//   reply     the bench has create's reply
//   jfirst    the journal's first use (session 19's order: after QEMU's exec)
// A mark a build does not have (its code differs at the insertion point) is reported missing, not guessed.
// Each build's marks are also listed by their offset from the call, in the order they came (the order differs by build).
//
//   node bench/shim/marks-vqd.mjs [--runs 12] [--dist DIR[,DIR2]]    (build first)
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  REPO, cpuMs, distBench, exitOf, firstLine, fmt, idleDefinition, loadavg, machineFacts, now, rawQemuStart, shimArgv, sleep,
  summarize, table, tmpRoot,
} from '../lib/common.mjs';

const { RUNS, DISTS, cleanup, wall } = distBench(12);

const MARK = (n) => `(globalThis.__vqm??=(n)=>{try{process.getBuiltinModule("node:fs").writeSync(2,"VQM "+n+" "+(performance.timeOrigin+performance.now()).toFixed(3)+"\\n")}catch{}})("${n}");`;
// [text in the bundle, mark name, before|after]; each must occur once or its mark is left out.
const SHIM_MARKS = [
  ['static async start(cfg){', 'sstart', 'after'],
  ['await allDone([leasesReady,capsReady]);', 'lockcaps', 'after'],
  ['await listenOwnSocket(service,def.name,sockets.rw,cfg.clock);', 'rwbound', 'after'],
  ['const events=VmEvents.open(', 'prejournal', 'before'],
  ['const qmpProxy=qmpProxyFor(', 'journal', 'before'],
  ['await shim.bringUp(saved,connecting);', 'assembled', 'before'],
  // Session 19's order (a new VM's requested start execs QEMU first): name check + console/monitor, ports, Vm.start,
  // then beside QEMU the journal's first use and `register` written (after the ro/admin binds and the API).
  ['this.consoleHub.listen(),this.monitors.listen()]);', 'consoles', 'after'],
  ['let rest;const started=vm.start(', 'ports', 'before'],
  ['const started=vm.start(', 'prestart', 'before'],
  ['get events(){', 'jfirst', 'after'],
  ['return{registering}', 'registered', 'before'],
  ['if(this.registers)this.registrar=await connecting;', 'names', 'before'],
  ['const registering=this.registrar?.register(', 'connected', 'before'],
  ['await allDone([claimed===void 0?registering:void 0,', 'registered', 'before'],
  ['const incoming=await incomingStart(', 'ports', 'before'],
  ['await allDone([claimed,vm.start(', 'prestart', 'before'],
  ['child.stdin?.end(execLine(file,args,opts.logFile));', 'exec', 'before'],
  ['const listing=this.readyCounts?this.registrar?.posted():this.registrar?.flush();', 'contdone', 'before'],
  ['await allDone([reattach?void 0:this.persisting,this.qmpProxy?.listen(),listing]);', 'settled', 'after'],
  ['const printed=line(proc2,started.readyLine);', 'ready', 'before'],
];
const VQD_MARKS = [
  ['create: async ({ definition, paused }) => {', 'create', 'after'],
  ['else stdin.end(definition);', 'handed', 'wrap'],
  ['await untilListed(d.registry, record, up, d.clock);', 'up', 'before'],
  ['await untilListed(d.registry, record, up, d.clock);', 'listed', 'after'],
];
// Console and monitor binds end where `registered`'s statement ends.
const CONSOLES = 'this.monitors.listen(cfg.handedOver?.fds.monitorListener)]);';

function insert(text, marks, missing) {
  let s = text;
  const found = new Set();
  // A name with two insertion points (session 19's order beside the older one) is missing only when neither is there.
  for (const [at, name] of marks) if (s.split(at).length === 2) found.add(name);
  for (const [, name] of marks) if (!found.has(name)) missing.add(name);
  for (const [at, name, where] of marks) {
    if (s.split(at).length !== 2) continue;
    if (where === 'before') s = s.replace(at, MARK(name) + at);
    else if (where === 'after') s = s.replace(at, at + MARK(name));
    else s = s.replace(at, `else {${at.replace(/^else /, '')}${MARK(name)}}`);
  }
  return s;
}

/** A copy of `dist` (beside a package.json and node_modules, as a built tree has) with marks. */
function markedCopy(dist, j, missing) {
  const dir = cleanup.root(tmpRoot('vqmk-dist-'));
  const out = join(dir, 'dist');
  cpSync(dist, out, { recursive: true, verbatimSymlinks: true });
  const tree = dirname(dist);
  if (existsSync(join(tree, 'package.json'))) writeFileSync(join(dir, 'package.json'), readFileSync(join(tree, 'package.json')));
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  const shim = join(out, 'bin', 'virtq-shim.js');
  let s = insert(readFileSync(shim, 'utf8'), SHIM_MARKS, missing[j]);
  if (s.split(CONSOLES).length === 2) { s = s.replace(CONSOLES, CONSOLES + MARK('consoles')); missing[j].delete('consoles'); }
  writeFileSync(shim, s);
  const vqd = join(out, 'bin', 'virtqemud.js');
  writeFileSync(vqd, insert(readFileSync(vqd, 'utf8'), VQD_MARKS, missing[j]));
  return out;
}

/** The pool shim of `root` once it is loaded and blocked reading its start (read(2) is syscall 0). */
async function idleShim(root) {
  for (const until = now() + 60_000; now() < until; await sleep(20)) {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      let cmd;
      try { cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0'); } catch { continue; }
      if (!cmd.some((a) => a.endsWith('virtq-shim.js')) || !cmd.includes(root) || !cmd.includes('-')) continue;
      try { if (readFileSync(`/proc/${e}/syscall`, 'latin1').startsWith('0 ')) return Number(e); } catch { /* gone */ }
    }
  }
  throw new Error(`no idle shim under ${root} within 60 s`);
}

async function daemon(dist) {
  const root = cleanup.root(tmpRoot('vqmk-'));
  const child = cleanup.child(spawn(process.execPath, [join(dist, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', '1'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const marks = [];
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const m = /^VQM (\S+) ([\d.]+)/.exec(buf.slice(0, i));
      if (m !== null) marks.push([m[1], Number(m[2])]); else process.stderr.write(`${buf.slice(0, i)}\n`);
      buf = buf.slice(i + 1);
    }
  });
  const { pid } = JSON.parse((await firstLine(child)).line);
  child.stdout.resume();
  const { RpcClient, systemClock } = await import(join(dist, 'lib', 'protocol', 'index.js'));
  const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud.sock'), { clock: systemClock(), defaultTimeoutMs: 60_000 });
  return { root, child, pid, rpc, marks };
}

/** Every daemon's pool shim loaded and idle: a refill still loading would share the CPUs with whatever runs next (another build's start, raw QEMU). */
async function allIdle() {
  for (const d of daemons) await idleShim(d.root);
  await sleep(300);
}

async function create(d, name) {
  await allIdle();
  const shim = await idleShim(d.root);
  const [c0, v0, seen] = [cpuMs(shim), cpuMs(d.pid), d.marks.length];
  const from = wall();
  const t0 = now();
  const r = await d.rpc.call('virtq', 'create', { definition: idleDefinition(name) });
  const ms = now() - t0;
  const t = { call: from, reply: wall() };
  const cpu = { shim: cpuMs(shim) - c0, vqd: cpuMs(d.pid) - v0 };
  if (r.state !== 'running') throw new Error(`${name}: ${JSON.stringify(r)}`);
  await sleep(30); // virtqemud's stderr
  for (const [k, v] of d.marks.slice(seen)) t[k] ??= v;
  for (const line of readFileSync(join(d.root, 'log', `${name}.shim-stderr.log`), 'utf8').split('\n')) {
    const m = /^VQM (\S+) ([\d.]+)/.exec(line);
    if (m !== null) t[m[1]] ??= Number(m[2]);
  }
  await d.rpc.call('virtq', 'destroy', { name });
  return { ms, t, cpu };
}

const facts = { ...machineFacts(), loadBefore: loadavg() };
const missing = DISTS.map(() => new Set());
const daemons = [];
for (const [j, dist] of DISTS.entries()) daemons.push(await daemon(markedCopy(dist, j, missing)));
await create(daemons[0], 'tmpl');
const t = shimArgv(daemons[0].root, 'tmpl');
const tmpl = { argv: [process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64', ...t.argv], from: t.from };
const rawDir = cleanup.root(tmpRoot('vqmr-'));
for (const d of daemons) await create(d, 'warmup');
const raw = [];
const rows = DISTS.map(() => []);
const kinds = [-1, ...DISTS.map((_, j) => j)];
for (let i = 0; i < RUNS; i++) {
  for (let k = 0; k < kinds.length; k++) {
    const j = kinds[(k + i) % kinds.length];
    if (j < 0) { await allIdle(); raw.push(await rawQemuStart(tmpl, rawDir, `r${i}`, cleanup)); }
    else rows[j].push(await create(daemons[j], `v${i}`));
  }
}
for (const d of daemons) { d.rpc.close(); process.kill(d.pid, 'SIGTERM'); await exitOf(d.child); }

console.log(`machine: ${facts.cpu}, ${facts.nproc} vCPU, node ${facts.node}, ${facts.qemu}; load before ${facts.loadBefore}, after ${loadavg()}; ${RUNS} runs each, interleaved`);
const r = summarize(raw);
console.log(`\nraw QEMU (shim argv, -S + cont): p50 ${fmt(r.p50)} p90 ${fmt(r.p90)} ms\n`);
const ORDER = ['call', 'create', 'handed', 'sstart', 'lockcaps', 'rwbound', 'prejournal', 'journal', 'assembled', 'names', 'connected', 'registered', 'consoles', 'ports', 'prestart', 'exec', 'contdone', 'settled', 'ready', 'up', 'listed', 'reply'];
const cell = (values) => { const s = summarize(values.filter(Number.isFinite)); return Number.isFinite(s.p50) ? `${fmt(s.p50)} (${fmt(s.p90)})` : 'n/a'; };
const span = (a, b) => rows.map((rs) => cell(rs.map((x) => x.t[b] - x.t[a])));
const out = ORDER.slice(1).map((b, i) => [`${ORDER[i]} → ${b}`, ...span(ORDER[i], b)]);
out.push(['(call → exec: before QEMU runs)', ...span('call', 'exec')], ['(exec → cont returned: QEMU)', ...span('exec', 'contdone')], ['(cont returned → reply)', ...span('contdone', 'reply')]);
out.push(['create → reply', ...rows.map((rs) => cell(rs.map((x) => x.ms)))]);
out.push(['create → reply − raw QEMU, paired', ...rows.map((rs) => cell(rs.map((x, i) => x.ms - raw[i])))]);
out.push(['pool shim CPU, call → reply', ...rows.map((rs) => cell(rs.map((x) => x.cpu.shim)))]);
out.push(['virtqemud CPU, call → reply', ...rows.map((rs) => cell(rs.map((x) => x.cpu.vqd)))]);
console.log(table(['phase (ms, p50 (p90))', ...DISTS], out));
// The same marks as offsets from the call, per build, in the order they came (a build may reorder the steps).
for (const [j, rs] of rows.entries()) {
  const names = [...new Set(rs.flatMap((x) => Object.keys(x.t)))].filter((k) => k !== 'call');
  const offsets = names.map((k) => [k, summarize(rs.map((x) => x.t[k] - x.t.call).filter(Number.isFinite))]).sort((a, b) => a[1].p50 - b[1].p50);
  console.log(`\n${DISTS[j]}: marks as offsets from the call`);
  console.log(table(['mark', 'p50 (p90) ms'], offsets.map(([k, o]) => [k, `${fmt(o.p50)} (${fmt(o.p90)})`])));
}
for (const [j, m] of missing.entries()) if (m.size > 0) console.log(`\n${DISTS[j]}: no insertion point for ${[...m].join(', ')} (n/a above)`);
