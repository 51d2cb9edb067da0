// virtstoraged's own metrics, beside the framework's process and RPC ones: each active pool's
// space and volume count (read when scraped), and volume operations with their latency. Labels
// are pool names (the operator's own, few) and operation names; never a volume or a path.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { VirtqError, type Clock } from '../protocol/index.js';
import { metricCatalogue as m } from '../daemon/metrics-catalogue.js';
import type { PoolStore } from './pool-store.js';

/** A volume operation, as the metrics name it. */
export type StorageOperation = 'create' | 'clone' | 'resize' | 'delete' | 'upload' | 'download';

/** The storage daemon's metrics on `registry`. */
export class StorageMetrics {
  private readonly ops: Counter;
  private readonly duration: Histogram;
  private readonly bytes: Counter;

  constructor(registry: Registry, pools: PoolStore, private readonly clock: Clock) {
    const space = async (pick: 'capacity' | 'allocation' | 'available', g: Gauge): Promise<void> => {
      g.reset();
      for (const e of pools.all()) {
        if (e.pool === undefined) continue;
        const info = await e.pool.info().catch(() => undefined);
        if (info !== undefined) g.set({ pool: e.definition.name }, info[pick]);
      }
    };
    new Gauge({ name: m.poolCapacity.name, help: m.poolCapacity.help, labelNames: ['pool'], registers: [registry], async collect() { await space('capacity', this); } });
    new Gauge({ name: m.poolAllocation.name, help: m.poolAllocation.help, labelNames: ['pool'], registers: [registry], async collect() { await space('allocation', this); } });
    new Gauge({ name: m.poolAvailable.name, help: m.poolAvailable.help, labelNames: ['pool'], registers: [registry], async collect() { await space('available', this); } });
    new Gauge({ name: m.poolVolumes.name, help: m.poolVolumes.help, labelNames: ['pool'], registers: [registry], async collect() {
      this.reset();
      for (const e of pools.all()) {
        if (e.pool === undefined) continue;
        const list = await e.pool.list().catch(() => undefined);
        if (list !== undefined) this.set({ pool: e.definition.name }, list.length);
      }
    } });
    this.ops = new Counter({ name: m.storageOps.name, help: m.storageOps.help, labelNames: ['operation', 'code'], registers: [registry] });
    this.duration = new Histogram({ name: m.storageOpDuration.name, help: m.storageOpDuration.help, labelNames: ['operation'], registers: [registry], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600] });
    this.bytes = new Counter({ name: m.storageBytes.name, help: m.storageBytes.help, labelNames: ['direction'], registers: [registry] });
  }

  /**
   * Runs `fn` as one `operation`, counting its outcome and time. Counted once the reply is on its
   * way (setImmediate): the caller waits for nothing the metrics say, and a scrape's request is
   * read by a later turn of the loop.
   */
  async timed<T>(operation: StorageOperation, fn: () => Promise<T>): Promise<T> {
    const t0 = this.clock.monotonic();
    let code = 'OK';
    try {
      return await fn();
    } catch (err) {
      code = VirtqError.from(err).code;
      throw err;
    } finally {
      const seconds = (this.clock.monotonic() - t0) / 1000;
      setImmediate(() => {
        this.ops.inc({ operation, code });
        this.duration.observe({ operation }, seconds);
      });
    }
  }

  /** Counts volume bytes moved. */
  transferred(direction: 'in' | 'out', n: number): void {
    this.bytes.inc({ direction }, n);
  }
}
