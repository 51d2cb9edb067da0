// A stand-in for virtnetworkd in the kill -9 test: opens the driver over a state dir inside a test
// namespace, starts a network, creates a port, prints one JSON line, then idles until killed.
// argv: STATE_DIR NETNS CONFIG_JSON
import { systemClock } from '../../protocol/clock.js';
import { hostRunner } from '../../drivers/network/host-runner.js';
import { NetworkDriver } from '../../drivers/network/network-driver.js';
import { netnsRunner } from '../../drivers/network/runner.js';
import type { NetworkConfig } from '../../drivers/network/types.js';

const [stateDir, ns, config] = process.argv.slice(2);
if (stateDir === undefined || ns === undefined || config === undefined) throw new Error('usage: STATE_DIR NETNS CONFIG_JSON');
// The injected clock's timers never keep a process alive (protocol/clock.ts), and a daemon's
// sockets are not open yet while it starts its networks: something must hold the loop.
setInterval(() => undefined, 60_000);
const cfg = JSON.parse(config) as NetworkConfig;
const driver = await NetworkDriver.open({ stateDir, runner: netnsRunner(hostRunner(), ns), clock: systemClock() });
const status = await driver.startNetwork(cfg);
const port = await driver.createPort(cfg.name, { vmUuid: '11111111-2222-4333-8444-555555555555' });
process.stdout.write(`${JSON.stringify({ dnsmasqPid: status.dnsmasqPid, port })}\n`);
