// virtqemud's metrics: its own registry (registered shims, VMs by state, RPC, process), plus the
// host-wide scrape that fans out to every shim in parallel under a per-shim deadline. A shim that
// does not answer in time (frozen, overloaded) shows as virtq_shim_up 0; the scrape still ends
// on time with everything else in it.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Static } from '@sinclair/typebox';
import { ACTIVE_STATES, VirtqError, adminProgram, type Clock, type DomainState, type MetricFamily } from '../protocol/index.js';
import { metricCatalogue as m, PROCESS_METRIC_PREFIX } from '../daemon/metrics-catalogue.js';
import { rpcMetrics } from '../daemon/rpc-metrics.js';
import { renderExposition } from '../daemon/prom-text.js';
import type { DomainRecord, DomainRegistry } from './registry.js';
import type { ShimPool } from './shim-pool.js';

type Family = Static<typeof MetricFamily>;
const STATES: readonly DomainState[] = ['starting', 'running', 'paused', 'shutting-down', 'shutoff', 'crashed'];

/** virtqemud's registry and the fan-out scrape. */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly onCallDone: ReturnType<typeof rpcMetrics>;

  constructor(private readonly domains: DomainRegistry, private readonly adminPool: ShimPool, private readonly clock: Clock, private readonly shimDeadlineMs: number) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: PROCESS_METRIC_PREFIX.virtqemud });
    this.onCallDone = rpcMetrics(r);
    new Gauge({ name: m.shimsRegistered.name, help: m.shimsRegistered.help, registers: [r], collect() {
      let n = 0;
      for (const d of domains.all()) if (d.shim?.conn !== undefined) n++;
      this.set(n);
    } });
    new Gauge({ name: m.domains.name, help: m.domains.help, labelNames: ['state'], registers: [r], collect() {
      const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
      for (const d of domains.all()) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    } });
  }

  /** The whole host's exposition: this daemon's metrics and every live shim's. */
  async scrape(only?: string): Promise<string> {
    const targets = [...this.domains.all()].filter((d) => d.shim !== undefined && ACTIVE_STATES.has(d.state) && (only === undefined || d.name === only));
    if (only !== undefined && targets.length === 0) throw new VirtqError('NO_DOMAIN', `no running VM named "${only}"`);
    const results = await Promise.all(targets.map((d) => this.fetchShim(d)));
    const health: Family[] = [
      { name: m.shimUp.name, help: m.shimUp.help, type: 'gauge', values: results.map((x) => ({ labels: { domain: x.name, uuid: x.uuid }, value: x.families === undefined ? 0 : 1 })) },
      { name: m.shimScrape.name, help: m.shimScrape.help, type: 'gauge', values: results.map((x) => ({ labels: { domain: x.name, uuid: x.uuid }, value: x.seconds })) },
    ];
    const own = only === undefined ? (await this.registry.getMetricsAsJSON()) as unknown as Family[] : [];
    return renderExposition([own, health, ...results.flatMap((x) => (x.families === undefined ? [] : [x.families]))]);
  }

  private async fetchShim(d: DomainRecord): Promise<{ name: string; uuid: string; families: Family[] | undefined; seconds: number }> {
    const t0 = this.clock.monotonic();
    const seconds = () => (this.clock.monotonic() - t0) / 1000;
    const socket = d.shim?.adminSocket as string;
    try {
      const client = await withDeadline(this.adminPool.get(socket, d.name), this.clock, this.shimDeadlineMs);
      const r = await client.call(adminProgram.name, 'getMetrics', {}, { timeoutMs: Math.max(1, this.shimDeadlineMs - (this.clock.monotonic() - t0)) }) as { families: Family[] };
      return { name: d.name, uuid: d.uuid, families: r.families, seconds: seconds() };
    } catch {
      return { name: d.name, uuid: d.uuid, families: undefined, seconds: seconds() };
    }
  }
}

function withDeadline<T>(p: Promise<T>, clock: Clock, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = clock.setTimeout(() => reject(new VirtqError('TIMEOUT', `no answer within ${ms} ms`)), ms);
    p.then((v) => { t.dispose(); resolve(v); }, (e: unknown) => { t.dispose(); reject(e); });
  });
}
