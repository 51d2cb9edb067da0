// virtnetworkd's own metrics, beside the framework's process and RPC ones: ports and DHCP leases
// per active network (read when scraped), dnsmasq restarts, port creation latency and port
// releases by reason. Labels are network names (the operator's own, few) and fixed reasons.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { metricCatalogue as m } from '../daemon/metrics-catalogue.js';
import type { NetworkDriver } from '../drivers/network/network-driver.js';

/** The network daemon's metrics on `registry`. */
export class NetworkMetrics {
  private readonly restarts: Counter;
  private readonly createDuration: Histogram;
  private readonly released: Counter;

  constructor(registry: Registry, driver: NetworkDriver) {
    new Gauge({ name: m.networkPorts.name, help: m.networkPorts.help, labelNames: ['network'], registers: [registry], collect() {
      this.reset();
      for (const cfg of driver.activeNetworks()) this.set({ network: cfg.name }, driver.networkStatus(cfg.name).ports);
    } });
    new Gauge({ name: m.networkLeases.name, help: m.networkLeases.help, labelNames: ['network'], registers: [registry], async collect() {
      this.reset();
      for (const cfg of driver.activeNetworks()) {
        if (cfg.type === 'bridge') continue;
        const leases = await driver.leases(cfg.name).catch(() => undefined);
        if (leases !== undefined) this.set({ network: cfg.name }, leases.length);
      }
    } });
    this.restarts = new Counter({ name: m.networkDnsmasqRestarts.name, help: m.networkDnsmasqRestarts.help, labelNames: ['network'], registers: [registry] });
    this.createDuration = new Histogram({ name: m.networkPortCreate.name, help: m.networkPortCreate.help, labelNames: ['network'], registers: [registry], buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5] });
    this.released = new Counter({ name: m.networkPortsReleased.name, help: m.networkPortsReleased.help, labelNames: ['network', 'reason'], registers: [registry] });
  }

  /** Counts one dnsmasq restart. */
  dnsmasqRestarted(network: string): void {
    this.restarts.inc({ network });
  }

  /** Records one port creation. */
  portCreated(network: string, seconds: number): void {
    this.createDuration.observe({ network }, seconds);
  }

  /** Counts one port deleted. */
  portReleased(network: string, reason: string): void {
    this.released.inc({ network, reason });
  }
}
