// virtqemud: recovers its view of the host, then serves the host, registry, per-VM (forwarded)
// and admin programs through the daemon framework's sockets. It holds no state that cannot be
// rebuilt from the definitions on disk, the shims' state files and the shims re-registering.
import {
  ACTIVE_STATES, DAEMON_NAMES, adminProgram, registryProgram, serviceSockets, shimDir, virtqProgram,
  type Clock, type Disposable, type Layout, type Logger,
} from '../protocol/index.js';
import { existsSync } from 'node:fs';
import { readRuntimeState, type RuntimeState } from '../daemon/runtime-state.js';
import { ensureSpaceReserve } from '../daemon/space-reserve.js';
import type { Logs } from '../daemon/log-filters.js';
import type { DaemonService } from '../daemon/service.js';
import { served, type ServiceParts } from '../daemon/run-service.js';
import { DefinitionStore } from './definitions.js';
import { owesSourceUndefine, recover, type RecoveryReport } from './discovery.js';
import { reapOrphanQemu } from './reap-orphan.js';
import { Events } from './events.js';
import { HostJournal } from './host-journal.js';
import { hostHandlers, startShim, undefineVm, type HostDeps } from './handlers/host-handlers.js';
import { saveHostHandlers } from './handlers/save-handlers.js';
import { proxyFallback } from './handlers/proxy.js';
import { snapshotHostHandlers } from './handlers/snapshot-handlers.js';
import { qemuImgOverlays } from './handlers/offline-snapshot.js';
import { qemuImgCommit } from './handlers/offline-delete.js';
import type { SnapshotVolumes } from './storage-volumes.js';
import { registryHandlers } from './handlers/registry-handlers.js';
import { migrationHostHandlers } from './handlers/migration-handlers.js';
import { reconcile } from './reconcile.js';
import { DomainRegistry, isActive, type DomainRecord } from './registry.js';
import { ShimPool } from './shim-pool.js';
import { DaemonMetrics } from './metrics.js';
import { hostRoutes } from './http.js';
import { callShims } from './handlers/admin-fanout.js';
import { upgradeShims } from './handlers/admin-upgrade.js';
import type { ShimSpawner } from './spawner.js';
import type { WebView } from './web/web-view.js';
import type { WriteToken } from './web/write-token.js';
import type { ClusterMember } from './cluster/cluster-member.js';
import { NameTurns } from './name-turns.js';

/** When the first reconciliation pass runs after virtqemud serves (ms): after most shims re-registered (their first try lands 400–1000 ms after the loss, shim/rejoin-pace.ts). */
const FIRST_RECONCILE_MS = 1000;
/** When the warm shim pool first fills after a restart that found live shims (ms): once they re-registered. */
const WARM_AFTER_RESTART_MS = 1000;

/** What a virtqemud is built from (see compose.ts). */
export interface DaemonConfig {
  layout: Layout;
  clock: Clock;
  logs: Logs;
  spawner: ShimSpawner;
  /** The framework's RPC service: its sockets, admin program and metrics registry. */
  service: DaemonService;
  /** How often the reconciliation pass runs (0: never). */
  reconcileMs: number;
  /** True when --http serves /metrics: the shims' metrics are then fetched in the background. */
  http: boolean;
  /** Per-shim deadline when fetching shims' metrics (default 500 ms). */
  scrapeDeadlineMs?: number;
  /** How often the shims' metrics are fetched in the background (default 5000 ms). */
  metricsRefreshMs?: number;
  /** The web view on the --http address (only with `http`): its files and the operator's write token. */
  web?: { assetsDir: string; token: WriteToken | undefined };
  /** Membership of an etcd fleet (--cluster); undefined: a host on its own, as before. */
  cluster?: ClusterMember;
  /** virtstoraged of this root or mode, for a shut-off VM's snapshot of a volume disk. */
  volumes: SnapshotVolumes;
}

/** A running virtqemud. */
export class Virtqemud {
  // A forgotten VM's fleet-wide claims go with it (read lazily: the field is set before cfg is).
  readonly registry = new DomainRegistry((r) => this.cfg.cluster?.release(r.name, r.uuid));
  recovery: RecoveryReport | undefined;
  readonly metrics: DaemonMetrics;
  private readonly pool: ShimPool;
  private readonly adminPool: ShimPool;
  private readonly events: Events;
  private web: WebView | undefined;
  /** What the handlers run on, once start() has made it: virtqemud's own undefines use it too. */
  private deps: HostDeps | undefined;
  private timer: Disposable | undefined;
  private warmTimer: Disposable | undefined;
  private closed = false;

  constructor(private readonly cfg: DaemonConfig) {
    this.pool = new ShimPool(cfg.clock);
    this.adminPool = new ShimPool(cfg.clock);
    // The other daemons of this root: their metrics join the host scrape.
    const peers = DAEMON_NAMES.filter((d) => d !== 'virtqemud').map((daemon) => ({ daemon, adminSocket: serviceSockets(cfg.layout, daemon).admin }));
    this.metrics = new DaemonMetrics(cfg.service.metrics, this.registry, this.adminPool, cfg.clock, cfg.scrapeDeadlineMs ?? 500, cfg.metricsRefreshMs ?? 5000, peers);
    this.events = new Events(this.registry, cfg.clock, new HostJournal(cfg.layout.state, cfg.clock, cfg.logs.module('journal'), process.pid));
  }

  /** Rebuilds the registry from disk and returns what the framework serves. */
  async start(): Promise<ServiceParts> {
    const { layout, clock, logs } = this.cfg;
    const store = new DefinitionStore(layout.config, logs.module('definitions'));
    // A VM found stopped while virtqemud was down gets its stop journaled (unless its shim did).
    this.recovery = await recover(this.registry, store, layout, clock, logs.module('discovery'), undefined, {
      journal: this.events.journal,
      stopped: (r, journaled) => (journaled === undefined ? this.events.lifecycle(r, r.state === 'crashed' ? 'crashed' : 'stopped') : this.events.replayed(journaled)),
      live: (r) => this.events.journal.known(r.name),
    });
    // The reserve state files are written in on a full disk, made once the VMs' own files are read.
    ensureSpaceReserve(shimDir(layout));
    const deps: HostDeps = { registry: this.registry, store, spawner: this.cfg.spawner, events: this.events, layout, workers: this.cfg.service.workers, clock, turns: new NameTurns(), ...(this.cfg.cluster === undefined ? {} : { cluster: this.cfg.cluster }) };
    this.deps = deps;
    for (const name of this.recovery.movedAway) await undefineMovedAway(deps, name, logs.module('discovery'), 'while virtqemud was down');
    // Not waited for: a reap takes up to seconds, and the VM is listed as its state file says meanwhile.
    for (const o of this.recovery.orphanQemus) {
      const log = logs.module('discovery');
      void reapOrphanQemu(this.cfg.spawner, o, o.pid).then((how) => log.warn({ name: o.name, qemuPid: o.pid, msgId: 'ORPHAN_QEMU_REAPED' }, `a QEMU of VM "${o.name}" that no state file names (its shim died while starting it) ${how}`));
    }
    // The fleet is joined once the local VMs are known: they are what it claims.
    await this.cfg.cluster?.join(this.registry);
    if (this.cfg.http && this.cfg.web !== undefined) {
      // Imported only with --http: the view pulls in ws and with it node:http, https, tls, zlib and
      // crypto, which cost a virtqemud without it ~20-50 ms of CPU at every start (issue 15 target 4).
      const { WebView } = await import('./web/web-view.js');
      this.web = WebView.create({ ...this.cfg.web, sockets: serviceSockets(layout, 'virtqemud'), metrics: this.metrics, clock, log: logs.module('web') });
    }
    const proxy = proxyFallback(this.registry, this.pool, clock, (name) => this.events.journal.lastStop(name));
    return {
      served: [
        served(virtqProgram, {
          ...hostHandlers(deps), ...saveHostHandlers(deps, (rec, def, p, f) => startShim(deps, rec, def, p, f)), ...migrationHostHandlers(deps, proxy, this.pool), ...snapshotHostHandlers({ ...deps, forward: proxy, makeOverlay: qemuImgOverlays('qemu-img'), commitOverlay: qemuImgCommit('qemu-img'), volumes: this.cfg.volumes, now: () => clock.now() }),
        }, proxy),
        served(registryProgram, registryHandlers(this.registry, this.events, clock, (r) => void this.shimGone(r), (r) => this.cfg.cluster?.adopted(r.name, r.uuid))),
        served(adminProgram, {
          callShims: ({ procedure, args }) => callShims(this.registry, this.adminPool, procedure, args ?? {}),
          upgradeShims: (args) => upgradeShims(this.registry, this.adminPool, args),
        }),
      ],
      info: () => ({
        domains: this.registry.size, shims: [...this.registry.all()].filter((r) => r.shimUp).length,
        ...(this.cfg.spawner.pool === undefined ? {} : { shimPool: this.cfg.spawner.pool() }),
      }),
      ready: () => ({ recovered: this.recovery }),
      http: hostRoutes(this.metrics, this.registry, this.cfg.cluster === undefined ? undefined : () => (this.cfg.cluster as ClusterMember).sdGroups()),
      ...(this.web === undefined ? {} : { httpHandler: this.web }),
      serving: ({ httpPort }) => {
        if (this.cfg.http) this.metrics.start();
        if (httpPort !== undefined) this.cfg.cluster?.advertiseHttp(httpPort);
        // The first pass comes early: recovery listed shims up by their processes alone, and this
        // pass probes the sockets of those that have not re-registered by then (discovery.ts).
        this.scheduleReconcile(Math.min(this.cfg.reconcileMs, FIRST_RECONCILE_MS));
        // After a restart with live VMs their shims re-register within the first second, and a
        // warm shim's start (a Node start, ~150 ms of CPU) would compete with them and with the
        // first listings on a small host: the pool fills once that is over.
        if ((this.recovery?.liveShims ?? 0) > 0) this.warmTimer = clock.setTimeout(() => this.cfg.spawner.warm?.(), WARM_AFTER_RESTART_MS);
        else this.cfg.spawner.warm?.();
        void this.autostart(deps);
      },
      close: () => this.close(),
    };
  }

  /** Stops its own work. Shims and VMs keep running; they re-register with the next virtqemud. */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.dispose();
    this.warmTimer?.dispose();
    this.web?.close();
    this.cfg.spawner.close?.();
    this.pool.closeAll();
    this.adminPool.closeAll();
    this.metrics.stop();
    await this.cfg.cluster?.close();
  }

  // The pooled connection is left to close with the shim's socket: a reply may still be on its way.
  // A stopped transient VM goes once its shim has gone, if the state file records its end; if the
  // shim could not write it (a full disk) before it went, the listing is the only record: it stays
  // listed (as reconciliation keeps one) until it is undefined. A start that failed (reason
  // "failed") needs no record: its caller was told why, and nothing ran.
  private async shimGone(r: DomainRecord): Promise<void> {
    const stateFile = r.shim?.stateFile;
    this.registry.shimGone(r);
    if (isActive(r) || stateFile === undefined) return;
    if (r.persistent) {
      await this.settleMovedAway(r, await readRuntimeState(stateFile));
      return;
    }
    if (r.reason !== 'failed') {
      const saved = await readRuntimeState(stateFile);
      // No state file at all: the shim removed it as it ended (its VM migrated away, or an
      // incoming migration never ran it here), so there is no end to keep listed.
      if (saved === undefined ? existsSync(stateFile) : saved.uuid !== r.uuid || ACTIVE_STATES.has(saved.state)) return;
    }
    if (!r.persistent && !isActive(r) && r.shim === undefined) this.registry.remove(r);
  }

  /**
   * A defined VM that migrated away with --undefine-source, whose shim went before that undefine
   * was done (killed in between, or it gave up waiting for a virtqemud that was away): its state
   * file `saved` says so, and the definition goes now, in its name's turn, as a client's undefine
   * would, instead of at this virtqemud's next start (discovery.ts). Not if the VM was started,
   * redefined or undefined meanwhile.
   */
  private async settleMovedAway(r: DomainRecord, saved: RuntimeState | undefined): Promise<void> {
    const deps = this.deps;
    if (deps === undefined || this.closed || saved === undefined || saved.uuid !== r.uuid || !owesSourceUndefine(saved)) return;
    await deps.turns.run(r.name, async () => {
      if (this.registry.get(r.name) !== r || !r.persistent || isActive(r) || r.shim !== undefined) return;
      await undefineMovedAway(deps, r.name, this.cfg.logs.module('migration'), '(its shim went before it asked)');
    });
  }

  private async autostart(deps: HostDeps): Promise<void> {
    const log = this.cfg.logs.module('autostart');
    for (const r of [...this.registry.all()]) {
      if (this.closed) return;
      if (!r.autostart || isActive(r) || r.definition === undefined) continue;
      log.info({ name: r.name, msgId: 'AUTOSTART' }, 'starting VM marked autostart');
      await startShim(deps, r, r.definition, false).catch((err: unknown) => log.error({ err, name: r.name }, 'autostart failed'));
    }
  }

  private scheduleReconcile(delayMs = this.cfg.reconcileMs): void {
    if (this.cfg.reconcileMs <= 0 || this.closed) return;
    this.timer = this.cfg.clock.setTimeout(() => {
      // Made again once there is room, after a writer gave it up (space-reserve.ts).
      ensureSpaceReserve(shimDir(this.cfg.layout));
      reconcile(this.registry, this.events, this.cfg.logs.module('reconcile'), { clock: this.cfg.clock, ended: (r, saved) => this.settleMovedAway(r, saved), shimGone: (r) => this.shimGone(r) })
        .catch((err: unknown) => this.cfg.logs.module('reconcile').error({ err }, 'reconciliation failed'))
        .finally(() => this.scheduleReconcile());
    }, delayMs);
  }
}

/**
 * Removes the definition a migration's --undefine-source still owed (RecoveryReport.movedAway, or
 * a shim gone before its undefine), by the undefine a client would call, with its checks: a VM that
 * runs on another host now is not listed here too. A refusal is logged and the definition kept, as
 * the shim's own call would. `when`: why it was left to virtqemud, for the log line.
 */
async function undefineMovedAway(d: HostDeps, name: string, log: Logger, when: string): Promise<void> {
  try {
    await undefineVm(d, name, false);
    log.info({ name, msgId: 'MIGRATED_DEFINITION_REMOVED' }, `removed the definition of a VM that migrated away with --undefine-source ${when}`);
  } catch (err) {
    log.error({ err, name, msgId: 'MIGRATION_UNDEFINE_FAILED' }, 'a VM migrated away with --undefine-source, but its definition here could not be removed');
  }
}
