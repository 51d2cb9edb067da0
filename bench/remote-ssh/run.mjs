#!/usr/bin/env node
// qemu+ssh:// against the unix socket, side by side in one run (issue #19). One virtqemud under a
// temporary root with N persistent VMs (default 200; defined, not running: a listing row costs the
// same either way) and one running VM (the idle guest, TCG) for the per-VM call, which virtqemud
// forwards to its shim. A real sshd (Debian's) on a loopback port with throwaway keys; the far
// side's `virtq proxy` is this tree's dist/bin/virtq.js.
//
//   state     getState of the running VM, one call after another (round trip)
//   list      listDomains of all N+1 VMs, one after another
//   connect   connect + one getState + close (ssh: a fresh ssh process, handshake and proxy each time)
//   (baselines of the ssh connect: `ssh HOST true` with the same options, and `node virtq.js proxy`
//   started locally until it exits on a missing socket: the far side's process start)
//
// Rounds interleave the transports, so drifting load hits both alike. Medians, p90 and p99 in ms.
//
//   node bench/remote-ssh/run.mjs [--vms 200] [--calls 2000] [--connects 20] [--rounds 3] [--json out.json]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  REPO, firstLine, fmt, idleDefinition, killUnder, loadavg, machineFacts, now, options, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';

const o = options();
const VMS = o.num('vms', 200);
const CALLS = o.num('calls', 2000);
const CONNECTS = o.num('connects', 20);
const ROUNDS = o.num('rounds', 3);

const dist = await snapshotDist('remote-ssh');
const { connect } = await import(join(dist, 'lib', 'client', 'index.js'));
const root = tmpRoot('vq-bssh-');
const sshDir = tmpRoot('vq-bsshd-');

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** sshd -D on a loopback port with its own host key, user key and config (as test/helpers/ssh-server.ts). */
async function startSshd() {
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const keygen = (name) => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sshDir, name)]);
    return readFileSync(join(sshDir, `${name}.pub`), 'utf8').trim();
  };
  const hostPub = keygen('host_key');
  writeFileSync(join(sshDir, 'authorized_keys'), `${keygen('user_key')}\n`, { mode: 0o600 });
  const port = await freePort();
  writeFileSync(join(sshDir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub.split(' ').slice(0, 2).join(' ')}\n`);
  writeFileSync(join(sshDir, 'sshd_config'), [
    'ListenAddress 127.0.0.1', `HostKey ${join(sshDir, 'host_key')}`, `AuthorizedKeysFile ${join(sshDir, 'authorized_keys')}`,
    `PidFile ${join(sshDir, 'sshd.pid')}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password', 'PrintMotd no', 'MaxStartups 100', '',
  ].join('\n'));
  const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(sshDir, 'sshd_config'), '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise((resolve, reject) => {
    let log = '';
    proc.stderr.on('data', (d) => { log += d; if (log.includes('Server listening on')) resolve(); });
    proc.once('exit', (c) => reject(new Error(`sshd exited ${c}: ${log}`)));
  });
  return { proc, port };
}

async function timed(n, fn) {
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = now();
    await fn();
    lat[i] = now() - t;
  }
  return lat;
}

const daemon = spawn(process.execPath, [join(dist, 'bin', 'virtqemud.js'), '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
let sshd;
const results = { machine: machineFacts(), loadBefore: loadavg(), vms: VMS, calls: CALLS, connects: CONNECTS, rounds: ROUNDS, figures: {} };
try {
  await firstLine(daemon);
  sshd = await startSshd();
  const unixUri = `qemu:///system?root=${root}`;
  const sshUri = `qemu+ssh://root@127.0.0.1:${sshd.port}/system?root=${root}&keyfile=${join(sshDir, 'user_key')}&known_hosts=${join(sshDir, 'known_hosts')}&command=${join(dist, 'bin', 'virtq.js')}`;
  const setup = await connect(unixUri);
  for (let i = 0; i < VMS; i++) await setup.virtq.define({ definition: idleDefinition(`idle${String(i).padStart(3, '0')}`) });
  await setup.virtq.define({ definition: idleDefinition('run0') });
  await setup.virtq.start({ name: 'run0' });
  setup.close();

  const sides = { unix: unixUri, ssh: sshUri };
  const raw = { state: { unix: [], ssh: [] }, list: { unix: [], ssh: [] }, connect: { unix: [], ssh: [] } };
  const rows = {};
  const baselines = { sshTrue: [], proxyStart: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [side, uri] of Object.entries(sides)) {
      const conn = await connect(uri);
      for (let i = 0; i < 200; i++) await conn.virtq.getState({ name: 'run0' });
      raw.state[side].push(...await timed(CALLS, () => conn.virtq.getState({ name: 'run0' })));
      rows[side] = (await conn.virtq.listDomains({})).domains.length;
      raw.list[side].push(...await timed(Math.max(50, CALLS / 10), () => conn.virtq.listDomains({})));
      conn.close();
      raw.connect[side].push(...await timed(CONNECTS, async () => {
        const c = await connect(uri);
        await c.virtq.getState({ name: 'run0' });
        c.close();
      }));
      process.stderr.write(`round ${r + 1} ${side} done\n`);
    }
    const sshArgs = ['-T', '-o', 'BatchMode=yes', '-p', String(sshd.port), '-l', 'root', '-i', join(sshDir, 'user_key'), '-o', `UserKnownHostsFile=${join(sshDir, 'known_hosts')}`, '127.0.0.1', 'true'];
    baselines.sshTrue.push(...await timed(CONNECTS, async () => { spawnSync('ssh', sshArgs); }));
    baselines.proxyStart.push(...await timed(CONNECTS, async () => { spawnSync(process.execPath, [join(dist, 'bin', 'virtq.js'), 'proxy', `qemu:///system?root=${sshDir}/none`]); }));
  }
  results.rows = rows;
  results.loadAfter = loadavg();
  const out = [];
  for (const [what, bySide] of Object.entries(raw)) {
    const u = summarize(bySide.unix);
    const s = summarize(bySide.ssh);
    results.figures[what] = { unix: u, ssh: s };
    out.push([what, fmt(u.p50, 3), fmt(u.p90, 3), fmt(u.p99, 3), fmt(s.p50, 3), fmt(s.p90, 3), fmt(s.p99, 3), `${fmt(s.p50 / u.p50, 2)}×`]);
  }
  console.log(`\n${VMS + 1} VMs listed (unix ${rows.unix} rows, ssh ${rows.ssh} rows); load ${results.loadBefore} -> ${results.loadAfter}\n`);
  console.log(table(['ms', 'unix p50', 'unix p90', 'unix p99', 'ssh p50', 'ssh p90', 'ssh p99', 'ssh/unix p50'], out));
  results.baselines = { sshTrue: summarize(baselines.sshTrue), proxyStart: summarize(baselines.proxyStart) };
  console.log(`\nbaselines of the ssh connect (ms, p50 / p90): ssh HOST true ${fmt(results.baselines.sshTrue.p50)} / ${fmt(results.baselines.sshTrue.p90)}; virtq proxy process start ${fmt(results.baselines.proxyStart.p50)} / ${fmt(results.baselines.proxyStart.p90)}`);
  if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify(results, null, 2));
} finally {
  sshd?.proc.kill('SIGKILL');
  daemon.kill('SIGKILL');
  killUnder(root);
  rmSync(root, { recursive: true, force: true });
  rmSync(sshDir, { recursive: true, force: true });
}
