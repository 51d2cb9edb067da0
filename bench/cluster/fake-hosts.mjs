#!/usr/bin/env node
// Cheap fake hosts for bench/cluster/listing.mjs: one process serving many virtqemud read-only
// sockets, each a real RpcServer (role aggregator, the real `virtq` program, its argument
// validation and reply path) whose listDomains answers that host's share of fake VMs.
//   fake-hosts.mjs DIR FIRST COUNT VMS_PER_HOST    -> prints {"ready":true} once all listen
import { join } from 'node:path';
import { REPO } from '../lib/common.mjs';

const [dir, first, count, perHost] = process.argv.slice(2);
const { RpcServer, silentLogger, systemClock, virtqProgram } = await import(join(REPO, 'dist/lib/protocol/index.js'));
const { fakeVm } = await import('./fake-fleet.mjs');

for (let h = Number(first); h < Number(first) + Number(count); h++) {
  const rows = Array.from({ length: Number(perHost) }, (_, i) => {
    const vm = fakeVm(h, i);
    return { name: vm.name, uuid: vm.uuid, state: 'running', reason: 'booted', persistent: true, autostart: false, shimUp: true };
  });
  const server = new RpcServer({ daemon: 'virtqemud', version: '0.1.0', role: 'aggregator', clock: systemClock(), log: silentLogger() });
  server.register({ program: virtqProgram, handlers: { listDomains: () => ({ domains: rows }) } });
  await server.listen(join(dir, `h${h}.ro.sock`), 'ro', 0o600);
}
process.stdout.write('{"ready":true}\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
