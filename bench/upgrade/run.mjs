#!/usr/bin/env node
// Shim upgrade benchmark (issue 17 part 3, decision 0021): what the guest sees when its shim is
// replaced, two ways, side by side on ONE running VM, alternated round by round:
//   upgrade   `admin upgrade` on the shim: the successor takes the sockets and QEMU's QMP and
//             console connections as fds.
//   kill-9    kill -9 of the shim, then `virtq-shim --attach NAME` (today's recovery path):
//             QEMU redials its monitor and console (reconnect=1) once the successor listens.
// The guest (the Linux test guest, TCG) runs a serial heartbeat typed on its console: every
// 10 ms (plus the loop's own fork cost) it prints `HB <seq> <uptime>`. From the console log:
//   guest gap   the guest's own clock between consecutive beats (per beat across lost lines): a
//               guest that stopped shows a long gap. Baseline: the same over a quiet window.
//   lost beats  sequence numbers missing from the log: output QEMU dropped while no shim was
//               connected to the console (QEMU discards serial output of an unconnected chardev).
//   dark ms     how long nobody read QEMU's output: the upgrade's reported cut-over; for kill-9,
//               lost beats × the median beat interval.
//
//   node bench/upgrade/run.mjs [--rounds 5] [--dist DIR] [--json out.json]
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstLine, fmt, killUnder, loadavg, machineFacts, median, now, options, sleep, snapshotDist, summarize, table, tmpRoot } from '../lib/common.mjs';
import os from 'node:os';

const opt = options();
const ROUNDS = opt.num('rounds', 5);
const dist = opt.get('dist') ?? await snapshotDist('upgrade');
const { RpcClient, systemClock } = await import(join(dist, 'lib/protocol/index.js'));
const SHIM = join(dist, 'bin/virtq-shim.js');
const clock = systemClock();
const root = tmpRoot('vqup-');
const NAME = 'hb';
const guestDir = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(os.homedir(), '.cache'), 'virtq', 'test-guest');
const LOOP = 'i=0; while :; do i=$((i+1)); read u r < /proc/uptime; echo "HB $i $u"; usleep 10000; done\n';
const consoleLog = join(root, 'log', `${NAME}.console.log`);
const sock = (s) => join(root, 'run', 'shims', s);

const beats = () => [...readFileSync(consoleLog, 'latin1').matchAll(/HB (\d+) (\d+\.\d+)\r?\n/g)].map((m) => ({ seq: Number(m[1]), t: Number(m[2]) }));
function analyse(list) {
  let lost = 0;
  let maxGap = 0;
  const steps = [];
  for (let i = 1; i < list.length; i++) {
    const d = list[i].seq - list[i - 1].seq;
    if (d > 1) lost += d - 1;
    const per = ((list[i].t - list[i - 1].t) * 1000) / Math.max(1, d);
    steps.push(per);
    maxGap = Math.max(maxGap, per);
  }
  return { lost, maxGap, medianStep: median(steps) };
}
const lastSeq = () => beats().at(-1)?.seq ?? 0;
async function waitSeq(seq, ms = 60_000) {
  const end = now() + ms;
  while (lastSeq() < seq) {
    if (now() > end) throw new Error(`beat ${seq} never came`);
    await sleep(20);
  }
}

function startShim(args) {
  const child = spawn(process.execPath, [SHIM, '--root', root, '--no-register', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.resume();
  return child;
}

const results = { facts: machineFacts(), rounds: ROUNDS, baseline: [], upgrade: [], kill9: [] };
try {
  writeFileSync(join(root, 'def.json'), JSON.stringify({ name: NAME, memoryMiB: 128, vcpus: 1, accel: 'tcg', kernel: { path: join(guestDir, 'vmlinuz'), initrd: join(guestDir, 'initrd.cpio.gz'), cmdline: 'console=ttyS0 quiet panic=-1' } }));
  let shim = startShim(['--definition', join(root, 'def.json')]);
  const ready = JSON.parse((await firstLine(shim)).line);
  if (!ready.ok) throw new Error(JSON.stringify(ready));
  const rpc = await RpcClient.connect(sock(`${NAME}.sock`), { clock, defaultTimeoutMs: 60_000 });
  const con = await rpc.openStream('virtq', 'openConsole', { name: NAME });
  let text = '';
  void (async () => { try { for await (const d of con) text += Buffer.from(d).toString('latin1'); } catch { /* closed */ } })();
  for (let i = 0; !text.includes('GUEST-READY'); i++) { if (i > 1200) throw new Error('no GUEST-READY'); await sleep(50); }
  con.write('\n');
  await sleep(1000);
  con.write(LOOP);
  await waitSeq(200);
  rpc.close();
  for (let round = 0; round < ROUNDS; round++) {
    // Quiet window: the heartbeat's own jitter.
    const q0 = lastSeq();
    await waitSeq(q0 + 100);
    results.baseline.push(analyse(beats().filter((b) => b.seq >= q0)).maxGap);

    // upgrade
    const u0 = lastSeq();
    const admin = await RpcClient.connect(sock(`${NAME}-admin.sock`), { clock, defaultTimeoutMs: 120_000 });
    const t0 = now();
    const up = await admin.call('admin', 'upgrade', {});
    const callMs = now() - t0;
    admin.close();
    await waitSeq(lastSeq() + 100);
    const ua = analyse(beats().filter((b) => b.seq >= u0));
    results.upgrade.push({ ...ua, darkMs: up.cutoverMs, callMs });
    await sleep(500); // the old shim exits

    // kill -9 → --attach
    const k0 = lastSeq();
    const state = JSON.parse(readFileSync(sock(`${NAME}.json`), 'utf8'));
    const tk = now();
    process.kill(state.shimPid, 'SIGKILL');
    await sleep(50);
    shim = startShim(['--attach', NAME]);
    const r2 = JSON.parse((await firstLine(shim)).line);
    const attachMs = now() - tk;
    if (!r2.ok) throw new Error(JSON.stringify(r2));
    await waitSeq(lastSeq() + 100);
    const ka = analyse(beats().filter((b) => b.seq >= k0));
    results.kill9.push({ ...ka, darkMs: ka.lost * ka.medianStep, callMs: attachMs });
    console.error(`round ${round + 1}/${ROUNDS}: upgrade gap ${fmt(ua.maxGap)} ms lost ${ua.lost}; kill-9 gap ${fmt(ka.maxGap)} ms lost ${ka.lost}; load ${loadavg()}`);
  }
} finally {
  killUnder(root);
}

const row = (label, list, key) => { const s = summarize(list.map((r) => (key === undefined ? r : r[key]))); return [label, fmt(s.p50), fmt(s.p90), fmt(s.max)]; };
const out = [
  `Machine: ${results.facts.cpu}, ${results.facts.nproc} CPUs (shared), ${results.facts.memGiB} GiB, kernel ${results.facts.kernel}, ${results.facts.qemu}, Node ${results.facts.node}; TCG; ${ROUNDS} rounds each, alternated on one VM; ${results.facts.date}.`,
  '',
  table(['figure (ms unless said)', 'p50', 'p90', 'max'], [
    row('baseline: max guest gap in a quiet window of 100 beats', results.baseline),
    row('upgrade: max guest gap (per beat)', results.upgrade, 'maxGap'),
    row('kill -9 → --attach: max guest gap (per beat)', results.kill9, 'maxGap'),
    row('upgrade: beats lost (count)', results.upgrade, 'lost'),
    row('kill -9 → --attach: beats lost (count)', results.kill9, 'lost'),
    row('upgrade: dark (nobody reading QEMU output; reported cut-over)', results.upgrade, 'darkMs'),
    row('kill -9 → --attach: dark (lost beats × median beat interval)', results.kill9, 'darkMs'),
    row('upgrade: admin upgrade call, send → reply', results.upgrade, 'callMs'),
    row('kill -9 → --attach: kill → successor ready line', results.kill9, 'callMs'),
    row('median beat interval during upgrade rounds', results.upgrade, 'medianStep'),
  ]),
].join('\n');
console.log(out);
if (opt.get('json') !== undefined) writeFileSync(opt.get('json'), JSON.stringify(results, null, 2));
