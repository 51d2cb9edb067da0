// The daemon framework: what a host daemon is (a name, its programs and handlers, a few options)
// and everything around it that is the same for all of them — the layout, logs, the admin
// socket claimed first (a second instance under one root stops there), the read-write and
// read-only sockets, metrics over HTTP, the ready line, signals. virtqemud and each secondary
// daemon are one `ServiceDefinition` each; a new daemon is a catalogue plus handlers.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import {
  DAEMONS, serviceSockets, systemClock,
  type Clock, type DaemonName, type Disposable, type Fallback, type Handlers, type Layout, type Program,
} from '../protocol/index.js';
import type { Logs } from './log-filters.js';
import { DaemonService, collectProcessMetrics, serviceMetrics } from './service.js';
import { COMMON_USAGE, layoutOf, parseDaemonArgs, type CommonOptions, type OptionValues, type OptionsConfig } from './options.js';
import { firstRoute, metricsRoute, serveHttp, type HttpHandler, type HttpRoute } from './http-server.js';
import { runMain, type ProcessLike } from './main-shell.js';
import { loadAccess, openRemote } from './remote-access.js';
import { assignListenFds, takeListenFds, type InheritedSockets, type PassedSocket } from './listen-fds.js';
import { tierUpSooner } from './v8-tiering.js';

/** When Node's process metrics join a daemon's registry unless a scrape came first (ms after its sockets opened). */
const PROCESS_METRICS_AFTER_MS = 1000;

/** One program a daemon serves, with its handlers. */
export interface Served<P extends Program = Program> {
  program: P;
  handlers: Handlers<P>;
  fallback?: Fallback;
}

/** A program with its handlers, checked against each other here and type-erased for the framework. */
export function served<P extends Program>(program: P, handlers: Handlers<P>, fallback?: Fallback): Served {
  return { program, handlers: handlers as Handlers<Program>, ...(fallback === undefined ? {} : { fallback }) };
}

/** What `build` is given. */
export interface ServiceContext<X> {
  readonly layout: Layout;
  readonly clock: Clock;
  readonly logs: Logs;
  readonly env: NodeJS.ProcessEnv;
  readonly common: CommonOptions;
  /** The daemon's own options, as its `parseExtra` returned them. */
  readonly extra: X;
  /** The RPC service: its metrics registry is the daemon's (add gauges to it). */
  readonly service: DaemonService;
}

/** What a daemon's `build` returns: its programs and the hooks around serving them. */
export interface ServiceParts {
  readonly served: readonly Served[];
  /** Extra facts for admin serverInfo. */
  info?(): Record<string, unknown>;
  /** Extra fields of the ready line. */
  ready?(): Record<string, unknown>;
  /** HTTP routes before the default GET /metrics. */
  readonly http?: HttpRoute;
  /** Sees HTTP requests before the routes, and takes upgrades (virtqemud's web view). */
  readonly httpHandler?: HttpHandler;
  /** Runs once every socket is open (background work: autostart, reconciliation); `httpPort` is --http's bound port. */
  serving?(opened: { httpPort: number | undefined }): void;
  /** Stops the daemon's own work; the framework then closes the sockets. */
  close(): Promise<void>;
}

/** A daemon as the framework runs it. */
export interface ServiceDefinition<X> {
  readonly daemon: DaemonName;
  readonly version: string;
  /** One paragraph for --help. */
  readonly summary: string;
  /** Options beyond the common ones, and their usage lines. */
  readonly options?: OptionsConfig;
  readonly optionsUsage?: string;
  /** Reads the daemon's own options; throws INVALID_ARG for a bad one. */
  parseExtra(values: OptionValues, env: NodeJS.ProcessEnv): X;
  /** Labels on every series of the daemon's own metrics (default `{ daemon: NAME }`). */
  readonly metricLabels?: Readonly<Record<string, string>>;
  /**
   * Makes the daemon's log hub. Passed in rather than imported here so that a daemon's bundle holds
   * only the logger it uses: every daemon and the shims now write pino's lines without pino
   * (daemon/line-log.ts, decision 0002; the secondary daemons since issue 13, session 15).
   */
  makeLogs(opts: LogHubOptions): Logs;
  /** Builds the daemon once its admin socket is claimed. */
  build(ctx: ServiceContext<X>): Promise<ServiceParts>;
}

/** What a log hub is made from: the daemon's name, its filters and where its lines go. */
export interface LogHubOptions {
  name: string;
  bindings: Record<string, unknown>;
  filters?: string;
  file?: string;
  stderr?: boolean;
}

/** How startService runs a daemon beyond its options. */
export interface StartOptions {
  /** Node's process metrics in its registry (default true; virtqemud's snapshot builder runs without). */
  processMetrics?: boolean;
}

/** A running daemon. */
export interface RunningService {
  readonly layout: Layout;
  readonly service: DaemonService;
  readonly sockets: { rw: string; ro: string; admin: string };
  readonly httpPort: number | undefined;
  /** The TLS port, when `--listen-tls` was given. */
  readonly tlsPort: number | undefined;
  readonly parts: ServiceParts;
  readonly logs: Logs;
  /** The sockets served on descriptors a service manager passed. */
  readonly inherited: InheritedSockets;
  close(): Promise<void>;
}

/** The usage text of a daemon. */
export function serviceUsage(def: ServiceDefinition<unknown>): string {
  const scheme = DAEMONS[def.daemon].scheme;
  return `usage: ${def.daemon} [--root DIR | --system | --session] [options]\n\n${def.summary}\n\n${COMMON_USAGE.replace('SCHEME', scheme)}${def.optionsUsage === undefined ? '' : `\n${def.optionsUsage}`}`;
}

/**
 * Starts `def` under the layout `common` chooses (tests call this in-process, many at once).
 * `passed` are the sockets a service manager handed over (takeListenFds): each serves the socket
 * it is for instead of one the daemon binds.
 */
export async function startService<X>(def: ServiceDefinition<X>, common: CommonOptions, extra: X, env: NodeJS.ProcessEnv, clock: Clock = systemClock(), passed: readonly PassedSocket[] = [], opts: StartOptions = {}): Promise<RunningService> {
  const layout = layoutOf(common, env);
  // Synchronous: two thread-pool round trips each (mkdir, then a stat as it exists) that a restart
  // waited on before anything else, on a loaded host milliseconds each (issue 15 target 4).
  mkdirSync(layout.runtime, { recursive: true, mode: 0o755 });
  mkdirSync(layout.log, { recursive: true, mode: 0o755 });
  const logs = def.makeLogs({ name: def.daemon, bindings: {}, filters: common.logFilters ?? env['LOG_FILTERS'], file: join(layout.log, `${def.daemon}.log`), stderr: common.logStderr });
  const sockets = serviceSockets(layout, def.daemon);
  const inherited = assignListenFds(passed, sockets, def.daemon);
  if (passed.length > 0) logs.module('daemon').info({ inherited }, 'serving sockets passed by the service manager');
  const programs = DAEMONS[def.daemon].programs;
  let parts: ServiceParts | undefined;
  const labels = def.metricLabels ?? { daemon: def.daemon };
  const metrics = serviceMetrics(def.daemon, [], Object.keys(labels).length > 0, false);
  const service = new DaemonService({
    daemon: def.daemon, role: DAEMONS[def.daemon].role, version: def.version, clock, logs, sockets, inherited,
    partialFrameTimeoutMs: common.partialFrameTimeoutMs, info: () => parts?.info?.() ?? {}, metrics,
  });
  // Claim the admin socket first: a second instance must not even read state another one owns.
  await service.listen('admin');
  await loadAccess(service, common, layout, def.daemon).catch(async (err: unknown) => { await service.close(); throw err; });
  let http: Server | undefined;
  try {
    parts = await def.build({ layout, clock, logs, env, common, extra, service });
    for (const s of parts.served) {
      if (s.program.name !== 'admin' && !(programs as readonly string[]).includes(s.program.name)) throw new Error(`${def.daemon} serves ${s.program.name}, which services.ts does not list for it`);
      metrics.countProgram(s.program);
      service.serve(s);
    }
    await service.listen('rw');
    await service.listen('ro');
    const tlsPort = await openRemote(service, common, layout);
    const httpPort = common.httpAddress === undefined ? undefined : await (async () => {
      const h = await serveHttp(common.httpAddress as string, firstRoute(...(parts.http === undefined ? [] : [parts.http]), metricsRoute(service.metrics)), logs.module('http'), parts.httpHandler);
      http = h.server;
      return h.port;
    })();
    // Added at the first scrape, or PROCESS_METRICS_AFTER_MS after the sockets opened: not before
    // a restarted daemon's first answers (DeferringRegistry); no scrape sees them missing.
    let processTimer: Disposable | undefined;
    if (opts.processMetrics !== false) {
      const registry = metrics.registry;
      registry.defer(() => collectProcessMetrics(registry));
      processTimer = clock.setTimeout(() => registry.settle(), PROCESS_METRICS_AFTER_MS);
    }
    parts.serving?.({ httpPort });
    const built = parts;
    return {
      layout, service, sockets, httpPort, tlsPort, parts: built, logs, inherited,
      close: async () => {
        processTimer?.dispose();
        // Long-lived answers (a web view's event stream) would hold the server open.
        http?.close();
        http?.closeAllConnections();
        await built.close();
        await service.close();
      },
    };
  } catch (err) {
    http?.close();
    await parts?.close().catch(() => undefined);
    await service.close();
    throw err;
  }
}

/** Runs `def` as this process: the binary's whole main(). */
export function serviceMain<X>(def: ServiceDefinition<X>, proc: ProcessLike & { readonly env: NodeJS.ProcessEnv; getuid?(): number }): Promise<void> {
  return runMain({
    binary: def.daemon,
    usage: serviceUsage(def as ServiceDefinition<unknown>),
    parse: (argv) => {
      const { common, values, help } = parseDaemonArgs(argv, def.options ?? {}, proc.getuid?.() ?? 0);
      return help ? 'help' : { common, extra: def.parseExtra(values, proc.env) };
    },
    start: async ({ common, extra }) => {
      // Taken (and removed from the environment) before anything is spawned.
      const passed = takeListenFds(proc.env, proc.pid);
      const running = await startService(def, common, extra, proc.env, systemClock(), passed);
      tierUpSooner(); // from now on the calls' paths are what runs (v8-tiering.ts)
      let stopping: Promise<void> | undefined;
      let markDone!: () => void;
      const done = new Promise<void>((resolve) => { markDone = resolve; });
      return {
        readyLine: JSON.stringify({ ok: true, pid: proc.pid, socket: running.sockets.rw, httpPort: running.httpPort, ...(running.tlsPort === undefined ? {} : { tlsPort: running.tlsPort }), ...activated(running), ...running.parts.ready?.() }),
        stop: () => { stopping ??= running.close().finally(markDone); },
        done,
        flush: () => running.logs.flush(),
      };
    },
  }, proc);
}

/** The ready line's `activated` field: which sockets were passed in (absent when none were). */
function activated(running: RunningService): { activated?: string[] } {
  const classes = (['rw', 'ro', 'admin'] as const).filter((c) => running.inherited[c] !== undefined);
  return classes.length === 0 ? {} : { activated: classes };
}
