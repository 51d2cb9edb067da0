// One daemon's RPC service, the part every virtq daemon shares: an RpcServer with the admin
// program (server-level procedures, log filters and outputs, the daemon's metrics), RPC metrics,
// and its read-write, read-only and admin sockets. A daemon adds its own programs with serve()
// and decides when each socket opens (the first one bound is its claim on the name).
import { Registry, collectDefaultMetrics } from 'prom-client';
import {
  RpcServer, TlsListener, adminProgram,
  type Clock, type TlsFiles, type Fallback, type Handlers, type Program, type ServerRole, type SocketClass,
} from '../protocol/index.js';
import type { Logs } from './log-filters.js';
import { adminLogHandlers } from './admin-log-handlers.js';
import { adminConfigHandlers } from './admin-config-handlers.js';
import { unixPeerCreds } from './acl/peer-creds.js';
import { AclGuard } from './acl/acl-guard.js';
import { rpcMetricsFor, type OnCallDone } from './rpc-metrics.js';
import { PROCESS_METRIC_PREFIX } from './metrics-catalogue.js';
import { EventLoopLateness, PROM_CLIENT_IDLE_RESOLUTION_MS, registerLagGauges } from './eventloop-lateness.js';
import { WorkerSlots } from './worker-slots.js';
import type { InheritedSockets } from './listen-fds.js';

/** The paths of a daemon's three sockets. */
export interface SocketPaths {
  rw: string;
  ro: string;
  admin: string;
}

/** Where a service's metrics go: a registry and the RPC hook that counts calls into it. */
export interface ServiceMetrics {
  registry: Registry;
  onCallDone: OnCallDone;
  /** Labels the procedures of `program` by name in the RPC metrics. */
  countProgram(program: Program): void;
}

/** What a daemon service is built from. */
export interface ServiceConfig {
  /** The binary name, e.g. `virtstoraged`: server info, errors and log lines name it. */
  daemon: string;
  role: ServerRole;
  version: string;
  clock: Clock;
  logs: Logs;
  sockets: SocketPaths;
  /** Sockets a service manager passed already listening (socket activation): served as they are, never unlinked. */
  inherited?: InheritedSockets;
  /** The inherited sockets were handed over by the shim this one replaces: this one removes them in the end. */
  inheritedOwned?: boolean;
  /** Mode of the read-only socket (default 0666; the others are 0600). */
  roSocketMode?: number;
  /** A client that leaves a frame unfinished this long is dropped (default 30 s). */
  partialFrameTimeoutMs?: number;
  /** Extra facts for admin serverInfo. */
  info?: () => Record<string, unknown>;
  /** The metrics (default: serviceMetrics(daemon, programs)). */
  metrics?: ServiceMetrics;
  /** The programs served besides admin, for the RPC metrics' procedure labels (with the default metrics). */
  programs?: readonly Program[];
}

/**
 * The default metrics of a daemon: Node's process metrics (`virtq_daemon_…`) and the RPC
 * metrics, every series labelled with the daemon's name so that virtqemud's host scrape can
 * merge several daemons' registries.
 */
export function serviceMetrics(daemon: string, programs: readonly Program[], labelled = true, processMetrics = true): ServiceMetrics & { registry: DeferringRegistry } {
  const registry = new DeferringRegistry();
  if (labelled) registry.setDefaultLabels({ daemon });
  if (processMetrics) collectProcessMetrics(registry);
  return { registry, ...rpcMetricsFor(registry, programs) };
}

/**
 * Adds Node's process metrics to `registry`. The framework adds them after its sockets are open, at
 * the first scrape or a second later (run-service.ts, DeferringRegistry): they cost a daemon's start
 * ~5-10 ms of CPU (perf_hooks, an event-loop delay histogram) that a restart's first listing does not
 * need, and virtqemud's snapshot builder runs a daemon without them (the histogram is a native
 * handle a snapshot cannot hold).
 */
export function collectProcessMetrics(registry: Registry): void {
  const prefix = PROCESS_METRIC_PREFIX.virtqemud;
  // prom-client's event-loop histogram would tick every 10 ms and record whole intervals: given a
  // resolution it never reaches, and its gauges replaced by lateness ones sampled every 100 ms.
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: PROM_CLIENT_IDLE_RESOLUTION_MS });
  registerLagGauges(registry, prefix, new EventLoopLateness());
}

/**
 * A registry that can be given metrics to add later: they are added at its first scrape (every
 * reader of a daemon's own metrics goes through `metrics()` or `getMetricsAsJSON()`) or when
 * `settle()` is called, whichever comes first. The framework defers Node's process metrics this
 * way past a restarted virtqemud's first listing (~5 ms of CPU; issue 15 target 4, session 13):
 * no scrape can see them missing.
 */
export class DeferringRegistry extends Registry {
  private pending: (() => void) | undefined;

  /** Runs `add` before the first scrape or at `settle()`, once. */
  defer(add: () => void): void {
    this.pending = add;
  }

  /** Adds what was deferred, if it was not yet. */
  settle(): void {
    const add = this.pending;
    this.pending = undefined;
    add?.();
  }

  override metrics(): Promise<string> {
    this.settle();
    return super.metrics();
  }

  override getMetricsAsJSON(): ReturnType<Registry['getMetricsAsJSON']> {
    this.settle();
    return super.getMetricsAsJSON();
  }
}

/** A daemon's RPC service. */
export class DaemonService {
  readonly server: RpcServer;
  readonly metrics: Registry;
  /** Slots for long operations, as many as the admin limit `workerConcurrency` says. */
  readonly workers: WorkerSlots;
  /** The TLS listener, once listenTls opened it. */
  tls: TlsListener | undefined;
  /** The access rules, once loadAccessRules set them up. */
  acl: AclGuard | undefined;

  constructor(private readonly cfg: ServiceConfig) {
    const metrics = cfg.metrics ?? serviceMetrics(cfg.daemon, cfg.programs ?? []);
    this.metrics = metrics.registry;
    this.workers = new WorkerSlots(() => this.server.limits.workerConcurrency);
    this.server = new RpcServer({
      daemon: cfg.daemon, version: cfg.version, role: cfg.role, clock: cfg.clock, log: cfg.logs.module('rpc.server'),
      onCallDone: metrics.onCallDone, peerCreds: unixPeerCreds,
      info: () => ({ ...cfg.info?.(), workers: this.workers.counts }),
      ...(cfg.partialFrameTimeoutMs === undefined ? {} : { partialFrameTimeoutMs: cfg.partialFrameTimeoutMs }),
    });
    this.server.register(adminLogHandlers(cfg.logs));
    this.server.register(adminConfigHandlers({ server: this.server, logs: cfg.logs, tls: () => this.tls, acl: () => this.acl }));
    this.server.register({ program: adminProgram, handlers: { getMetrics: async () => ({ families: (await this.metrics.getMetricsAsJSON()) as never }) } });
  }

  /** Serves `program` with `handlers`; `fallback` takes procedures without a handler. */
  serve<P extends Program>(entry: { program: P; handlers: Handlers<P>; fallback?: Fallback }): void {
    this.server.register(entry);
  }

  /**
   * Opens one socket: the one passed for it, if any, else binds its path (SOCKET_IN_USE when a
   * live process serves it, which is never unlinked).
   */
  listen(which: SocketClass): Promise<void> {
    const mode = which === 'ro' ? this.cfg.roSocketMode ?? 0o666 : 0o600;
    return this.server.listen(this.cfg.sockets[which], which, mode, this.cfg.inherited?.[which], this.cfg.inheritedOwned === true);
  }

  /**
   * Also serves the read-write API on `host:port` with mutual TLS: clients whose certificate
   * verified are served as read-write clients of their own socket class (cap and frame budget),
   * identified by their subject DN. Resolves with the port (the chosen one for port 0).
   */
  async listenTls(host: string, port: number, files: TlsFiles, handshakeTimeoutMs: number): Promise<number> {
    this.tls = await TlsListener.open({
      host, port, files, handshakeTimeoutMs, log: this.cfg.logs.module('rpc.tls'),
      maxConnections: () => this.server.limits.maxClients,
      onClient: (socket, dn) => this.server.accept(socket, 'rw', { transport: 'tls', dn, remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}` }),
    });
    return this.tls.port;
  }

  /**
   * Puts the access rules of `file` in force (none when it does not exist); throws for a bad
   * file. Local clients of the read-write and admin sockets are identified as the daemon's owner
   * (decision 0022), those of the read-only socket as anonymous-ro.
   */
  async loadAccessRules(file: string): Promise<void> {
    const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    // A client's own credentials once looked up (rules on uid/gid, decision 0029), else the owner's.
    const guard = new AclGuard(this.server, file, owner, (c) => c.unixCreds ?? owner, this.metrics, this.cfg.logs.module('rpc.acl'));
    await guard.load();
    this.acl = guard;
  }

  /** Stops listening, removes its socket files and drops every client. */
  async close(): Promise<void> {
    await this.tls?.close();
    return this.server.close();
  }
}
