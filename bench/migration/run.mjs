#!/usr/bin/env node
// Live migration benchmark (issue 16): the test guest (128 MiB, TCG, one raw disk) moved between
// two virtqemud roots on this machine with `migrate --live`, interleaved round by round with the
// floor: two raw QEMUs driven by a plain QMP script (the destination spawned with -incoming on a
// unix socket, `migrate`, poll query-migrate, `cont` on the destination).
//   total     virtq: the client's `migrate` call, from the call to its reply (destination claimed
//             and started, memory sent, leases handed over, guest running there, source stopped);
//             raw: from spawning the destination QEMU to its `cont` returning, plus the source
//             QEMU's exit on SIGTERM as virtq's shim stops it (session 10: virtq's total always
//             included the source's stop, raw's did not; `toCont`, raw's old total, is still printed).
//   downtime  QEMU's own figure (query-migrate `downtime`) on the source.
//   qemuTotal QEMU's own `total-time` on the source (virtq: read from the source shim's
//             MIGRATION_DONE log line, which also has the phases of virtq's job; see below).
//
//   raw       raw QEMU with the argv virtq's shim built for the same VM (q35 or whatever the shim
//             picks, -sandbox, -blockdev, ...): taken from a template VM's "spawning qemu" log line,
//             as bench/shim's start-paths does; monitor and console turned into a QMP socket and a
//             file. raw-pc: the older floor, `-machine pc` with -drive if=virtio (an extra row).
//   Every round prints, per side, QEMU's query-migrate figures (total, setup, downtime, rounds =
//   dirty-sync-count, transferred, remaining, dirty pages/s, throttle %), and the run prints once
//   the capabilities/parameters in effect and each side's destination argv.
//
//   --transport tcp: both sides over a loopback TCP port the destination QEMU picks (raw: -incoming
//             defer, migrate-incoming tcp:127.0.0.1:0, the port read back from query-migrate).
//   --dirty MIB: the guest boots with tg_dirty=MIB (scripts/build-test-guest.sh: `tg-dirty` rewrites
//             MIB MiB of its memory in a loop) and each side migrates once TG-DIRTY-RUNNING is on the
//             console; default a quarter of --memory, 0 for an idle guest.
//   --max-downtime MS: QEMU's downtime-limit on both sides (default 300, virtq's default).
//   --libvirt: also libvirt's `virsh migrate --live` between two private libvirtds
//             (bench/migration/libvirt-side.sh, run under flock /tmp/virtq-libvirt-bench.lock), one
//             round after each virtq/raw pair.
//
//   --baseline DIST: also a second pair of virtqemuds run from another build's dist/ (e.g. main's),
//             one migration a round beside this build's, the order alternating: "virtq-base".
//   Every virtqemud runs with its default warm shim pool (one idle shim), as users get it.
//
//   --raw-stop term|kill: how the floor stops its source QEMU once the destination runs (default term,
//             SIGTERM; virtq's shim SIGKILLs it since session 17, so `kill` times the same method).
//   --virtq-only: no raw rounds (an A/B of this build against --baseline only; raw ratios read NaN).
//   node bench/migration/run.mjs [--rounds 5] [--memory 128] [--dirty MIB] [--max-downtime 300] [--transport unix|tcp] [--raw-stop term|kill] [--libvirt] [--dist DIR] [--baseline DIST] [--json out.json]
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import {
  connectRetry, firstLine, fmt, killUnder, loadavg, machineFacts, median, now, options, qmpSession, shimArgv, sleep, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';
import { cpuSampler } from './cpu-sampler.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const MEMORY = o.num('memory', 128);
const TRANSPORT = o.get('transport') ?? 'unix';
if (TRANSPORT !== 'unix' && TRANSPORT !== 'tcp') throw new Error(`--transport unix|tcp, not ${TRANSPORT}`);
const QEMU = process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64';
const GUEST = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
const KERNEL = join(GUEST, 'vmlinuz');
const INITRD = join(GUEST, 'initrd.cpio.gz');
const DIRTY = o.num('dirty', Math.floor(MEMORY / 4));
const MAX_DOWNTIME = o.num('max-downtime', 300);
const RAW_STOP = { term: 'SIGTERM', kill: 'SIGKILL' }[o.get('raw-stop') ?? 'term'];
if (RAW_STOP === undefined) throw new Error(`--raw-stop term|kill, not ${o.get('raw-stop')}`);
const CMDLINE = `console=ttyS0 quiet panic=-1${DIRTY > 0 ? ` tg_dirty=${DIRTY}` : ''}`;
// The guest is ready to migrate once it dirties memory (or, idle, once it booted).
const READY = DIRTY > 0 ? 'TG-DIRTY-RUNNING' : 'GUEST-READY';
if (!existsSync(KERNEL)) throw new Error(`the test guest is not built under ${GUEST}: bash scripts/build-test-guest.sh`);
if (DIRTY > 0 && !/rootfs=([2-9]|\d\d)/.test(readFileSync(join(GUEST, 'manifest.json'), 'utf8'))) {
  throw new Error(`the test guest under ${GUEST} predates tg-dirty: bash scripts/build-test-guest.sh --force (or --dirty 0 for an idle guest)`);
}

const dist = o.get('dist') ?? await snapshotDist('migration');
const { RpcClient, systemClock, typedClient, virtqProgram } = await import(join(dist, 'lib', 'protocol', 'index.js'));
const clock = systemClock();

async function waitFor(file, marker, ms = 300_000) {
  const end = now() + ms;
  while (now() < end) {
    if (existsSync(file) && readFileSync(file, 'latin1').includes(marker)) return;
    await sleep(20);
  }
  throw new Error(`${marker} not seen in ${file}`);
}

const BASELINE = o.get('baseline');
// --virtq-only (session 15): no raw rounds, for an A/B of two builds with --baseline (the ratios to raw then read NaN).
const VIRTQ_ONLY = o.has('virtq-only');
const baseDist = BASELINE === undefined ? undefined : await snapshotDist('migration-base', BASELINE);

async function daemon(root, from = dist) {
  const p = spawn(process.execPath, [join(from, 'bin', 'virtqemud.js'), '--root', root], { stdio: ['ignore', 'pipe', 'ignore'] });
  await firstLine(p);
  const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud.sock'), { clock, defaultTimeoutMs: 300_000 });
  return { p, rpc, api: typedClient(virtqProgram, rpc) };
}

async function virtqRound(src, dst, dstRoot, srcRoot, disk, i) {
  const name = `bm${i}`;
  await src.api.create({ definition: {
    name, memoryMiB: MEMORY, vcpus: 1, accel: 'tcg', kernel: { path: KERNEL, initrd: INITRD, cmdline: CMDLINE },
    disks: [{ path: disk, format: 'raw', target: 'vda' }],
  } });
  await waitFor(join(srcRoot, 'log', `${name}.console.log`), READY);
  // CPU per process between the call and its answer (session 13): src/dst virtqemud, shim, QEMU.
  const cpu = cpuSampler({ src: srcRoot, dst: dstRoot });
  const t0 = now();
  const r = await src.api.migrate({ name, destUri: `qemu:///system?root=${dstRoot}`, live: true, transport: TRANSPORT, maxDowntimeMs: MAX_DOWNTIME });
  const total = now() - t0;
  const cpuMs = cpu.stop();
  await dst.api.destroy({ name });
  const done = logLine(join(srcRoot, 'log', `${name}.log`), (j) => j.msgId === 'MIGRATION_DONE');
  const q = done?.qemu ?? {};
  // The destination shim's own split (this build's log lines; '-' for a build without them): the
  // lease work inside released → claimed, and finish's wait for the last state and its `cont`.
  const dstLog = join(dstRoot, 'log', `${name}.log`);
  const claimed = logLine(dstLog, (j) => j.msgId === 'MIGRATION_CLAIMED');
  const ran = logLine(dstLog, (j) => j.msgId === 'MIGRATION_RUNNING');
  // dstArmed (session 12): 1 when the claim found its lease holders armed during the transfer.
  const dstSplit = { dstLeaseMs: claimed?.leaseMs, dstArmed: claimed?.armed === undefined ? undefined : Number(claimed.armed), dstLoadWaitMs: ran?.loadWaitMs, dstContMs: ran?.contMs };
  // The prepare's split (session 14), ms since the job began on the source (both logs' wall clocks,
  // 1 ms; the job's start is MIGRATION_DONE's time less its sourceStopped): the destination shim
  // spawned QEMU (dstSpawned: the prepare's hops, virtqemud and the pool shim before the spawn),
  // QEMU's monitor attached (dstQmp: QEMU's own start-up), QEMU listens (dstListening).
  const jobT0 = done === undefined || done.phases?.sourceStopped === undefined ? undefined : done.time - done.phases.sourceStopped;
  const since = (j) => (j === undefined || jobT0 === undefined ? undefined : j.time - jobT0);
  Object.assign(dstSplit, {
    dstSpawned: since(logLine(dstLog, (j) => j.msg === 'spawning qemu')),
    dstQmp: since(logLine(dstLog, (j) => j.msg === 'qmp monitor attached')),
    dstListening: since(logLine(dstLog, (j) => j.msgId === 'MIGRATION_INCOMING')),
    // session 15: the destination's `cont` answered (the guest runs there), beside the source's
    // `completed` and `running` (the switchover's answer back at the source).
    dstRunning: since(ran),
    // session 16: the claim reached the destination shim (its MIGRATION_CLAIMED less its leaseMs):
    // released → dstClaimAt is the way there (source shim → destination virtqemud → its shim),
    // claimed − (dstClaimAt + dstLeaseMs) the way back, both inside the guest's pause.
    dstClaimAt: claimed?.leaseMs === undefined ? undefined : since(claimed) - claimed.leaseMs,
  });
  if (i === 0) {
    process.stderr.write(`virtq settings: ${JSON.stringify({ capabilities: q.capabilities, parameters: q.parameters })}\n`);
    process.stderr.write(`virtq destination argv: ${JSON.stringify(logLine(join(dstRoot, 'log', `${name}.log`), (j) => j.msg === 'spawning qemu')?.argv)}\n`);
  }
  return {
    total, downtime: r.downtimeMs ?? NaN, qemuTotal: q.totalTimeMs ?? NaN, phases: { ...(done?.phases ?? {}), ...dstSplit }, cpuMs,
    qemu: { total: q.totalTimeMs, setup: q.setupTimeMs, downtime: q.downtimeMs, rounds: q.dirtySyncCount, transferredMiB: mib(q.transferredBytes), remainingMiB: mib(q.remainingBytes), dirtyPagesRate: q.dirtyPagesRate, throttle: q.throttlePercent },
  };
}

const mib = (b) => (typeof b === 'number' ? Math.round(b / 2 ** 20) : undefined);
/** The last JSON log line of `file` that `pred` accepts. */
function logLine(file, pred) {
  let hit;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try { const j = JSON.parse(line); if (pred(j)) hit = j; } catch { /* a torn line */ }
  }
  return hit;
}
/** query-migrate's answer as the figures printed for a round. */
function rawFigures(s) {
  const ram = s.ram ?? {};
  return { total: s['total-time'], setup: s['setup-time'], downtime: s.downtime, rounds: ram['dirty-sync-count'], transferredMiB: mib(ram.transferred), remainingMiB: mib(ram.remaining), dirtyPagesRate: ram['dirty-pages-rate'], throttle: s['cpu-throttle-percentage'] ?? 0 };
}

// The shim's argv for the template VM, with its monitor and console (sockets the shim listens on)
// as a QMP server and a file, and without -S: raw QEMU with the same VM.
let shimTemplate;
function sameArgv(tag, qmp, serial) {
  const { argv, from } = shimTemplate;
  const out = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === '-S') continue;
    if (a === '-chardev' && argv[k + 1].includes(from.monitor)) { out.push('-qmp', `unix:${qmp},server=on,wait=off`); k += 3; continue; }
    if (a === '-chardev' && argv[k + 1].includes(from.console)) { out.push('-chardev', `file,id=ser0,path=${serial}`); k += 1; continue; }
    out.push(a.replace(`guest=${from.name},`, `guest=${tag},`).replace(from.uuid, randomUUID()));
  }
  return out;
}

function rawQemu(dir, tag, disk, extra, kind) {
  const qmp = join(dir, `${tag}-qmp.sock`);
  const serial = join(dir, `${tag}.serial`);
  const argv = kind === 'same' ? sameArgv(tag, qmp, serial) : [
    '-accel', 'tcg', '-machine', 'pc', '-m', String(MEMORY), '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none',
    '-kernel', KERNEL, '-initrd', INITRD, '-append', CMDLINE, '-serial', `file:${serial}`,
    '-drive', `file=${disk},if=virtio,format=raw`, '-qmp', `unix:${qmp},server=on,wait=off`,
  ];
  const p = spawn(QEMU, [...argv, ...extra], { stdio: 'ignore' });
  return { p, qmp, serial, argv: [...argv, ...extra] };
}

async function rawRound(dir, disk, i, kind) {
  const src = rawQemu(dir, `${kind}s${i}`, disk, [], kind);
  const sq = qmpSession(await connectRetry(src.qmp, now() + 30_000));
  await sq.greeting;
  await sq.execute('qmp_capabilities');
  await waitFor(src.serial, READY);
  const sock = join(dir, `${kind}m${i}.sock`);
  // The same CPU figures as virtq's rounds: the two QEMUs are told apart by their QMP socket's name.
  const cpu = cpuSampler({ src: `${kind}s${i}-qmp`, dst: `${kind}d${i}-qmp` });
  const t0 = now();
  // The floor's own steps, ms since its clock started, named as virtq's phases where they match
  // (prepared: the destination QEMU listens; running: its `cont` returned).
  const steps = {};
  const mark = (k) => { steps[k] = Math.round(now() - t0); };
  const dst = rawQemu(dir, `${kind}d${i}`, disk, ['-incoming', TRANSPORT === 'tcp' ? 'defer' : `unix:${sock}`], kind);
  if (i === 0) process.stderr.write(`raw-${kind} destination argv: ${JSON.stringify(dst.argv)}\n`);
  const dq = qmpSession(await connectRetry(dst.qmp, now() + 30_000));
  mark('qmpConnected');
  await dq.greeting;
  mark('greeting');
  await dq.execute('qmp_capabilities');
  let uri = `unix:${sock}`;
  if (TRANSPORT === 'tcp') {
    await dq.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    uri = `tcp:127.0.0.1:${(await dq.execute('query-migrate'))['socket-address'][0].port}`;
  }
  await sq.execute('migrate-set-parameters', { 'max-bandwidth': 2 ** 53 - 1, 'downtime-limit': MAX_DOWNTIME });
  mark('prepared');
  await sq.execute('migrate', { uri });
  mark('started');
  let s;
  for (;;) {
    s = await sq.execute('query-migrate');
    if (s.status === 'completed' || s.status === 'failed') break;
    await sleep(20);
  }
  if (s.status !== 'completed') throw new Error('raw migration failed');
  mark('completed');
  while ((await dq.execute('query-status')).status === 'inmigrate') await sleep(2);
  mark('loaded');
  await dq.execute('cont');
  const toCont = now() - t0;
  mark('running');
  // QEMU stores total-time and downtime just after it reports `completed` (see shim/vm/migration-qmp.ts finalStatus).
  for (let k = 0; k < 50 && !(s['total-time'] > 0); k++) { await sleep(2); s = await sq.execute('query-migrate'); }
  if (i === 0) {
    const caps = (await sq.execute('query-migrate-capabilities')).filter((c) => c.state).map((c) => c.capability);
    const p = await sq.execute('query-migrate-parameters');
    process.stderr.write(`raw-${kind} settings: ${JSON.stringify({ capabilities: caps, parameters: { 'max-bandwidth': p['max-bandwidth'], 'downtime-limit': p['downtime-limit'] } })}\n`);
  }
  // virtq's call returns once the source QEMU has exited (its result says `stopped: migrated`, and
  // libvirt's `virsh migrate` also ends the source before returning): the floor does the same, or
  // the two totals would not time the same steps. The figures above are read off the clock (virtq
  // reads them while the destination runs the guest). --raw-stop: SIGTERM (up to session 16 the
  // shim's way, the default) or SIGKILL (the shim's way since session 17).
  const t1 = now();
  const srcExit = new Promise((resolve) => { if (src.p.exitCode !== null || src.p.signalCode !== null) resolve(); else src.p.once('exit', resolve); });
  src.p.kill(RAW_STOP);
  await srcExit;
  const total = toCont + (now() - t1);
  const cpuMs = cpu.stop();
  steps.sourceStopped = Math.round(total);
  src.p.kill('SIGKILL');
  dst.p.kill('SIGKILL');
  sq.close();
  dq.close();
  return { total, toCont, downtime: s.downtime, qemuTotal: s['total-time'], qemu: rawFigures(s), phases: steps, cpuMs };
}

// libvirt: two private libvirtds started once for the run (libvirt-side.sh), one migration a round.
const LIBVIRT = o.has('libvirt');
const LV = join(dirname(fileURLToPath(import.meta.url)), 'libvirt-side.sh');
let lvState;
function libvirtRound(i) {
  const out = execFileSync('bash', [LV, 'round', lvState, `vqlvm${process.pid}-${i}`, String(MEMORY), KERNEL, INITRD, CMDLINE, READY, String(MAX_DOWNTIME)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const r = JSON.parse(out.trim().split('\n').at(-1));
  return { total: r.total, downtime: r.downtime ?? NaN, qemuTotal: NaN };
}

const shared = tmpRoot('vqbm-');
const [r1, r2] = [tmpRoot('vqb1-'), tmpRoot('vqb2-')];
const [r3, r4] = baseDist === undefined ? [] : [tmpRoot('vqb3-'), tmpRoot('vqb4-')];
const disk = join(shared, 'disk.img');
execFileSync('qemu-img', ['create', '-q', '-f', 'raw', disk, '8M']);
for (const r of [r1, r2, r3, r4].filter((x) => x !== undefined)) {
  mkdirSync(join(r, 'etc'), { recursive: true });
  writeFileSync(join(r, 'etc', 'lock.json'), JSON.stringify({ plugin: 'lockfile', lockspace: join(shared, 'lockspace') }));
}
const results = { virtq: [], 'virtq-base': [], raw: [], 'raw-pc': [], libvirt: [] };
const [a, b] = [await daemon(r1), await daemon(r2)];
const [c, d] = baseDist === undefined ? [] : [await daemon(r3, baseDist), await daemon(r4, baseDist)];
const fig = (r) => `${fmt(r.total)} ms [qemu ${JSON.stringify(r.qemu)}${r.phases === undefined ? '' : ` phases ${JSON.stringify(r.phases)}`}${r.cpuMs === undefined ? '' : ` cpuMs ${JSON.stringify(r.cpuMs)}`}]`;
try {
  if (LIBVIRT) lvState = execFileSync('bash', [LV, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  // The template: the argv virtq's shim builds for this VM (created once, read from its log, destroyed).
  // Every daemon of the run starts and destroys it once (session 13), not only the first source: a
  // root's first start probes the QEMU binary's capabilities (lib/cache/qemu-caps-*.json, kept across
  // restarts) and checks flock(1) (run/leases/flock-checked.json), ~300 ms that the first round's
  // destination alone paid (quiet session 12: round 1 522 ms to "prepared", the others 238 and 212).
  // A host's roots have both after their first VM; raw QEMU has no such step. Both sides now start warm.
  for (const [x, r] of [[a, r1], [b, r2], [c, r3], [d, r4]]) {
    if (x === undefined) continue;
    await x.api.create({ definition: {
      name: 'tmpl', memoryMiB: MEMORY, vcpus: 1, accel: 'tcg', kernel: { path: KERNEL, initrd: INITRD, cmdline: CMDLINE },
      disks: [{ path: disk, format: 'raw', target: 'vda' }],
    } });
    if (r === r1) shimTemplate = shimArgv(r1, 'tmpl');
    await x.api.destroy({ name: 'tmpl' });
  }
  for (let i = 0; i < ROUNDS; i++) {
    if (!VIRTQ_ONLY) {
      results.raw.push(await rawRound(shared, disk, i, 'same'));
      results['raw-pc'].push(await rawRound(shared, disk, i, 'pc'));
    }
    const ours = async () => results.virtq.push(await virtqRound(a, b, r2, r1, disk, i));
    const theirs = async () => results['virtq-base'].push(await virtqRound(c, d, r4, r3, disk, i));
    if (c === undefined) await ours();
    else if (i % 2 === 0) { await ours(); await theirs(); } else { await theirs(); await ours(); }
    if (LIBVIRT) results.libvirt.push(libvirtRound(i));
    const lv = LIBVIRT ? `, libvirt ${fmt(results.libvirt[i].total)} ms (downtime ${results.libvirt[i].downtime})` : '';
    const bs = c === undefined ? '' : `\n  virtq-base ${fig(results['virtq-base'][i])} (downtime ${results['virtq-base'][i].downtime})`;
    const raws = VIRTQ_ONLY ? '' : `\n  raw ${fig(results.raw[i])}\n  raw-pc ${fig(results['raw-pc'][i])}`;
    process.stderr.write(`round ${i}: virtq ${fig(results.virtq[i])}${bs}${raws}${lv}\n`);
  }
} finally {
  if (lvState !== undefined) execFileSync('bash', [LV, 'stop', lvState], { stdio: 'inherit' });
  for (const x of [a, b, c, d].filter((y) => y !== undefined)) {
    x.rpc.close();
    x.p.kill('SIGKILL');
  }
  for (const r of [r1, r2, r3, r4, shared].filter((y) => y !== undefined)) killUnder(r);
}
const row = (label, rs, key) => { const s = summarize(rs.map((r) => r[key])); return [label, key, fmt(s.p50), fmt(s.p90), fmt(s.min), fmt(s.max)]; };
const out = table(['who', 'figure (ms)', 'median', 'p90', 'min', 'max'], [
  row('raw QEMU, virtq\'s argv', results.raw, 'toCont'), row('raw QEMU, -machine pc', results['raw-pc'], 'toCont'),
  ...['total', 'qemuTotal', 'downtime'].flatMap((k) => [
    row('raw QEMU, virtq\'s argv', results.raw, k), row('raw QEMU, -machine pc', results['raw-pc'], k), row('virtq migrate --live', results.virtq, k),
    ...(c === undefined ? [] : [row('virtq-base migrate --live', results['virtq-base'], k)]),
  ]),
  ...(LIBVIRT ? [row('libvirt virsh migrate --live', results.libvirt, 'total'), row('libvirt virsh migrate --live', results.libvirt, 'downtime')] : []),
]);
// Medians of QEMU's figures per side, and of the steps of virtq's job (ms since the call reached the shim).
const medOf = (rs, get) => { const v = rs.map(get).filter((x) => typeof x === 'number' && Number.isFinite(x)); return v.length === 0 ? '-' : fmt(median(v)); };
const qkeys = ['total', 'setup', 'downtime', 'rounds', 'transferredMiB', 'remainingMiB', 'dirtyPagesRate', 'throttle'];
const qtable = table(['side', ...qkeys.map((k) => `${k} (p50)`)], [['raw', results.raw], ['raw-pc', results['raw-pc']], ['virtq', results.virtq]].map(([n, rs]) => [n, ...qkeys.map((k) => medOf(rs, (r) => r.qemu?.[k]))]));
// raw's steps beside them (raw's clock starts at the destination QEMU's spawn; virtq's at the call
// reaching the source shim, a few ms earlier): prepared, started, completed, running, sourceStopped match.
const pkeys = [...new Set([...Object.keys(results.virtq[0]?.phases ?? {}), ...Object.keys(results.raw[0]?.phases ?? {})])];
const ptable = table(['step', 'virtq: ms since the job began (p50)', ...(c === undefined ? [] : ['virtq-base (p50)']), 'raw (p50)', 'raw-pc (p50)'], pkeys.map((k) => [k, medOf(results.virtq, (r) => r.phases[k]), ...(c === undefined ? [] : [medOf(results['virtq-base'], (r) => r.phases[k])]), medOf(results.raw, (r) => r.phases?.[k]), medOf(results['raw-pc'], (r) => r.phases?.[k])]));
// CPU ms per process between the call and its answer (p50), per role: what competed with the QEMUs.
const roles = [...new Set([results.virtq, results['virtq-base'], results.raw].flatMap((rs) => rs.flatMap((r) => Object.keys(r.cpuMs ?? {}))))].sort();
const ctable = table(['process', 'virtq CPU ms (p50)', ...(c === undefined ? [] : ['virtq-base (p50)']), 'raw (p50)'], roles.map((k) => [k, medOf(results.virtq, (r) => r.cpuMs?.[k] ?? 0), ...(c === undefined ? [] : [medOf(results['virtq-base'], (r) => r.cpuMs?.[k] ?? 0)]), medOf(results.raw, (r) => r.cpuMs?.[k] ?? 0)]));
process.stdout.write(`${qtable}\n\n${ptable}\n\n${ctable}\n\n`);
const ratio = median(results.virtq.map((r) => r.total)) / median(results.raw.map((r) => r.total));
const baseRatio = c === undefined ? '' : `, virtq-base / raw ${(median(results['virtq-base'].map((r) => r.total)) / median(results.raw.map((r) => r.total))).toFixed(2)}, virtq / virtq-base ${(median(results.virtq.map((r) => r.total)) / median(results['virtq-base'].map((r) => r.total))).toFixed(2)} (baseline ${BASELINE})`;
const lvRatio = LIBVIRT ? `, virtq / libvirt ${(median(results.virtq.map((r) => r.total)) / median(results.libvirt.map((r) => r.total))).toFixed(2)}` : '';
const over = (rs) => rs.filter((r) => r.downtime > MAX_DOWNTIME).length;
const overs = `virtq / raw-pc ${(median(results.virtq.map((r) => r.total)) / median(results['raw-pc'].map((r) => r.total))).toFixed(2)}; downtime over the ${MAX_DOWNTIME} ms limit: raw ${over(results.raw)}/${ROUNDS}, raw-pc ${over(results['raw-pc'])}/${ROUNDS}, virtq ${over(results.virtq)}/${ROUNDS}${c === undefined ? '' : `, virtq-base ${over(results['virtq-base'])}/${ROUNDS}`}${LIBVIRT ? `, libvirt ${over(results.libvirt)}/${ROUNDS}` : ''}`;
process.stdout.write(`${out}\n\ntotal ratio virtq / raw (medians): ${ratio.toFixed(2)}${baseRatio}${lvRatio}; ${overs}\nrounds ${ROUNDS}, ${MEMORY} MiB, dirtying ${DIRTY} MiB, ${TRANSPORT}, raw stops its source with ${RAW_STOP}; load ${loadavg()}\n${JSON.stringify(machineFacts(QEMU))}\n`);
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify({ results, ratio }, null, 2));
