// virtqemud: recovers its view of the host, then serves the host, registry, per-VM (forwarded)
// and admin programs on its three sockets. It holds no state that cannot be rebuilt from the
// definitions on disk, the shims' state files and the shims re-registering.
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import {
  ACTIVE_STATES, RpcServer, adminProgram, daemonSockets, registryProgram, virtqProgram,
  type Clock, type Disposable, type Layout,
} from '../protocol/index.js';
import { readRuntimeState } from '../daemon/runtime-state.js';
import type { LogHub } from '../daemon/logging.js';
import { adminLogHandlers } from '../daemon/admin-log-handlers.js';
import { DefinitionStore } from './definitions.js';
import { recover, type RecoveryReport } from './discovery.js';
import { Events } from './events.js';
import { hostHandlers, startShim } from './handlers/host-handlers.js';
import { proxyFallback } from './handlers/proxy.js';
import { registryHandlers } from './handlers/registry-handlers.js';
import { reconcile } from './reconcile.js';
import { DomainRegistry, isActive, type DomainRecord } from './registry.js';
import { ShimPool } from './shim-pool.js';
import { DaemonMetrics } from './metrics.js';
import { serveHttp } from './http.js';
import { callShims } from './handlers/admin-fanout.js';
import type { ShimSpawner } from './spawner.js';

/** What a virtqemud is built from (see compose.ts). */
export interface DaemonConfig {
  layout: Layout;
  clock: Clock;
  logs: LogHub;
  spawner: ShimSpawner;
  version: string;
  /** How often the reconciliation pass runs (0: never). */
  reconcileMs: number;
  /** Mode of the read-only socket (default 0666). */
  roSocketMode?: number;
  /** HOST:PORT for GET /metrics and /sd; none when undefined. */
  httpAddress?: string;
  /** Per-shim deadline when fetching shims' metrics (default 500 ms). */
  scrapeDeadlineMs?: number;
  /** How often the shims' metrics are fetched in the background (default 5000 ms). */
  metricsRefreshMs?: number;
  /** A client that leaves a frame unfinished this long is dropped (default 30 s). */
  partialFrameTimeoutMs?: number;
}

/** A running virtqemud. */
export class Virtqemud {
  readonly registry = new DomainRegistry();
  readonly server: RpcServer;
  recovery: RecoveryReport | undefined;
  readonly metrics: DaemonMetrics;
  /** The HTTP port, once serving. */
  httpPort: number | undefined;
  private http: Server | undefined;
  private readonly pool: ShimPool;
  private readonly adminPool: ShimPool;
  private readonly events: Events;
  private timer: Disposable | undefined;
  private closed = false;

  constructor(private readonly cfg: DaemonConfig) {
    this.pool = new ShimPool(cfg.clock);
    this.adminPool = new ShimPool(cfg.clock);
    this.metrics = new DaemonMetrics(this.registry, this.adminPool, cfg.clock, cfg.scrapeDeadlineMs ?? 500, cfg.metricsRefreshMs ?? 5000);
    this.server = new RpcServer({
      daemon: 'virtqemud', version: cfg.version, role: 'aggregator', clock: cfg.clock, log: cfg.logs.module('rpc.server'),
      info: () => ({ domains: this.registry.size, shims: [...this.registry.all()].filter((r) => r.shimUp).length }),
      onCallDone: this.metrics.onCallDone,
      ...(cfg.partialFrameTimeoutMs === undefined ? {} : { partialFrameTimeoutMs: cfg.partialFrameTimeoutMs }),
    });
    this.events = new Events(() => this.server, cfg.clock);
  }

  /** Recovers, then listens. Throws SOCKET_IN_USE when another virtqemud serves this root. */
  async start(): Promise<void> {
    const { layout, clock, logs } = this.cfg;
    await mkdir(layout.runtime, { recursive: true, mode: 0o755 });
    await mkdir(layout.log, { recursive: true, mode: 0o755 });
    const sockets = daemonSockets(layout);
    const store = new DefinitionStore(layout.config, logs.module('definitions'));
    // Claim the socket first: a second virtqemud must not even read state another one owns.
    await this.server.listen(sockets.admin, 'admin', 0o600);
    this.recovery = await recover(this.registry, store, layout, clock, logs.module('discovery'));
    const deps = { registry: this.registry, store, spawner: this.cfg.spawner, events: this.events, layout };
    this.server.register({ program: virtqProgram, handlers: hostHandlers(deps), fallback: proxyFallback(this.registry, this.pool, clock) });
    this.server.register({ program: registryProgram, handlers: registryHandlers(this.registry, this.events, (r) => void this.shimGone(r)) });
    this.server.register(adminLogHandlers(logs));
    this.server.register({ program: adminProgram, handlers: {
      getMetrics: async () => ({ families: (await this.metrics.registry.getMetricsAsJSON()) as never }),
      callShims: ({ procedure, args }) => callShims(this.registry, this.adminPool, procedure, args ?? {}),
    } });
    await this.server.listen(sockets.rw, 'rw', 0o600);
    await this.server.listen(sockets.ro, 'ro', this.cfg.roSocketMode ?? 0o666);
    if (this.cfg.httpAddress !== undefined) {
      const http = await serveHttp(this.cfg.httpAddress, this.metrics, this.registry, logs.module('http'));
      this.http = http.server;
      this.httpPort = http.port;
      this.metrics.start();
    }
    this.scheduleReconcile();
    void this.autostart(deps);
  }

  /** Stops serving. Shims and VMs keep running; they re-register with the next virtqemud. */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.dispose();
    this.pool.closeAll();
    this.adminPool.closeAll();
    this.http?.close();
    this.metrics.stop();
    await this.server.close();
  }

  // The pooled connection is left to close with the shim's socket: a reply may still be on its way.
  // A stopped transient VM goes once its shim has gone, if the state file records its end; if the
  // shim could not write it (a full disk) before it went, the listing is the only record: it stays
  // listed (as reconciliation keeps one) until it is undefined. A start that failed (reason
  // "failed") needs no record: its caller was told why, and nothing ran.
  private async shimGone(r: DomainRecord): Promise<void> {
    const stateFile = r.shim?.stateFile;
    this.registry.shimGone(r);
    if (r.persistent || isActive(r) || stateFile === undefined) return;
    if (r.reason !== 'failed') {
      const saved = await readRuntimeState(stateFile);
      if (saved === undefined || saved.uuid !== r.uuid || ACTIVE_STATES.has(saved.state)) return;
    }
    if (!r.persistent && !isActive(r) && r.shim === undefined) this.registry.remove(r);
  }

  private async autostart(deps: Parameters<typeof startShim>[0]): Promise<void> {
    const log = this.cfg.logs.module('autostart');
    for (const r of [...this.registry.all()]) {
      if (!r.autostart || isActive(r) || r.definition === undefined) continue;
      log.info({ name: r.name, msgId: 'AUTOSTART' }, 'starting VM marked autostart');
      await startShim(deps, r, r.definition, false).catch((err: unknown) => log.error({ err, name: r.name }, 'autostart failed'));
    }
  }

  private scheduleReconcile(): void {
    if (this.cfg.reconcileMs <= 0 || this.closed) return;
    this.timer = this.cfg.clock.setTimeout(() => {
      reconcile(this.registry, this.events, this.cfg.logs.module('reconcile'))
        .catch((err: unknown) => this.cfg.logs.module('reconcile').error({ err }, 'reconciliation failed'))
        .finally(() => this.scheduleReconcile());
    }, this.cfg.reconcileMs);
  }
}
