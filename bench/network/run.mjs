// virtnetworkd's ports against taps made by hand (issue #14), everything inside a network
// namespace of the bench's own (deleted at the end; the host is never touched):
//   1. port creation: createPort over RPC (tap + record), N times, against the same tap made by
//      hand with `ip -batch` (the floor) and with two plain `ip` commands;
//   2. port create → VM link up: a VM started by virtq-shim on the default network (port asked of
//      virtnetworkd, then QEMU) until QEMU has the tap open (carrier up) and until the guest has
//      its DHCP lease, against the same shim given a tap made by hand on the same bridge
//      (interface type "tap"): the same QEMU command line but for who made the tap;
//   3. guest-to-guest throughput: `dd | nc` between two test guests (TCG) on virtq ports, and
//      between two guests on hand-made taps on a hand-made bridge (the floor; also started by the
//      shim, so QEMU runs with the same flags), interleaved.
// libvirt's network driver keeps its state in /etc/libvirt and /var/lib/libvirt (no --root), so
// it is not run here. Plain ESM over dist/: run `npm run build` first; needs root.
// Options: --ports N (100), --boots N (3), --mib N (32), --rounds N (3), --json FILE,
// --only creation|linkup|throughput.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fmt, loadavg, machineFacts, median, options, REPO, summarize, table } from '../lib/common.mjs';

const { connectNetwork } = await import(join(REPO, 'dist/lib/client/network-client.js'));
const { RpcClient, systemClock } = await import(join(REPO, 'dist/lib/protocol/index.js'));

const opt = options();
const PORTS = opt.num('ports', 100);
const BOOTS = opt.num('boots', 3);
const MIB = opt.num('mib', 32);
const ROUNDS = opt.num('rounds', 3);
const only = opt.get('only');
const want = (part) => only === undefined || only === part;
const GUEST = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
const NS = `vqb-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), 'vq-bench-net-'));
const procs = [];

const inNs = (cmd, args, input) => execFileSync('ip', ['netns', 'exec', NS, cmd, ...args], { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function spawnInNs(cmd, args, stdio = ['ignore', 'pipe', 'pipe']) {
  const p = spawn('ip', ['netns', 'exec', NS, cmd, ...args], { stdio });
  procs.push(p);
  return p;
}

/** Polls `fn` every `ms` until it returns something truthy. */
async function until(fn, what, timeoutMs = 120_000, ms = 5) {
  const end = now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(ms);
  }
}

function carrierUp(tap) {
  try {
    const [l] = JSON.parse(inNs('ip', ['-j', 'link', 'show', 'dev', tap]));
    return l.flags.includes('LOWER_UP');
  } catch {
    return false;
  }
}

/** A console as a growing string, written to through `write`. */
function consoleOf(readable, write) {
  const c = { text: '', write };
  readable.on('data', (d) => { c.text += d.toString(); });
  c.waitFor = (re, from = 0, timeoutMs = 300_000) => until(() => re.exec(c.text.slice(from)), `${re} on a guest console`, timeoutMs, 10);
  // The console shell wakes on a first line; markers are computed so the echoed command never matches.
  c.run = async (command, tag) => {
    const mark = c.text.length;
    c.write(`${command}; echo ${tag}-$((40+2))\n`);
    await c.waitFor(new RegExp(`${tag}-42`), mark);
  };
  return c;
}

function handTap(tap, bridge) {
  inNs('ip', ['-batch', '-'], `tuntap add dev ${tap} mode tap\nlink set dev ${tap} master ${bridge} up\n`);
}

/** A VM started by virtq-shim on network `net`, its console through the shim. */
async function shimGuest(name, iface, cmdline) {
  const file = join(root, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, memoryMiB: 128, accel: 'tcg', kernel: { path: join(GUEST, 'vmlinuz'), initrd: join(GUEST, 'initrd.cpio.gz'), cmdline: `console=ttyS0 quiet panic=-1 ${cmdline}` }, interfaces: [iface] }));
  const t0 = now();
  const p = spawnInNs(process.execPath, [join(REPO, 'dist/bin/virtq-shim.js'), '--root', root, '--no-register', '--definition', file]);
  const line = await new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(out.split('\n')[0]); });
    p.once('exit', (code) => reject(new Error(`shim ${name} exited ${code}`)));
  });
  const reply = JSON.parse(line);
  if (!reply.ok) throw new Error(`shim ${name}: ${JSON.stringify(reply.error)}`);
  const state = JSON.parse(readFileSync(join(root, 'run', 'shims', `${name}.json`), 'utf8'));
  const tap = state.definition.interfaces[0].port?.tap ?? state.definition.interfaces[0].ifname;
  const rpc = await RpcClient.connect(reply.socket, { clock: systemClock() });
  const stream = await rpc.openStream('virtq', 'openConsole', { name });
  return { t0, tap, qemuPid: reply.qemuPid, rpc, con: consoleOf(Readable.from(stream), (t) => stream.write(t)), shim: p };
}

async function portCreation(client) {
  const rpc = [];
  for (let i = 0; i < PORTS; i++) {
    const t0 = now();
    const p = await client.api.createPort({ network: 'default', vmUuid: '11111111-2222-4333-8444-555555555555', vmName: 'bench' });
    rpc.push(now() - t0);
    await client.api.deletePort({ network: 'default', id: p.id });
  }
  const batch = [];
  const plain = [];
  for (let i = 0; i < PORTS; i++) {
    let t0 = now();
    inNs('ip', ['-batch', '-'], 'tuntap add dev vqh-b mode tap\nlink set dev vqh-b address fe:54:00:00:00:01\nlink set dev vqh-b alias bench\nlink set dev vqh-b master virtqbr0 up\n');
    batch.push(now() - t0);
    inNs('ip', ['link', 'del', 'vqh-b']);
    t0 = now();
    inNs('ip', ['tuntap', 'add', 'dev', 'vqh-p', 'mode', 'tap']);
    inNs('ip', ['link', 'set', 'dev', 'vqh-p', 'master', 'virtqbr0', 'up']);
    plain.push(now() - t0);
    inNs('ip', ['link', 'del', 'vqh-p']);
  }
  // Runs here go through `ip netns exec` (one more exec than the daemon, which runs in the namespace).
  return [['createPort over RPC (virtnetworkd)', summarize(rpc)], ['hand: one ip -batch (same 4 steps), via ip netns exec', summarize(batch)], ['hand: ip tuntap add + ip link set, via ip netns exec', summarize(plain)]];
}

async function linkUp() {
  const virtq = { carrier: [], lease: [] };
  const hand = { carrier: [], lease: [] };
  const stop = async (g) => {
    process.kill(g.qemuPid, 'SIGKILL');
    await new Promise((r) => g.shim.once('exit', r));
    g.rpc.close();
  };
  for (let i = 0; i < BOOTS; i++) {
    const g = await shimGuest(`lu${i}`, { type: 'network', network: 'default' }, 'tg_net=1');
    await until(() => carrierUp(g.tap), 'the port\'s carrier');
    virtq.carrier.push(now() - g.t0);
    await g.con.waitFor(/TG-NET-UP eth0 \d/);
    virtq.lease.push(now() - g.t0);
    await stop(g);

    const t0 = now();
    const tap = `vqh-l${i}`;
    handTap(tap, 'virtqbr0');
    const h = await shimGuest(`lh${i}`, { type: 'tap', ifname: tap }, 'tg_net=1');
    await until(() => carrierUp(tap), 'the hand tap\'s carrier');
    hand.carrier.push(now() - t0);
    await h.con.waitFor(/TG-NET-UP eth0 \d/);
    hand.lease.push(now() - t0);
    await stop(h);
    inNs('ip', ['link', 'del', tap]);
  }
  return { virtq, hand };
}

async function throughput() {
  const [va, vb] = await Promise.all([shimGuest('tpa', { type: 'network', network: 'default' }, 'tg_net=1'), shimGuest('tpb', { type: 'network', network: 'default' }, 'tg_net=1')]);
  const ipOf = async (g) => (await g.con.waitFor(/TG-NET-UP eth0 (\d+\.\d+\.\d+\.\d+)\s/))[1];
  const vIps = [await ipOf(va), await ipOf(vb)];
  inNs('ip', ['link', 'add', 'hbr0', 'type', 'bridge']);
  inNs('ip', ['link', 'set', 'hbr0', 'up']);
  const hands = await Promise.all(['vqh-t0', 'vqh-t1'].map((tap, k) => { handTap(tap, 'hbr0'); return shimGuest(`tph${k}`, { type: 'tap', ifname: tap }, ''); }));
  for (const [k, h] of hands.entries()) {
    await h.con.waitFor(/GUEST-READY/);
    h.con.write('\n');
    await h.con.run(`ip addr add 10.123.0.${k + 1}/24 dev eth0; ip link set eth0 up`, 'CFG');
  }
  for (const g of [va, vb]) {
    g.con.write('\n');
    await g.con.run('true', 'WAKE');
  }
  const count = MIB * 16;
  const transfer = async ([from, to], ip) => {
    const mark = to.con.text.length;
    to.con.write('nc -l -p 5001 >/dev/null; echo RECV-$((40+2))\n');
    await sleep(300);
    const t0 = now();
    from.con.write(`dd if=/dev/zero bs=65536 count=${count} 2>/dev/null | nc ${ip} 5001\n`);
    await to.con.waitFor(/RECV-42/, mark);
    return now() - t0;
  };
  const ms = { virtq: [], hand: [] };
  for (let r = 0; r < ROUNDS; r++) {
    ms.virtq.push(await transfer([va, vb], vIps[1]));
    ms.hand.push(await transfer([hands[0], hands[1]], '10.123.0.2'));
  }
  return ms;
}

const report = { facts: machineFacts(), loadavg: { before: loadavg() } };
try {
  execFileSync('ip', ['netns', 'add', NS]);
  inNs('ip', ['link', 'set', 'lo', 'up']);
  const daemon = spawnInNs(process.execPath, [join(REPO, 'dist/bin/virtnetworkd.js'), '--root', root]);
  await new Promise((resolve, reject) => { daemon.stdout.once('data', resolve); daemon.once('exit', () => reject(new Error('virtnetworkd exited'))); });
  const client = await connectNetwork(`network:///system?root=${root}`);
  await client.api.startNetwork({ name: 'default' });

  if (want('creation')) {
  const creation = await portCreation(client);
  console.log(`\n## Port creation (${PORTS} each, ms)\n`);
  console.log(table(['what', 'p50', 'p90', 'p99', 'min', 'max'], creation.map(([label, s]) => [label, fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.min), fmt(s.max)])));
  const admin = await RpcClient.connect(join(root, 'run', 'virtnetworkd-admin.sock'), { clock: systemClock() });
  const fam = (await admin.call('admin', 'getMetrics', {})).families.find((f) => f.name === 'virtq_network_port_create_duration_seconds');
  admin.close();
  const val = (suffix) => fam?.values.find((v) => v.metricName === `virtq_network_port_create_duration_seconds_${suffix}`)?.value;
  if (val('count') !== undefined) console.log(`\nInside virtnetworkd (its histogram): mean ${fmt((val('sum') / val('count')) * 1000)} ms over ${val('count')} creations.`);
  report.creation = Object.fromEntries(creation);
  }

  if (want('linkup')) {
  const lu = await linkUp();
  console.log(`\n## Start → link up, ${BOOTS} boots each (ms, median; TCG guest)\n`);
  console.log(table(['what', 'QEMU has the tap (carrier up)', 'guest has its DHCP lease'], [
    ['virtq-shim: port from virtnetworkd, then QEMU', fmt(median(lu.virtq.carrier)), fmt(median(lu.virtq.lease))],
    ['virtq-shim on a tap made by hand (ip tuntap + master) on the same bridge', fmt(median(lu.hand.carrier)), fmt(median(lu.hand.lease))],
  ]));
  report.linkUp = lu;
  }

  if (want('throughput')) {
  const tp = await throughput();
  const rate = (ms) => (MIB / (ms / 1000)).toFixed(1);
  console.log(`\n## Guest-to-guest throughput, ${MIB} MiB dd | nc, ${ROUNDS} rounds interleaved (TCG)\n`);
  console.log(table(['what', 'median ms', 'MiB/s', 'ratio to floor'], [
    ['virtq ports on the default network\'s bridge', fmt(median(tp.virtq)), rate(median(tp.virtq)), `${(median(tp.hand) / median(tp.virtq)).toFixed(2)}×`],
    ['hand-made taps on a hand-made bridge (floor)', fmt(median(tp.hand)), rate(median(tp.hand)), '1.00×'],
  ]));
  report.throughput = tp;
  }
  client.close();
} finally {
  for (const p of procs) p.kill('SIGKILL');
  await sleep(300);
  try {
    for (const pid of execFileSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  } catch { /* namespace gone */ }
  await sleep(100);
  try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* never made */ }
  rmSync(root, { recursive: true, force: true });
  report.loadavg.after = loadavg();
  console.log(`\nload average before ${report.loadavg.before}, after ${report.loadavg.after}; ${report.facts.cpu}, ${report.facts.nproc} CPUs, ${report.facts.qemu}`);
  const json = opt.get('json');
  if (json !== undefined) writeFileSync(json, JSON.stringify(report, null, 2));
}
