#!/usr/bin/env node
// The destination QEMU's start until it listens for a migration, the two ways the shim has started
// it (session 19): `defer` — spawned with `-incoming defer`, then, once its monitor greets,
// qmp_capabilities and (one round trip) `migrate-set-capabilities events` + `migrate-incoming
// unix:PATH` (the shim before session 19); `argv` — spawned with `-incoming unix:PATH -global
// migration.x-events=on`, ready at qmp_capabilities (the shim since). Pairs alternate which goes
// first; defer's listen round trip is also timed alone. Each round also checks that the `argv` QEMU has the events capability on and listens.
//   node bench/migration/incoming-start.mjs [--rounds 12] [--memory 128]
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { connectRetry, fmt, loadavg, now, options, qmpSession, summarize, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const ROUNDS = o.num('rounds', 12);
const MEMORY = o.num('memory', 128);
const QEMU = process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64';
const GUEST = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
if (!existsSync(join(GUEST, 'vmlinuz'))) throw new Error(`the test guest is not built under ${GUEST}: bash scripts/build-test-guest.sh`);
const dir = tmpRoot('vqis-');

async function once(kind, i) {
  const qmp = join(dir, `${kind}${i}-qmp.sock`);
  const sock = join(dir, `${kind}${i}-migrate.sock`);
  const incoming = kind === 'argv' ? ['-incoming', `unix:${sock}`, '-global', 'migration.x-events=on'] : ['-incoming', 'defer'];
  const argv = [
    '-accel', 'tcg', '-machine', 'pc', '-m', String(MEMORY), '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-S',
    '-kernel', join(GUEST, 'vmlinuz'), '-initrd', join(GUEST, 'initrd.cpio.gz'), '-append', 'console=ttyS0 quiet',
    '-qmp', `unix:${qmp},server=on,wait=off`, ...incoming,
  ];
  const t0 = now();
  const p = spawn(QEMU, argv, { stdio: 'ignore' });
  try {
    const q = qmpSession(await connectRetry(qmp, now() + 30_000));
    await q.greeting;
    await q.execute('qmp_capabilities');
    const attached = now() - t0;
    if (kind === 'defer') {
      await Promise.all([
        q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] }),
        q.execute('migrate-incoming', { uri: `unix:${sock}` }),
      ]);
    }
    const ready = now() - t0;
    trip.push(ready - attached);
    const events = (await q.execute('query-migrate-capabilities')).find((c) => c.capability === 'events')?.state;
    if (events !== true || !existsSync(sock)) throw new Error(`${kind}: events ${events}, socket ${existsSync(sock)}`);
    q.close();
    return ready;
  } finally {
    p.kill('SIGKILL');
  }
}

const res = { defer: [], argv: [] };
/** defer: the listen's round trip alone (attached → listening), what `argv` takes out; argv: 0. */
let trip = [];
const trips = { defer: [], argv: [] };
const load0 = loadavg();
for (let i = 0; i < ROUNDS; i++) {
  for (const kind of i % 2 === 0 ? ['defer', 'argv'] : ['argv', 'defer']) {
    trip = trips[kind];
    res[kind].push(await once(kind, i));
  }
}
const wins = res.argv.filter((v, i) => v < res.defer[i]).length;
console.log(table(['start', 'spawn → listening p50', 'p90', 'min', 'max'], Object.entries(res).map(([k, v]) => {
  const s = summarize(v);
  return [k, fmt(s.p50), fmt(s.p90), fmt(s.min), fmt(s.max)];
})));
const t = summarize(trips.defer);
console.log(`defer's listen round trip alone (monitor attached → listening): p50 ${fmt(t.p50)} p90 ${fmt(t.p90)} min ${fmt(t.min)} max ${fmt(t.max)} ms`);
console.log(`argv shorter in ${wins} of ${ROUNDS} pairs; per pair (defer − argv): ${res.defer.map((v, i) => fmt(v - res.argv[i])).join(', ')}`);
console.log(`rounds ${ROUNDS}, ${MEMORY} MiB; load ${load0} → ${loadavg()}`);
rmSync(dir, { recursive: true, force: true });
