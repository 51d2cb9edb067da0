#!/usr/bin/env node
// Save and restore of the test guest (128 MiB, TCG) through virtqemud, side by side in one run
// with raw QEMU driven by a plain QMP script (the floor), rounds interleaved (issue 16).
//
//   virtq  save:    client.save(NAME, FILE) until its reply (VM paused, state streamed into the
//                   image through the shim's socket by a cat child, fsynced, QEMU stopped)
//          restore: client.restore(FILE) until its reply (virtqemud checks the header, a shim
//                   starts QEMU -incoming defer with the image's fd, migrate-incoming fd:N, cont)
//   raw    save:    stop, migrate-set-parameters max-bandwidth, migrate "exec:cat > FILE", poll
//                   query-migrate every 10 ms until completed, quit, wait for QEMU's exit
//          restore: spawn QEMU -incoming "exec:cat FILE" -S, connect QMP, poll query-migrate
//                   until completed, cont
//
//   raw+fsync: the raw save, then fsync of the image (virtq's image is fsynced before its rename)
//
//   --baseline DIST: also a second virtqemud run from another build's dist/ (e.g. main's), its own
//             root and VM, interleaved round by round: the "virtq-base" rows, and virtq / base.
//   Both virtqemuds run with their default warm shim pool (one idle shim, as users get it).
//
//   node bench/save/run.mjs [--rounds 7] [--baseline DIST] [--json FILE]      (after npm run build)
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { connectRetry, firstLine, fmt, killUnder, loadavg, machineFacts, now, options, qmpSession, REPO, sleep, snapshotDist, summarize, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 7);
const G = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
const KERNEL = join(G, 'vmlinuz');
const INITRD = join(G, 'initrd.cpio.gz');
const APPEND = 'console=ttyS0 quiet panic=-1';

async function waitFile(file, marker, ms = 120_000) {
  const end = now() + ms;
  while (now() < end) {
    if (existsSync(file) && readFileSync(file, 'latin1').includes(marker)) return;
    await sleep(100);
  }
  throw new Error(`no ${marker} in ${file}`);
}

// ---- raw QEMU -----------------------------------------------------------------------------------
function rawQemu(dir, extra) {
  const qmp = join(dir, `qmp-${Math.random().toString(36).slice(2)}.sock`);
  const proc = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-machine', 'pc', '-m', '128', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none',
    '-kernel', KERNEL, '-initrd', INITRD, '-append', APPEND, '-serial', `file:${join(dir, 'raw-serial.log')}`, '-qmp', `unix:${qmp},server=on,wait=off`, ...extra], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  return { proc, exited, qmp };
}
async function qmpOf(path) {
  const sock = await connectRetry(path, now() + 30_000, 1);
  const s = qmpSession(sock);
  await s.greeting;
  await s.execute('qmp_capabilities');
  return s;
}
async function untilMigrated(s) {
  for (;;) {
    const r = await s.execute('query-migrate');
    if (r.status === 'completed') return;
    if (r.status === 'failed') throw new Error(`migration failed: ${r['error-desc']}`);
    await sleep(10);
  }
}

// ---- main ---------------------------------------------------------------------------------------
// One virtq side: a virtqemud of `dist` under its own root, with one running guest to save and restore.
async function virtqSide(dist, prefix) {
  const root = tmpRoot(prefix);
  const daemon = spawn(process.execPath, [join(dist, 'bin/virtqemud.js'), '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
  const side = { root, daemon, vq: undefined, file: join(root, 'b1.save') };
  sides.push(side);
  await firstLine(daemon);
  daemon.stdout.resume();
  const { connect } = await import(join(dist, 'lib/client/index.js'));
  side.vq = await connect(`qemu:///system?root=${root}`);
  await side.vq.virtq.create({ definition: { name: 'b1', memoryMiB: 128, accel: 'tcg', kernel: { path: KERNEL, initrd: INITRD, cmdline: APPEND } } });
  await waitFile(join(root, 'log', 'b1.console.log'), 'GUEST-READY');
  return side;
}

async function virtqRound(side, into) {
  let t = now();
  await side.vq.virtq.save({ name: 'b1', file: side.file });
  into.save.push(now() - t);
  t = now();
  await side.vq.virtq.restore({ file: side.file });
  into.restore.push(now() - t);
}

const BASELINE = o.get('baseline');
const root = tmpRoot('vq-bench-save-');
const rawDir = join(root, 'raw');
const results = { virtq: { save: [], restore: [] }, 'virtq-base': { save: [], restore: [] }, raw: { save: [], restore: [] }, rawSync: { save: [] } };
const sides = [];
try {
  mkdirSync(rawDir, { recursive: true });
  const main = await virtqSide(join(REPO, 'dist'), 'vq-bench-sv-');
  const base = BASELINE === undefined ? undefined : await virtqSide(await snapshotDist('save-base', BASELINE), 'vq-bench-svb-');
  const vqFile = main.file;

  let raw = rawQemu(rawDir, []);
  let rs = await qmpOf(raw.qmp);
  await waitFile(join(rawDir, 'raw-serial.log'), 'GUEST-READY');
  const rawFile = join(rawDir, 'raw.save');
  await sleep(2000);

  for (let round = 0; round < ROUNDS; round++) {
    // virtq (this build, then the baseline build when given: the order alternates by round)
    const order = base === undefined ? [[main, results.virtq]] : round % 2 === 0 ? [[main, results.virtq], [base, results['virtq-base']]] : [[base, results['virtq-base']], [main, results.virtq]];
    for (const [side, into] of order) await virtqRound(side, into);
    // raw
    let t = now();
    await rs.execute('stop');
    await rs.execute('migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
    await rs.execute('migrate', { uri: `exec:cat > ${rawFile}` });
    await untilMigrated(rs);
    await rs.execute('quit').catch(() => undefined);
    await raw.exited;
    results.raw.save.push(now() - t);
    // The same, made durable as virtq's image is (fsync of the file after QEMU is done).
    const fh = await open(rawFile, 'r+');
    await fh.sync();
    await fh.close();
    results.rawSync.save.push(now() - t);
    rs.close();
    t = now();
    raw = rawQemu(rawDir, ['-S', '-incoming', `exec:cat ${rawFile}`]);
    rs = await qmpOf(raw.qmp);
    await untilMigrated(rs);
    await rs.execute('cont');
    results.raw.restore.push(now() - t);
    const baseText = base === undefined ? '' : `, virtq-base ${fmt(results['virtq-base'].save.at(-1))}/${fmt(results['virtq-base'].restore.at(-1))} ms`;
    process.stderr.write(`round ${round + 1}/${ROUNDS}: virtq ${fmt(results.virtq.save.at(-1))}/${fmt(results.virtq.restore.at(-1))} ms${baseText}, raw ${fmt(results.raw.save.at(-1))}/${fmt(results.raw.restore.at(-1))} ms\n`);
  }
  const sizes = { virtq: statSync(vqFile).size, raw: statSync(rawFile).size };
  for (const side of sides) {
    await side.vq.virtq.destroy({ name: 'b1' });
    side.vq.close();
  }
  raw.proc.kill('SIGKILL');
  const row = (side, op) => {
    const s = summarize(results[side][op]);
    return [side, op, String(s.n), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max)];
  };
  const ratio = (op) => summarize(results.virtq[op]).p50 / summarize(results.raw[op]).p50;
  const out = [
    table(['side', 'op', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], [
      row('virtq', 'save'), ...(base === undefined ? [] : [row('virtq-base', 'save')]), row('raw', 'save'), row('rawSync', 'save'),
      row('virtq', 'restore'), ...(base === undefined ? [] : [row('virtq-base', 'restore')]), row('raw', 'restore'),
    ]),
    '',
    ...(base === undefined ? [] : [`virtq-base / raw (medians): save ${(summarize(results['virtq-base'].save).p50 / summarize(results.raw.save).p50).toFixed(2)}×, restore ${(summarize(results['virtq-base'].restore).p50 / summarize(results.raw.restore).p50).toFixed(2)}×; virtq / virtq-base: save ${(summarize(results.virtq.save).p50 / summarize(results['virtq-base'].save).p50).toFixed(2)}×, restore ${(summarize(results.virtq.restore).p50 / summarize(results['virtq-base'].restore).p50).toFixed(2)}× (baseline ${BASELINE})`]),
    `virtq / raw (medians): save ${ratio('save').toFixed(2)}× (${(summarize(results.virtq.save).p50 / summarize(results.rawSync.save).p50).toFixed(2)}× raw + fsync), restore ${ratio('restore').toFixed(2)}× (target ≤ 1.2×)`,
    `image sizes: virtq ${(sizes.virtq / 2 ** 20).toFixed(1)} MiB (header + stream), raw ${(sizes.raw / 2 ** 20).toFixed(1)} MiB`,
    `machine: ${JSON.stringify(machineFacts())}; loadavg after: ${loadavg()}`,
  ].join('\n');
  console.log(out);
  const json = o.get('json');
  if (json !== undefined) writeFileSync(json, JSON.stringify({ results, sizes }, null, 2));
} finally {
  for (const side of sides) {
    side.daemon.kill('SIGKILL');
    killUnder(side.root);
    rmSync(side.root, { recursive: true, force: true });
  }
  killUnder(root);
  if (process.env.KEEP_ROOT === undefined) rmSync(root, { recursive: true, force: true }); else console.error('kept', root);
}
