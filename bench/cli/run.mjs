#!/usr/bin/env node
// The CLI as whole processes (issue #15, target 3): `virtq --version`, `virtq list --all` with N
// VMs defined and `virtq dominfo NAME`, spawn → exit, against `node -e 0` (the floor) and virsh,
// all interleaved round by round so drifting load hits every variant alike.
//
//   variants  floor      node -e 0
//             tiny       node on a file that prints a constant (floor-tiny.cjs): "node running any file"
//             tiny-sh    the same behind sh, waited for (floor-tiny.sh): the launcher's shape until session 9
//             tiny-exec  the same exec'd by sh (floor-tiny-exec.sh): the launcher's shape for hot words now
//             call       list/dominfo only: node connecting to virtqemud's ro socket, writing one
//                        ready-made request frame and printing the reply's bytes (floor-call.cjs)
//             fast       dist/bin/virtq.js run as a program: its launcher execs node on the fast path
//                        for hot read commands, virtq-fast.cjs (docs/decisions/0028-cli-startup-snapshot.md)
//             snapshot   the same with VIRTQ_NO_FAST=1: the launcher execs node on the CLI's
//                        startup snapshot
//             bundle     the same with VIRTQ_NO_FAST=1 VIRTQ_NO_SNAPSHOT=1: node on the ESM bundle
//             base       --base DIR: another build's dist/bin/virtq.js (e.g. main's), through its shebang
//             virsh      virsh --version; list/dominfo on libvirt's test driver (test:///FILE, N
//                        domains, in-process: no daemon, so a lower bound for virsh)
//
// Each variant runs twice a round: once as it is (wall time) and once under bash, whose `times`
// gives the child's CPU time (user + sys), steadier than wall time on a loaded machine.
//
//   node bench/cli/run.mjs [--vms 200] [--runs 30] [--base DIR] [--dist DIR] [--json out.json]
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanupRegistry, firstLine, fmt, idleDefinition, loadavg, machineFacts, now, options, snapshotDist, summarize, table, tmpRoot,
} from '../lib/common.mjs';

const o = options();
const VMS = o.num('vms', 200);
const RUNS = o.num('runs', 30);
const BASE = o.get('base');
const JSON_OUT = o.get('json');
const cleanup = cleanupRegistry();
const facts = { ...machineFacts(), loadBefore: loadavg() };
const DIST = await snapshotDist('cli', o.get('dist'));
const CLI = join(DIST, 'bin', 'virtq.js');
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(DIST, 'lib', 'protocol', 'index.js'));

// virtqemud with VMS defined (shut off) VMs: a listing of VMS rows, no shims needed.
const root = cleanup.root(tmpRoot('vqcli-'));
const daemon = cleanup.child(spawn(join(DIST, 'bin', 'virtqemud.js'), ['--root', root], { stdio: ['ignore', 'pipe', 'pipe'] }));
daemon.stderr.resume();
await firstLine(daemon);
daemon.stdout.resume();
const rpc = await RpcClient.connect(daemonSockets(rootLayout(root)).rw, { clock: systemClock(), defaultTimeoutMs: 60_000 });
const names = Array.from({ length: VMS }, (_, i) => `vm${String(i).padStart(3, '0')}`);
for (const name of names) await rpc.call('virtq', 'define', { definition: idleDefinition(name) });
rpc.close();
const uri = `qemu:///system?root=${root}`;

// libvirt's test driver with the same number of domains.
const virshOk = spawnSync('virsh', ['--version'], { encoding: 'utf8' }).status === 0;
const testXml = join(root, 'libvirt-test.xml');
writeFileSync(testXml, `<node>\n${names.map((n) => `<domain type='test'><name>${n}</name><memory>32768</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`).join('\n')}\n</node>\n`);
const testUri = `test://${testXml}`;

const commands = {
  version: { virtq: ['--version'], virsh: ['--version'] },
  list: { virtq: ['-c', uri, 'list', '--all'], virsh: ['-c', testUri, 'list', '--all'] },
  dominfo: { virtq: ['-c', uri, 'dominfo', names[0]], virsh: ['-c', testUri, 'dominfo', names[0]] },
};
const HERE = dirname(fileURLToPath(import.meta.url));
const { createCodec } = await import(join(DIST, 'lib', 'protocol', 'codec.js'));
const { encodeFrame } = await import(join(DIST, 'lib', 'protocol', 'framing.js'));
const roSocket = daemonSockets(rootLayout(root)).ro;
const frame = (proc, body) => Buffer.from(encodeFrame(createCodec().encode({ prog: 'virtq', proc, type: 'call', serial: 1, status: 'ok', body }))).toString('hex');
const calls = { list: frame('listDomains', {}), dominfo: frame('getInfo', { name: names[0] }) };
const variants = [
  { name: 'floor', run: () => [process.execPath, ['-e', '0'], {}] },
  { name: 'tiny', run: () => [process.execPath, [join(HERE, 'floor-tiny.cjs')], {}] },
  { name: 'tiny-sh', run: () => [join(HERE, 'floor-tiny.sh'), [], {}] },
  { name: 'tiny-exec', run: () => [join(HERE, 'floor-tiny-exec.sh'), [], {}] },
  { name: 'call', run: (c) => (calls[c] === undefined ? undefined : [process.execPath, [join(HERE, 'floor-call.cjs'), roSocket, calls[c]], {}]) },
  { name: 'fast', run: (c) => [CLI, commands[c].virtq, {}] },
  { name: 'snapshot', run: (c) => [CLI, commands[c].virtq, { VIRTQ_NO_FAST: '1' }] },
  { name: 'bundle', run: (c) => [CLI, commands[c].virtq, { VIRTQ_NO_FAST: '1', VIRTQ_NO_SNAPSHOT: '1' }] },
  ...(BASE === undefined ? [] : [{ name: 'base', run: (c) => [join(BASE, 'bin', 'virtq.js'), commands[c].virtq, {}] }]),
  ...(virshOk ? [{ name: 'virsh', run: (c) => ['virsh', commands[c].virsh, {}] }] : []),
];

/** One spawn → exit, in ms; throws on a failed run. Returns the lines printed too. */
async function once(cmd, args, env) {
  const t0 = now();
  const child = cleanup.child(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((r) => child.once('close', (c) => r(c)));
  const ms = now() - t0;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.slice(0, 300)}`);
  return { ms, lines: out.split('\n').filter((l) => l.trim() !== '').length, err };
}

/** The same run under bash: the CPU time (user + sys, ms) of the command and its children, from bash's `times`. */
async function cpuOnce(cmd, args, env) {
  const { err } = await once('bash', ['-c', '"$@" >/dev/null; s=$?; times >&2; exit $s', 'bash', cmd, ...args], env);
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(err);
  if (m === null) throw new Error(`no times from bash: ${err.slice(-200)}`);
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

const times = {};
const cpu = {};
const lines = {};
for (let r = -2; r < RUNS; r++) {
  for (const c of Object.keys(commands)) {
    // Rotate the order every round so no variant always runs first.
    const order = variants.map((_, i) => variants[(i + r + 2) % variants.length]);
    for (const v of order) {
      const run = v.run(c);
      if (run === undefined) continue;
      const [cmd, args, env] = run;
      const res = await once(cmd, args, env);
      const cpuMs = await cpuOnce(cmd, args, env);
      if (r < 0) continue;
      (times[`${c}/${v.name}`] ??= []).push(res.ms);
      (cpu[`${c}/${v.name}`] ??= []).push(cpuMs);
      lines[`${c}/${v.name}`] = res.lines;
    }
  }
}
daemon.kill('SIGKILL');
cleanup.run();
facts.loadAfter = loadavg();

const summary = (t) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { ...summarize(v), lines: lines[k] }]));
const results = { facts, vms: VMS, runs: RUNS, base: BASE, summary: summary(times), cpu: summary(cpu) };
const out = [];
out.push(`machine: ${facts.cpu}, ${facts.nproc} vCPU, ${facts.memGiB} GiB, kernel ${facts.kernel}, node ${facts.node}`);
out.push(`load average before ${facts.loadBefore}, after ${facts.loadAfter}; ${RUNS} runs of each, interleaved; ${VMS} VMs defined`);
for (const [title, s] of [['wall time, ms', results.summary], ['CPU time (user + sys), ms', results.cpu]]) {
  const floor = (c) => s[`${c}/floor`].p50;
  const cell = (c, v) => {
    const x = s[`${c}/${v}`];
    return x === undefined ? '–' : `${fmt(x.p50)} (p90 ${fmt(x.p90)})${v === 'floor' ? '' : `, ${x.p50 >= floor(c) ? '+' : '−'}${fmt(Math.abs(x.p50 - floor(c)))}`}`;
  };
  out.push('', `${title}: p50 (p90), then p50 − \`node -e 0\`'s`, '');
  out.push(table(['variant', ...Object.keys(commands).map((c) => `${c}${c === 'list' ? ` (${lines[`${c}/fast`]} lines)` : ''}`)],
    variants.map((v) => [v.name, ...Object.keys(commands).map((c) => cell(c, v.name))])));
}
console.log(out.join('\n'));
if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
