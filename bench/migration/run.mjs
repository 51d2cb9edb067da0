#!/usr/bin/env node
// Live migration benchmark (issue 16): the test guest (128 MiB, TCG, one raw disk) moved between
// two virtqemud roots on this machine with `migrate --live`, interleaved round by round with the
// floor: two raw QEMUs driven by a plain QMP script (the destination spawned with -incoming on a
// unix socket, `migrate`, poll query-migrate, `cont` on the destination).
//   total     virtq: the client's `migrate` call, from the call to its reply (destination claimed
//             and started, memory sent, leases handed over, guest running there, source stopped);
//             raw: from spawning the destination QEMU to its `cont` returning.
//   downtime  QEMU's own figure (query-migrate `downtime`) on the source.
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
//   node bench/migration/run.mjs [--rounds 5] [--memory 128] [--dirty MIB] [--max-downtime 300] [--transport unix|tcp] [--libvirt] [--dist DIR] [--baseline DIST] [--json out.json]
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import {
  connectRetry, firstLine, fmt, killUnder, loadavg, machineFacts, median, now, options, qmpSession, sleep, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';

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
  const t0 = now();
  const r = await src.api.migrate({ name, destUri: `qemu:///system?root=${dstRoot}`, live: true, transport: TRANSPORT, maxDowntimeMs: MAX_DOWNTIME });
  const total = now() - t0;
  await dst.api.destroy({ name });
  return { total, downtime: r.downtimeMs ?? NaN, qemuTotal: r.totalMs };
}

function rawQemu(dir, tag, disk, extra) {
  const qmp = join(dir, `${tag}-qmp.sock`);
  const serial = join(dir, `${tag}.serial`);
  const p = spawn(QEMU, [
    '-accel', 'tcg', '-machine', 'pc', '-m', String(MEMORY), '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none',
    '-kernel', KERNEL, '-initrd', INITRD, '-append', CMDLINE, '-serial', `file:${serial}`,
    '-drive', `file=${disk},if=virtio,format=raw`, '-qmp', `unix:${qmp},server=on,wait=off`, ...extra,
  ], { stdio: 'ignore' });
  return { p, qmp, serial };
}

async function rawRound(dir, disk, i) {
  const src = rawQemu(dir, `s${i}`, disk, []);
  const sq = qmpSession(await connectRetry(src.qmp, now() + 30_000));
  await sq.greeting;
  await sq.execute('qmp_capabilities');
  await waitFor(src.serial, READY);
  const sock = join(dir, `m${i}.sock`);
  const t0 = now();
  const dst = rawQemu(dir, `d${i}`, disk, ['-incoming', TRANSPORT === 'tcp' ? 'defer' : `unix:${sock}`]);
  const dq = qmpSession(await connectRetry(dst.qmp, now() + 30_000));
  await dq.greeting;
  await dq.execute('qmp_capabilities');
  let uri = `unix:${sock}`;
  if (TRANSPORT === 'tcp') {
    await dq.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    uri = `tcp:127.0.0.1:${(await dq.execute('query-migrate'))['socket-address'][0].port}`;
  }
  await sq.execute('migrate-set-parameters', { 'max-bandwidth': 2 ** 53 - 1, 'downtime-limit': MAX_DOWNTIME });
  await sq.execute('migrate', { uri });
  let s;
  for (;;) {
    s = await sq.execute('query-migrate');
    if (s.status === 'completed' || s.status === 'failed') break;
    await sleep(20);
  }
  if (s.status !== 'completed') throw new Error('raw migration failed');
  while ((await dq.execute('query-status')).status === 'inmigrate') await sleep(2);
  await dq.execute('cont');
  const total = now() - t0;
  src.p.kill('SIGKILL');
  dst.p.kill('SIGKILL');
  sq.close();
  dq.close();
  return { total, downtime: s.downtime, qemuTotal: s['total-time'] };
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
const results = { virtq: [], 'virtq-base': [], raw: [], libvirt: [] };
const [a, b] = [await daemon(r1), await daemon(r2)];
const [c, d] = baseDist === undefined ? [] : [await daemon(r3, baseDist), await daemon(r4, baseDist)];
try {
  if (LIBVIRT) lvState = execFileSync('bash', [LV, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  for (let i = 0; i < ROUNDS; i++) {
    results.raw.push(await rawRound(shared, disk, i));
    const ours = async () => results.virtq.push(await virtqRound(a, b, r2, r1, disk, i));
    const theirs = async () => results['virtq-base'].push(await virtqRound(c, d, r4, r3, disk, i));
    if (c === undefined) await ours();
    else if (i % 2 === 0) { await ours(); await theirs(); } else { await theirs(); await ours(); }
    if (LIBVIRT) results.libvirt.push(libvirtRound(i));
    const lv = LIBVIRT ? `, libvirt ${fmt(results.libvirt[i].total)} ms (downtime ${results.libvirt[i].downtime})` : '';
    const bs = c === undefined ? '' : `, virtq-base ${fmt(results['virtq-base'][i].total)} ms (downtime ${results['virtq-base'][i].downtime})`;
    process.stderr.write(`round ${i}: virtq ${fmt(results.virtq[i].total)} ms (downtime ${results.virtq[i].downtime})${bs}, raw ${fmt(results.raw[i].total)} ms (downtime ${results.raw[i].downtime})${lv}\n`);
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
  ...['total', 'qemuTotal', 'downtime'].flatMap((k) => [
    row('raw QEMU + QMP script', results.raw, k), row('virtq migrate --live', results.virtq, k),
    ...(c === undefined ? [] : [row('virtq-base migrate --live', results['virtq-base'], k)]),
  ]),
  ...(LIBVIRT ? [row('libvirt virsh migrate --live', results.libvirt, 'total'), row('libvirt virsh migrate --live', results.libvirt, 'downtime')] : []),
]);
const ratio = median(results.virtq.map((r) => r.total)) / median(results.raw.map((r) => r.total));
const baseRatio = c === undefined ? '' : `, virtq-base / raw ${(median(results['virtq-base'].map((r) => r.total)) / median(results.raw.map((r) => r.total))).toFixed(2)}, virtq / virtq-base ${(median(results.virtq.map((r) => r.total)) / median(results['virtq-base'].map((r) => r.total))).toFixed(2)} (baseline ${BASELINE})`;
const lvRatio = LIBVIRT ? `, virtq / libvirt ${(median(results.virtq.map((r) => r.total)) / median(results.libvirt.map((r) => r.total))).toFixed(2)}` : '';
const over = (rs) => rs.filter((r) => r.downtime > MAX_DOWNTIME).length;
const overs = `downtime over the ${MAX_DOWNTIME} ms limit: raw ${over(results.raw)}/${ROUNDS}, virtq ${over(results.virtq)}/${ROUNDS}${c === undefined ? '' : `, virtq-base ${over(results['virtq-base'])}/${ROUNDS}`}${LIBVIRT ? `, libvirt ${over(results.libvirt)}/${ROUNDS}` : ''}`;
process.stdout.write(`${out}\n\ntotal ratio virtq / raw (medians): ${ratio.toFixed(2)}${baseRatio}${lvRatio}; ${overs}\nrounds ${ROUNDS}, ${MEMORY} MiB, dirtying ${DIRTY} MiB, ${TRANSPORT}; load ${loadavg()}\n${JSON.stringify(machineFacts(QEMU))}\n`);
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify({ results, ratio }, null, 2));
