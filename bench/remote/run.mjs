#!/usr/bin/env node
// Remote access benchmark (issue #19): one virtqemud serving both its unix socket and
// `--listen-tls` on loopback with mutual TLS 1.3 (certificates made with openssl), 200 defined
// VMs (the listing comes from virtqemud's cache). Sequential round trips, interleaved round by
// round over the two transports from one client process: getState of one VM, and listDomains of
// all 200. The ratio TLS / unix is the figure the issue targets (≤ 1.5 for the state query).
//
//   node bench/remote/run.mjs [--vms 200] [--state-calls 3000] [--list-calls 300] [--rounds 3] [--json out.json]
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO, fmt, idleDefinition, killUnder, loadavg, machineFacts, options, summarize, table, tmpRoot } from '../lib/common.mjs';

const opts = options();
const VMS = Number(opts.get('vms', 200));
const STATE = Number(opts.get('state-calls', 3000));
const LIST = Number(opts.get('list-calls', 300));
const ROUNDS = Number(opts.get('rounds', 3));
const { connect } = await import(join(REPO, 'dist/lib/client/index.js'));

const root = tmpRoot('vq-bench-remote-');
const pki = join(root, 'pki');
mkdirSync(join(pki, 'client'), { recursive: true });
const ssl = (...args) => execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'ignore', 'pipe'] });
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
ssl('req', '-x509', ...ec, '-keyout', 'cakey.pem', '-out', 'client/cacert.pem', '-days', '2', '-subj', '/CN=bench-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
writeFileSync(join(pki, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
writeFileSync(join(pki, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
for (const [who, ext] of [['server', 'server.ext'], ['client/client', 'client.ext']]) {
  ssl('req', ...ec, '-keyout', `${who}key.pem`, '-out', `${who}.csr`, '-subj', `/O=bench/CN=${who.replace('/', '-')}`);
  ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'client/cacert.pem', '-CAkey', 'cakey.pem', '-CAcreateserial', '-out', `${who}cert.pem`, '-days', '2', '-extfile', ext);
}

const daemon = spawn(process.execPath, [join(REPO, 'dist/bin/virtqemud.js'), '--root', root, '--listen-tls', '127.0.0.1:0',
  '--tls-cert', join(pki, 'servercert.pem'), '--tls-key', join(pki, 'serverkey.pem'), '--tls-ca', join(pki, 'client/cacert.pem')], { stdio: ['ignore', 'pipe', 'inherit'] });
const ready = JSON.parse(await new Promise((resolve) => createInterface({ input: daemon.stdout }).once('line', resolve)));
try {
  const unix = await connect(`qemu:///system?root=${root}`);
  const tls = await connect(`qemu+tls://127.0.0.1:${ready.tlsPort}/system?pkipath=${join(pki, 'client')}`);
  for (let i = 0; i < VMS; i++) await unix.virtq.define({ definition: idleDefinition(`vm${i}`) });
  const samples = { unix: { state: [], list: [] }, tls: { state: [], list: [] } };
  const time = async (fn, n, into) => {
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      await fn();
      into.push(Number(process.hrtime.bigint() - t) / 1000);
    }
  };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, c] of [['unix', unix], ['tls', tls]]) {
      await time(() => c.virtq.getState({ name: 'vm7' }), STATE, samples[name].state);
      await time(() => c.virtq.listDomains({}), LIST, samples[name].list);
    }
  }
  unix.close();
  tls.close();
  const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, { state: summarize(v.state), list: summarize(v.list) }]));
  const row = (what, key) => [what, ...['unix', 'tls'].flatMap((t) => [fmt(s[t][key].p50), fmt(s[t][key].p90), fmt(s[t][key].p99)]), (s.tls[key].p50 / s.unix[key].p50).toFixed(2)];
  console.log(`machine: ${JSON.stringify(machineFacts())}; load before end: ${loadavg()}; ${VMS} VMs, ${ROUNDS} rounds`);
  console.log(table(['round trip (µs)', 'unix p50', 'unix p90', 'unix p99', 'TLS p50', 'TLS p90', 'TLS p99', 'TLS/unix p50'],
    [row(`getState (${STATE}×${ROUNDS})`, 'state'), row(`listDomains of ${VMS} (${LIST}×${ROUNDS})`, 'list')]));
  if (opts.get('json')) writeFileSync(opts.get('json'), JSON.stringify(s, null, 2));
} finally {
  daemon.kill('SIGKILL');
  killUnder(root);
}
