// virtqemud's metrics: its own registry (registered shims, VMs by state, RPC, process), plus every
// shim's, fetched in parallel under a per-shim deadline by a background refresh. A scrape renders
// the last refresh and never waits on a VM; a shim that did not answer in time (frozen,
// overloaded) shows as virtq_shim_up 0 with everything else still there.
import { Gauge, type Registry } from 'prom-client';
import type { Static } from '@sinclair/typebox';
import { ACTIVE_STATES, DOMAIN_STATES, VirtqError, adminProgram, type Clock, type Disposable, type MetricFamily } from '../protocol/index.js';
import { metricCatalogue as m } from '../daemon/metrics-catalogue.js';
import { renderExposition } from '../daemon/prom-text.js';
import type { DomainRecord, DomainRegistry } from './registry.js';
import type { ShimPool } from './shim-pool.js';

type Family = Static<typeof MetricFamily>;

/** What one refresh fetched of one VM's shim (`families` undefined: it did not answer in time). */
export interface ShimSample { name: string; uuid: string; families: Family[] | undefined; seconds: number }

/** A secondary daemon of this host whose metrics the host scrape includes, by its admin socket. */
export interface PeerDaemon { daemon: string; adminSocket: string }

/** virtqemud's registry and the cached fan-out to every shim. */
export class DaemonMetrics {
  private samples: ShimSample[] = [];
  private peerFamilies: Family[][] = [];
  private refreshedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  private timer: Disposable | undefined;
  private readonly listeners: Array<(at: number, samples: readonly ShimSample[]) => void> = [];

  /** Adds virtqemud's gauges to `registry`, the framework's (process and RPC metrics are there already). */
  constructor(readonly registry: Registry, private readonly domains: DomainRegistry, private readonly adminPool: ShimPool, private readonly clock: Clock, private readonly shimDeadlineMs: number, private readonly refreshMs: number, private readonly peers: readonly PeerDaemon[] = []) {
    const r = registry;
    new Gauge({ name: m.shimsRegistered.name, help: m.shimsRegistered.help, registers: [r], collect() {
      let n = 0;
      for (const d of domains.all()) if (d.shim?.conn !== undefined) n++;
      this.set(n);
    } });
    new Gauge({ name: m.domains.name, help: m.domains.help, labelNames: ['state'], registers: [r], collect() {
      const counts = new Map<string, number>(DOMAIN_STATES.map((s) => [s, 0]));
      for (const d of domains.all()) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    } });
  }

  /** Starts the background refresh of the shims' metrics. */
  start(): void {
    const tick = (): void => {
      void this.refresh().finally(() => { this.timer = this.clock.setTimeout(tick, this.refreshMs); });
    };
    tick();
  }

  stop(): void {
    this.timer?.dispose();
  }

  /** Calls `listener` after each refresh with what it fetched (the web view's sparklines). */
  onRefreshed(listener: (at: number, samples: readonly ShimSample[]) => void): void {
    this.listeners.push(listener);
  }

  /** Fetches every running VM's metrics now (one refresh at a time). */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const targets = [...this.domains.all()].filter((d) => d.shim !== undefined && ACTIVE_STATES.has(d.state));
      const [samples, peers] = await Promise.all([Promise.all(targets.map((d) => this.fetchShim(d))), Promise.all(this.peers.map((p) => this.fetchPeer(p)))]);
      this.samples = samples;
      this.peerFamilies = peers.filter((f): f is Family[] => f !== undefined);
      this.refreshedAt = this.clock.monotonic();
      for (const l of this.listeners) l(this.clock.now(), samples);
    })().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  /**
   * The exposition: this daemon's metrics and the shims' from the last refresh (or one VM's only).
   * Only when the cache is older than three refresh periods (the refresh loop is stuck or was never
   * started) does a scrape wait for a refresh, which the per-shim deadline bounds.
   */
  async scrape(only?: string): Promise<string> {
    if (this.clock.monotonic() - this.refreshedAt > 3 * this.refreshMs) await this.refresh();
    const live = new Set([...this.domains.all()].filter((d) => ACTIVE_STATES.has(d.state)).map((d) => d.name));
    const samples = this.samples.filter((x) => live.has(x.name) && (only === undefined || x.name === only));
    if (only !== undefined && samples.length === 0) throw new VirtqError('NO_DOMAIN', `no running VM named "${only}"`);
    const health: Family[] = [
      { name: m.shimUp.name, help: m.shimUp.help, type: 'gauge', values: samples.map((x) => ({ labels: { domain: x.name, uuid: x.uuid }, value: x.families === undefined ? 0 : 1 })) },
      { name: m.shimScrape.name, help: m.shimScrape.help, type: 'gauge', values: samples.map((x) => ({ labels: { domain: x.name, uuid: x.uuid }, value: x.seconds })) },
    ];
    const own = only === undefined ? (await this.registry.getMetricsAsJSON()) as unknown as Family[] : [];
    const peers = only === undefined ? this.peerFamilies : [];
    return renderExposition([own, ...peers, health, ...samples.flatMap((x) => (x.families === undefined ? [] : [x.families]))]);
  }

  // A daemon that is not running (or slow) is simply left out of the scrape.
  private async fetchPeer(p: PeerDaemon): Promise<Family[] | undefined> {
    try {
      const client = await withDeadline(this.adminPool.get(p.adminSocket, p.daemon), this.clock, this.shimDeadlineMs);
      const r = await client.call(adminProgram.name, 'getMetrics', {}, { timeoutMs: this.shimDeadlineMs }) as { families: Family[] };
      return r.families;
    } catch {
      return undefined;
    }
  }

  private async fetchShim(d: DomainRecord): Promise<ShimSample> {
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
