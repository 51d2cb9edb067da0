// The shim's metrics: one prom-client registry (never the global one) whose every series carries
// the VM's `domain` and `uuid`. Values are read when scraped from the VM's cached state; block
// counters come from a QMP query refreshed in the background, so a scrape never waits on QEMU.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DOMAIN_STATES, type Clock, type Disposable, type Logger } from '../protocol/index.js';
import { metricCatalogue as m, boundedLabel } from '../daemon/metrics-catalogue.js';
import type { Vm } from './vm/vm.js';
import type { DiskStats } from './vm/vm-disks.js';
import { INCOMING_REASON } from './vm/migration-incoming.js';

const QMP_COMMANDS = new Set([
  'qmp_capabilities', 'query-status', 'cont', 'stop', 'system_powerdown', 'system_reset', 'quit', 'blockdev-add', 'blockdev-del',
  'device_add', 'device_del', 'query-blockstats', 'query-block', 'query-commands', 'query-machines', 'query-kvm', 'send-key', 'human-monitor-command',
]);
const BLOCK_REFRESH_MS = 5000;

/** Counters that can only be set from a reading (prom-client counters only increase). */
function readCounter(registry: Registry, spec: { name: string; help: string }, labelNames: string[], read: () => Array<[Record<string, string>, number]>): void {
  new Counter({
    name: spec.name, help: spec.help, labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) if (value > 0) this.inc(labels, value);
    },
  });
}

/** The shim's registry, every series labelled with its VM (the RPC metrics are counted into it by the service). */
export function shimRegistry(def: { name: string; uuid: string }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ domain: def.name, uuid: def.uuid });
  return registry;
}

/** Adds the VM's and the shim's own gauges to `registry` (see shimRegistry). */
export class ShimMetrics {
  private readonly qmp: Histogram;
  private disks: DiskStats[] = [];
  private timer: Disposable | undefined;
  private running = false;

  constructor(readonly registry: Registry, private readonly vm: Vm, private readonly clock: Clock, private readonly log: Logger) {
    const r = registry;
    readCounter(r, m.shimCpu, [], () => {
      const u = process.cpuUsage();
      return [[{}, (u.user + u.system) / 1e6]];
    });
    new Gauge({ name: m.shimRss.name, help: m.shimRss.help, registers: [r], collect() { this.set(process.memoryUsage.rss()); } });
    new Gauge({ name: m.shimHeap.name, help: m.shimHeap.help, registers: [r], collect() { this.set(process.memoryUsage().heapUsed); } });
    this.qmp = new Histogram({ name: m.qmpDuration.name, help: m.qmpDuration.help, labelNames: ['command', 'result'], registers: [r], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5] });
    new Gauge({ name: m.domainState.name, help: m.domainState.help, labelNames: ['state'], registers: [r], collect() { for (const s of DOMAIN_STATES) this.set({ state: s }, vm.state === s ? 1 : 0); } });
    new Gauge({ name: m.domainVcpus.name, help: m.domainVcpus.help, registers: [r], collect() { this.set(vm.def.vcpus); } });
    new Gauge({ name: m.domainMemory.name, help: m.domainMemory.help, registers: [r], collect() { this.set(vm.def.memoryMiB * 1024 * 1024); } });
    new Gauge({ name: m.domainRss.name, help: m.domainRss.help, registers: [r], collect() { this.set(vm.stats().rssBytes); } });
    new Gauge({ name: m.domainUptime.name, help: m.domainUptime.help, registers: [r], collect() { this.set(vm.stats().uptimeSec); } });
    new Gauge({ name: m.domainTainted.name, help: m.domainTainted.help, registers: [r], collect() { this.set(vm.tainted ? 1 : 0); } });
    readCounter(r, m.domainCpu, [], () => [[{}, vm.stats().cpuTimeSec]]);
    readCounter(r, m.blockReadBytes, ['disk'], () => this.disks.map((d) => [{ disk: d.target }, d.rdBytes]));
    readCounter(r, m.blockWriteBytes, ['disk'], () => this.disks.map((d) => [{ disk: d.target }, d.wrBytes]));
    readCounter(r, m.blockReadOps, ['disk'], () => this.disks.map((d) => [{ disk: d.target }, d.rdOps]));
    readCounter(r, m.blockWriteOps, ['disk'], () => this.disks.map((d) => [{ disk: d.target }, d.wrOps]));
  }

  /** The hook the QMP monitor calls after each command. */
  readonly onQmpCommand = (command: string, seconds: number, ok: boolean): void => {
    this.qmp.observe({ command: boundedLabel(command, QMP_COMMANDS), result: ok ? 'ok' : 'error' }, seconds);
  };

  /** Starts refreshing the block counters in the background. */
  start(): void {
    if (this.running) return;
    this.running = true;
    // A refresh in flight when stop() comes must not schedule the next one (an upgrade stops, then may start again).
    const tick = (): void => {
      void this.refreshDisks().finally(() => { if (this.running) this.timer = this.clock.setTimeout(tick, BLOCK_REFRESH_MS); });
    };
    tick();
  }

  /** Refreshes the block counters now (also used by tests). */
  async refreshDisks(): Promise<void> {
    if (this.vm.def.disks.length === 0 || !['running', 'paused', 'shutting-down'].includes(this.vm.state)) return;
    // A QEMU waiting for its incoming migration has moved no block yet, and once the stream has begun
    // it answers a query only between its reads of it (bench/RESULTS.md, session 14): skipped until
    // the guest runs here (the next tick).
    if (this.vm.state === 'paused' && this.vm.reason === INCOMING_REASON) return;
    try {
      this.disks = await this.vm.disks.stats();
    } catch (err) {
      this.log.debug({ err }, 'block stats refresh failed');
    }
  }

  stop(): void {
    this.running = false;
    this.timer?.dispose();
  }
}
