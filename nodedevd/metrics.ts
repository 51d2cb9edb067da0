// virtnodedevd's own metrics, beside the framework's process and RPC ones: the devices present by
// kind (listed from sysfs when scraped, so the figure is never stale), the add/remove events seen
// and the polls that failed. Labels are the four kinds and two event names; never a device name.
import { Counter, Gauge, type Registry } from 'prom-client';
import { metricCatalogue as m } from '../daemon/metrics-catalogue.js';
import type { NodeDevices } from '../drivers/nodedev/node-devices.js';
import { NODE_DEVICE_CAPS } from '../drivers/nodedev/types.js';

/** The node device daemon's metrics on `registry`. */
export class NodedevMetrics {
  private readonly events: Counter;
  private readonly pollFailures: Counter;

  constructor(registry: Registry, devices: NodeDevices) {
    new Gauge({ name: m.nodedevDevices.name, help: m.nodedevDevices.help, labelNames: ['cap'], registers: [registry], async collect() {
      this.reset();
      // A sysfs that cannot be read now shows no series rather than failing the whole scrape.
      const rows = await devices.list().catch(() => undefined);
      if (rows === undefined) return;
      for (const cap of NODE_DEVICE_CAPS) this.set({ cap }, rows.filter((r) => r.cap === cap).length);
    } });
    this.events = new Counter({ name: m.nodedevEvents.name, help: m.nodedevEvents.help, labelNames: ['event'], registers: [registry] });
    for (const event of ['added', 'removed']) this.events.inc({ event }, 0);
    this.pollFailures = new Counter({ name: m.nodedevPollFailures.name, help: m.nodedevPollFailures.help, registers: [registry] });
  }

  /** Counts one device that appeared or went. */
  event(event: 'added' | 'removed'): void {
    this.events.inc({ event });
  }

  /** Counts one failed poll. */
  pollFailed(): void {
    this.pollFailures.inc();
  }
}
