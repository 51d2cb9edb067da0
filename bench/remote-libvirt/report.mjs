#!/usr/bin/env node
// Reads the per-round JSON files of bench/remote-libvirt/run.sh and prints one side-by-side table:
// for each transport (unix as the reference, TLS, ssh) and each figure (state round trip, listing
// of all VMs), libvirt's and virtq's p50 / p90 / p99 (each the median over the rounds of that
// round's percentile: rounds are interleaved, so a load drift hits both sides in the same round)
// and the verdict against issue #19's target "each ≤ libvirt's" (on the p50).
//
//   node bench/remote-libvirt/report.mjs OUTDIR ROUNDS VMS CALLS LISTCALLS [JSONFILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, loadavg, machineFacts, median, table } from '../lib/common.mjs';

const [dir, roundsArg, vms, calls, listCalls, jsonOut] = process.argv.slice(2);
const rounds = Number(roundsArg);
const read = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const pick = (s, k) => ({ p50: s.p50 * k, p90: s.p90 * k, p99: s.p99 * k });

// Per round: { figure: { transport: { libvirt: {p50,p90,p99}, virtq: {...} } } }, state in µs, list in ms.
const perRound = [];
for (let r = 1; r <= rounds; r++) {
  const lv = read(`lv-${r}.json`);
  const vt = read(`vq-tls-${r}.json`);
  const vs = read(`vq-ssh-${r}.json`).figures;
  perRound.push({
    state: {
      unix: { libvirt: pick(lv.unix.stateUs, 1), virtq: pick(vs.state.unix, 1000) },
      tls: { libvirt: pick(lv.tls.stateUs, 1), virtq: pick(vt.tls.state, 1) },
      ssh: { libvirt: pick(lv.ssh.stateUs, 1), virtq: pick(vs.state.ssh, 1000) },
    },
    list: {
      unix: { libvirt: pick(lv.unix.listMs, 1), virtq: pick(vs.list.unix, 1) },
      tls: { libvirt: pick(lv.tls.listMs, 1), virtq: pick(vt.tls.list, 0.001) },
      ssh: { libvirt: pick(lv.ssh.listMs, 1), virtq: pick(vs.list.ssh, 1) },
    },
  });
}
const merged = {};
const rows = [];
const names = { state: 'state round trip (µs)', list: `list all ${vms}+ VMs (ms)` };
for (const fig of ['state', 'list']) {
  merged[fig] = {};
  for (const tr of ['unix', 'tls', 'ssh']) {
    const m = {};
    for (const side of ['libvirt', 'virtq']) {
      m[side] = Object.fromEntries(['p50', 'p90', 'p99'].map((p) => [p, median(perRound.map((x) => x[fig][tr][side][p]))]));
    }
    merged[fig][tr] = m;
    const d = fig === 'state' ? 0 : 2;
    const ratio = m.virtq.p50 / m.libvirt.p50;
    const verdict = tr === 'unix' ? 'reference' : ratio <= 1 ? 'met (≤ libvirt)' : 'not met';
    const tails = ['p90', 'p99'].map((p) => `${p} ${(m.virtq[p] / m.libvirt[p]).toFixed(2)}×`).join(', ');
    rows.push([names[fig], tr === 'tls' ? 'TLS' : tr, ...['p50', 'p90', 'p99'].map((p) => fmt(m.libvirt[p], d)),
      ...['p50', 'p90', 'p99'].map((p) => fmt(m.virtq[p], d)), `${ratio.toFixed(2)}×`, tails, verdict]);
  }
}
console.log(`machine: ${JSON.stringify(machineFacts())}; load at the end: ${loadavg()}; ${rounds} interleaved rounds; ${calls} state calls and ${listCalls} listings per transport per round\n`);
console.log(table(['figure', 'transport', 'libvirt p50', 'libvirt p90', 'libvirt p99', 'virtq p50', 'virtq p90', 'virtq p99', 'virtq/libvirt p50', 'virtq/libvirt tails', 'target (p50)'], rows));
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ rounds: perRound, merged, machine: machineFacts(), load: loadavg() }, null, 2));
