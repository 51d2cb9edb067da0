// virtnetworkd as a daemon of the framework: the network driver over lib/network (its record of
// what runs, so a daemon killed with -9 adopts bridges, dnsmasq, NAT tables and ports), network
// definitions under etc/network, the ports of VMs released once the VM is gone (checked every few
// seconds through the VMs' runtime state files), and the `network` program's handlers.
import { join } from 'node:path';
import { networkProgram, type Disposable, type NetworkEvent } from '../protocol/index.js';
import { served, type ServiceDefinition } from '../daemon/run-service.js';
import { LineLogHub } from '../daemon/line-log.js';
import { stringOption, wholeNumber } from '../daemon/options.js';
import { hostRunner } from '../drivers/network/host-runner.js';
import { NetworkDriver } from '../drivers/network/network-driver.js';
import type { NetworkEvent as DriverEvent } from '../drivers/network/types.js';
import { hostNetworkView } from './default-network.js';
import { networkHandlers } from './handlers.js';
import { NetworkMetrics } from './metrics.js';
import { NetworkStore } from './network-store.js';
import { PortManager } from './port-manager.js';
import { vmLiveness } from './vm-liveness.js';

/** virtnetworkd's own options. */
export interface NetworkdOptions {
  /** How often the ports of gone VMs are looked for, ms. */
  portCheckMs: number;
  /** How long a port just created (or handed back) is kept whatever its VM looks like, ms. */
  portGraceMs: number;
}

/** virtnetworkd, defined for the framework. */
export function networkdService(version: string): ServiceDefinition<NetworkdOptions> {
  return {
    daemon: 'virtnetworkd',
    version,
    makeLogs: (opts) => new LineLogHub(opts),
    summary: `Serves networks (nat: a bridge with DHCP, DNS and masquerading; isolated: the same without NAT;
bridge: an existing host bridge) and the ports VMs use on them (one tap each), with DHCP leases.
Runs ip, nft and dnsmasq, so it needs CAP_NET_ADMIN (root); a port lives as long as its VM.`,
    options: { 'port-check-ms': { type: 'string' }, 'port-grace-ms': { type: 'string' } },
    optionsUsage: `  --port-check-ms N   how often ports of VMs that are gone are released (default 5000)
  --port-grace-ms N   how long a new port is kept before its VM must show up (default 30000)`,
    parseExtra: (values) => ({
      portCheckMs: wholeNumber(stringOption(values, 'port-check-ms'), 'port-check-ms', 5000, 10),
      portGraceMs: wholeNumber(stringOption(values, 'port-grace-ms'), 'port-grace-ms', 30_000, 0),
    }),
    build: async ({ layout, clock, logs, env, extra, service }) => {
      const log = logs.module('network');
      const runner = hostRunner({ env });
      const publish = (ev: Omit<NetworkEvent, 'timestamp'>): void => {
        service.server.publish('network', 'event', { ...ev, timestamp: clock.now() }, (c) => c.subscriptions.has('network'));
      };
      let metrics: NetworkMetrics | undefined;
      const onDriverEvent = (ev: DriverEvent): void => {
        const { kind, ...facts } = ev;
        if (kind === 'dnsmasq-restarted') {
          metrics?.dnsmasqRestarted(ev.network);
          publish({ kind: 'dnsmasq-restarted', network: ev.network });
        }
        const level = kind === 'dnsmasq-restart-failed' ? 'error' : kind === 'dnsmasq-exited' || kind === 'dnsmasq-restarted' ? 'warn' : 'info';
        log[level]({ ...facts, msgId: kind.toUpperCase().replaceAll('-', '_') }, kind.replaceAll('-', ' '));
      };
      const driver = await NetworkDriver.open({ stateDir: join(layout.state, 'network'), runner, clock, onEvent: onDriverEvent });
      metrics = new NetworkMetrics(service.metrics, driver);
      const m = metrics;
      const store = new NetworkStore(layout, driver, log, { changed: (kind, network) => publish({ kind, network }) });
      await store.load(() => hostNetworkView(runner));
      const ports = new PortManager({
        driver, store, clock, log, alive: vmLiveness(layout), graceMs: extra.portGraceMs,
        events: { emit: publish, created: (n, s) => m.portCreated(n, s), released: (n, r) => m.portReleased(n, r) },
      });
      let timer: Disposable | undefined;
      let closed = false;
      const check = (): void => {
        void ports.reap().catch(() => 0).finally(() => {
          if (!closed) timer = clock.setTimeout(check, extra.portCheckMs);
        });
      };
      return {
        served: [served(networkProgram, networkHandlers({ store, ports, driver, log }))],
        info: () => ({
          networks: store.all().length, active: driver.activeNetworks().length,
          ports: driver.activeNetworks().reduce((n, c) => n + driver.networkStatus(c.name).ports, 0),
        }),
        // The first check runs at once: after a restart, ports of VMs that went meanwhile go now.
        serving: check,
        close: async () => {
          closed = true;
          timer?.dispose();
          // Networks, dnsmasq and taps stay up for the VMs; a successor adopts them.
          driver.detach();
        },
      };
    },
  };
}
