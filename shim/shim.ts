// One shim: claims the VM's name under its root (its socket, bound without ever taking a live
// one), serves the per-VM API, runs the VM, keeps the runtime state file current and reports
// to virtqemud. When the VM stops for good it publishes the final state and finishes; when the
// shim itself is stopped, the VM keeps running for a successor to re-attach.
import type { Server } from 'node:http';
import { join } from 'node:path';
import {
  VirtqError, adminProgram, normalizeDefinition, shimSockets, shimStateFile, virtqProgram,
  type Clock, type Layout, type LifecycleEvent, type LifecycleEventKind, type Logger, type NormalizedDefinition,
  type IncomingState,
} from '../protocol/index.js';
import { chooseAccel, accelEnvironment, type QemuCapabilities } from '../drivers/hypervisor/qemu/capabilities.js';
import { qemuDriver } from '../drivers/hypervisor/qemu/driver.js';
import type { Logs } from '../daemon/log-filters.js';
import type { DaemonService } from '../daemon/service.js';
import type { LockPluginMap, SpareLifeline } from '../drivers/lock/types.js';
import { Vm } from './vm/vm.js';
import { runtimeStateOf } from './state-of.js';
import { noSecretDaemon, type SecretLookup, type VolumeLookup } from './vm/disk-resolver.js';
import { NicPorts, nicOperations, type PortLookup } from './vm/nic-ports.js';
import type { VmLeases } from './vm/leases.js';
import { fenceOnLeaseLoss } from './vm/fencing.js';
import { ConsoleHub } from './vm/console.js';
import { MonitorListener } from './vm/monitor-listener.js';
import type { Spawner } from './vm/qemu-process.js';
import { readRuntimeState, writeRuntimeStateSync, type RuntimeState } from '../daemon/runtime-state.js';
import { vmHandlers } from './handlers/vm-handlers.js';
import type { Registrar } from './registration.js';
import { registrationInfo, registrationOf } from './registration-row.js';
import { ShimMetrics, shimRegistry } from './metrics.js';
import { metricsRoute, serveHttp } from '../daemon/http-server.js';
import { VmEvents } from './journal/vm-events.js';
import { qmpProxyFor, withEventTap, type HostQmpProxyOptions } from './qmp-proxy/config.js';
import type { QmpProxyServer } from './qmp-proxy/server.js';
import { upgradeShim } from './upgrade/predecessor.js';
import { adoptQemuConnections, type HandedOver, type HandoverParts, type RelaunchCommand } from './upgrade/parts.js';
import { saveHandlers } from './handlers/save-handlers.js';
import { allDone, claimName, diskResolver, durableWaits, leasesAndCapabilities, listenOwnSocket, pathOnly, resolvedOrClosed, shimService } from './shim-parts.js';
import { incomingStart, shimMigration, type ShimMigration } from './migration-setup.js';

const PERSIST_RETRY_MS = 1000;
/** How long giving ports back waits for virtnetworkd when the VM is gone (it releases them itself later). */
const PORT_RELEASE_WAIT_MS = 1000;
const FINAL_STATE_WAIT_MS = 30_000;
/** What to run. `requested`: the start came on stdin (--start-request, virtqemud's and embed mode's way), whose ready line counts the updates sent. */
export type ShimMode = { kind: 'start'; definition: unknown; paused: boolean; incoming?: IncomingState; requested?: boolean } | { kind: 'attach'; name: string };

/** Everything a shim is built from (see compose.ts). */
export interface ShimConfig {
  layout: Layout;
  mode: ShimMode;
  qemuBinary: string;
  clock: Clock;
  logs: Logs;
  spawner: Spawner;
  env: Readonly<Record<string, string | undefined>>;
  newUuid: () => string;
  version: string;
  /** Embedded VMs are private to their application and never registered. */
  private: boolean;
  /** Lock plugins by name (default: the built-in ones); `etc/lock.json` picks one. */
  lockPlugins?: LockPluginMap;
  /** A lease lifeline a warm pool shim locked while it waited; the start uses it or closes it. */ spareLifeline?: SpareLifeline;
  /** The QEMU capabilities a warm pool shim read while it waited: used only while the binary's identity is unchanged. */ knownCaps?: QemuCapabilities;
  /** HOST:PORT to serve this VM's own GET /metrics on, for direct scraping. */
  metricsAddress?: string;
  /** Connects to virtqemud and claims the name there; undefined for --no-register. */
  connectRegistrar?: (log: Logger) => Promise<Registrar>;
  /** How volume disks, encrypted disks and network ports are resolved (virtstoraged, virtsecretd, virtnetworkd); none: only path disks. */
  daemons?: { volumes: VolumeLookup; secrets: SecretLookup; ports?: PortLookup; waitMs: number };
  /** The shared QMP socket's host-wide options (default: served, read-only commands only). */
  qmpProxy?: HostQmpProxyOptions;
  /** A successor in a shim upgrade: the predecessor's sockets to serve instead of binding new ones. */
  handedOver?: HandedOver;
  /** How this shim starts its successor in an upgrade (undefined: it cannot be upgraded). */
  relaunch?: RelaunchCommand;
}
/** A running shim. */
export class Shim {
  /** Settles when the shim should exit (the VM stopped for good, or stop() was called). */
  readonly done: Promise<void>;
  private markDone!: () => void;
  private persisting: Promise<void> = Promise.resolve();
  /** Why the last state-file write failed (a full disk), until a later one succeeds. */
  private persistError: VirtqError | undefined;
  private retrying = false;
  private metricsHttp: Server | undefined;
  private stopping = false;
  private serveApi: () => void = () => undefined;
  private broughtUp!: () => void;
  private readonly up = new Promise<void>((resolve) => { this.broughtUp = resolve; });
  /** Registers with virtqemud: asked for, and (for a successor) done by its predecessor too. */
  private registers: boolean;
  /** The shared QMP socket (shim/qmp-proxy/), unless turned off. */
  private qmpProxy: QmpProxyServer | undefined;
  /** Live migration: the source side, and the destination side of a shim started with --incoming. */
  private migration: ShimMigration | undefined;
  /** A start virtqemud asked for: its ready line counts the updates sent (readyFields). */
  private readonly readyCounts: boolean;
  private journal: VmEvents | undefined;

  private constructor(
    private readonly cfg: ShimConfig,
    readonly vm: Vm,
    readonly service: DaemonService,
    private readonly consoleHub: ConsoleHub,
    private readonly monitors: MonitorListener,
    private readonly stateFile: string,
    private readonly sockets: RuntimeState['sockets'],
    private readonly accel: string,
    private readonly log: Logger,
    private registrar: Registrar | undefined,
    readonly metrics: ShimMetrics,
    private readonly ports: NicPorts,
    private readonly openJournal: () => VmEvents,
  ) {
    this.done = new Promise((resolve) => { this.markDone = resolve; });
    this.registers = cfg.connectRegistrar !== undefined;
    this.readyCounts = cfg.mode.kind === 'start' && cfg.mode.requested === true;
  }

  /** Starts (or re-attaches to) the VM; resolves once it is running or paused. */
  static async start(cfg: ShimConfig): Promise<Shim> {
    const saved = cfg.mode.kind === 'attach' ? await readRuntimeState(shimStateFile(cfg.layout, cfg.mode.name)) : undefined;
    const def = cfg.mode.kind === 'start' ? normalizeDefinition(cfg.mode.definition, cfg.newUuid) : saved?.definition;
    if (def === undefined) throw new VirtqError('NO_DOMAIN', `no state file for VM "${cfg.mode.kind === 'attach' ? cfg.mode.name : '?'}" under ${cfg.layout.runtime}: nothing to attach to`);
    // A successor of a shim that ran without virtqemud runs without it too, whatever its flags
    // say: registering would wait for a daemon that never knew the VM, then give up and exit.
    const registers = cfg.connectRegistrar !== undefined && saved?.registered !== false;
    // Connecting claims nothing (registering does, once the name's socket is ours): begun now, it
    // overlaps the lock manager, the capabilities and the binds instead of following them.
    const connecting = registers ? cfg.connectRegistrar?.(cfg.logs.module('registry')) : undefined;
    connecting?.catch(() => undefined); // awaited in bringUp; a failed start closes it below
    const closeUnused = (): Promise<void> => connecting?.then((r) => r.close(), () => undefined) ?? Promise.resolve();
    const shim = await Shim.assemble(cfg, def, saved).catch(async (err: unknown) => {
      await closeUnused();
      throw err;
    });
    shim.registers &&= registers;
    try {
      await shim.bringUp(saved, connecting);
      shim.broughtUp(); // an upgrade asked meanwhile (the admin socket serves already) may go on
    } catch (err) {
      // A QEMU this shim spawned must not outlive a failed start: nothing would manage it; nor its ports.
      if (cfg.mode.kind === 'start' && shim.vm.qemuPid !== undefined) await shim.vm.destroy(1000).catch(() => undefined);
      if (cfg.mode.kind === 'start') await shim.ports.release(shim.vm.def.interfaces, PORT_RELEASE_WAIT_MS);
      await shim.shutdownServices();
      await closeUnused(); // after the VM is gone, as a registration's end tells virtqemud it is
      throw err;
    }
    cfg.spareLifeline?.discard(); // taken by the VM's leases, or not needed (another lock plugin); a failed start's shim exits
    void shim.vm.finished.then(() => shim.finish());
    return shim;
  }

  // Everything the VM needs before it is claimed: directories, the lock manager, the QEMU binary
  // and its capabilities, and the read-write socket (whose bind is this root's claim on the name).
  private static async assemble(cfg: ShimConfig, def: NormalizedDefinition, saved: RuntimeState | undefined): Promise<Shim> {
    const log = cfg.logs.module('shim');
    const sockets = shimSockets(cfg.layout, def.name);
    const [leases, caps] = await leasesAndCapabilities(cfg, def, log);
    const accel = saved?.accel === 'kvm' || saved?.accel === 'tcg' ? saved.accel : chooseAccel(def, caps, accelEnvironment(cfg.env));
    const registry = shimRegistry(def);
    const service = shimService(cfg, sockets, registry, () => ({ vm: def.name, state: vm.state, qemuPid: vm.qemuPid, lockManager: leases.status }));
    await listenOwnSocket(service, def.name, sockets.rw, cfg.clock);
    const resolver = diskResolver(cfg, def.name);
    const resolved = await resolvedOrClosed(def, saved, resolver, service);
    const consoleHub = new ConsoleHub(sockets.console, join(cfg.layout.log, `${def.name}.console.log`));
    const monitors = new MonitorListener(sockets.monitor);
    const vm = new Vm(resolved, {
      clock: cfg.clock, log: cfg.logs.module('vm'), spawner: cfg.spawner, secrets: resolver ?? noSecretDaemon(def.name),
      driver: withEventTap(qemuDriver({ clock: cfg.clock, binary: caps.binary, accel, sandbox: caps.sandbox, monitorSocket: sockets.monitor, consoleSocket: sockets.console }), (e) => { shim.qmpProxy?.publish(e); shim.migration?.onEvent(e); }),
      qemuLogFile: join(cfg.layout.log, `${def.name}.qemu.log`), monitors, leases,
      onLifecycle: (kind, details) => shim.onLifecycle(kind, details),
      onQmpCommand: (command, seconds, ok) => metrics.onQmpCommand(command, seconds, ok),
    });
    const metrics = new ShimMetrics(registry, vm, cfg.clock, cfg.logs.module('metrics'));
    const ports = new NicPorts({ vm: def.name, uuid: def.uuid, clock: cfg.clock, log: cfg.logs.module('network'), lookup: cfg.daemons?.ports, waitMs: cfg.daemons?.waitMs ?? 0 });
    // Opened at its first use, after the name is ours (the socket above): this shim is then the journal's one writer.
    const openJournal = (): VmEvents => VmEvents.open({ stateDir: cfg.layout.state, name: def.name, clock: cfg.clock, log: cfg.logs.module('journal'), pid: process.pid,
      vm: { tainted: saved?.tainted ?? false, state: saved?.state ?? 'shutoff', def: resolved } });
    const qmpProxy = qmpProxyFor(cfg.qmpProxy, vm, { path: sockets.qmpProxy, log: cfg.logs.module('qmp-proxy'), onChanged: () => shim.taint() });
    const shim: Shim = new Shim(cfg, vm, service, consoleHub, monitors, shimStateFile(cfg.layout, def.name), { ...sockets, qmpProxy: qmpProxy === undefined ? undefined : sockets.qmpProxy }, accel, log, undefined, metrics, ports, openJournal);
    shim.qmpProxy = qmpProxy;
    const migration = shimMigration({ vm, leases, clock: cfg.clock, log: cfg.logs.module('migration'), layout: cfg.layout, incoming: cfg.mode.kind === 'start' && cfg.mode.incoming?.kind === 'migration' ? cfg.mode.incoming.transport : undefined });
    shim.migration = migration;
    leases.onChange = (c) => shim.onLifecycle(c.kind, c.details);
    fenceOnLeaseLoss(vm, leases, cfg.logs.module('lock'));
    // Served from the moment the name is ours (bringUp), not before.
    service.serve({ program: adminProgram, handlers: { upgrade: (_a, ctx) => upgradeShim(shim.handoverParts(), ctx.client) } });
    shim.serveApi = () => service.serve({ program: virtqProgram, handlers: { ...vmHandlers({
      vm, console: consoleHub, shimPid: process.pid, accel, persisted: () => shim.durable(),
      resolveDisk: (disk) => (resolver === undefined ? pathOnly(disk) : resolver.disk(disk)),
      network: nicOperations(vm, ports), events: shim.events,
    }), ...saveHandlers({
      vm, clock: cfg.clock, layout: cfg.layout, monitorSocket: sockets.monitor, persisted: () => shim.durable(), leases, volumes: cfg.daemons?.volumes, log: cfg.logs.module('snapshot'),
    }), ...migration.handlers(() => shim.durable()) } });
    return shim;
  }

  // Claims the name, opens the other sockets, registers, then starts QEMU or takes over the
  // running one; returns once virtqemud has the outcome.
  private async bringUp(saved: RuntimeState | undefined, connecting: Promise<Registrar> | undefined): Promise<void> {
    const { cfg, vm } = this;
    const incomingReq = cfg.mode.kind === 'start' ? cfg.mode.incoming : undefined;
    const paused = cfg.mode.kind === 'start' && cfg.mode.paused;
    const reattach = saved?.qemuPid !== undefined;
    const requested = this.readyCounts && saved === undefined && cfg.handedOver === undefined; // a new VM virtqemud asked for
    // Such a start (it holds the name; a migration's destination too, not a restore) execs QEMU (-S) once the name, console and monitor
    // sockets, ports, leases and argv are there; ro/admin binds, API and `register` run beside it; guest or stream wait for `claimed` (0026).
    if (requested && incomingReq?.kind !== 'image') {
      await allDone([claimName(cfg.mode.kind, vm.def.name, this.stateFile, saved), this.consoleHub.listen(), this.monitors.listen()]);
      vm.setDevices({ interfaces: await this.ports.forStart(vm.def) }, false);
      const incoming = await incomingStart(incomingReq, { vm, clock: cfg.clock, monitorSocket: this.sockets.monitor, migration: this.migration });
      let rest: Promise<unknown> | undefined;
      const started = vm.start(paused, incoming, () => (rest = this.announce(saved, connecting, false).then((a) => a.registering)));
      await Promise.allSettled([started]);
      await allDone([rest, started]); // a refusal's error first; both settled before a failure is handled
    } else {
      const { registering } = await this.announce(saved, connecting, true);
      // Console and monitor bound while virtqemud checks `register` (a requested restore spawns QEMU meanwhile too).
      const claimed = requested ? registering : undefined;
      await allDone([claimed === undefined ? registering : undefined, this.consoleHub.listen(cfg.handedOver?.fds.consoleListener), this.monitors.listen(cfg.handedOver?.fds.monitorListener)]);
      if (cfg.handedOver !== undefined) adoptQemuConnections(cfg.handedOver, this.consoleHub, this.monitors);
      if (saved !== undefined && saved.qemuPid !== undefined) {
        await vm.reattach(saved.qemuPid, saved);
        await this.migration?.recover();
      } else {
        // Ports come before QEMU: its command line names their taps.
        vm.setDevices({ interfaces: await this.ports.forStart(vm.def) }, false);
        const incoming = await incomingStart(incomingReq, { vm, clock: cfg.clock, monitorSocket: this.sockets.monitor, migration: this.migration });
        await allDone([claimed, vm.start(paused, incoming, claimed)]); // a refusal's error first
      }
    }
    // Three independent waits, overlapped: the state file (a started VM: without it nobody could
    // find or take over the VM after this shim, so no start), the shared QMP socket, and
    // virtqemud's listing (whoever waits for the ready line, virtqemud's create, finds it current).
    // For a start virtqemud asked for, the updates only need to be written: the ready line counts
    // them and virtqemud replies once its own listing has them (one round trip less, issue 15).
    const listing = this.readyCounts ? this.registrar?.posted() : this.registrar?.flush();
    await allDone([reattach ? undefined : this.persisting, this.qmpProxy?.listen(), listing]);
    if (!reattach && this.persistError !== undefined) throw new VirtqError('OPERATION_FAILED', `cannot start VM "${vm.def.name}": ${this.persistError.message}`, { cause: this.persistError });
    this.metrics.start();
    if (cfg.metricsAddress !== undefined) this.metricsHttp = (await serveHttp(cfg.metricsAddress, metricsRoute(this.metrics.registry), cfg.logs.module('http'))).server;
  }

  // The name's check (unless done), the sockets beside the read-write one, the API, `register` sent (its reply the caller's).
  private async announce(saved: RuntimeState | undefined, connecting: Promise<Registrar> | undefined, check: boolean): Promise<{ registering: Promise<unknown> | undefined }> {
    await allDone([check ? claimName(this.cfg.mode.kind, this.vm.def.name, this.stateFile, saved) : undefined, this.service.listen('ro'), this.service.listen('admin')]);
    // A successor reports the VM as its state file left it until QEMU has redialled.
    if (saved !== undefined) this.vm.restore(saved);
    this.serveApi();
    if (this.registers) this.registrar = await connecting;
    const registering = this.registrar?.register(registrationOf(this.vm, { sockets: this.sockets, stateFile: this.stateFile, accel: this.accel }, saved));
    registering?.catch(() => undefined); // awaited by the caller, or by the start
    return { registering };
  }

  // The event journal, opened at its first use: for a new VM, its first event, after QEMU's exec (beside QEMU's start).
  private get events(): VmEvents { return (this.journal ??= this.openJournal()); }

  /** What a shim upgrade hands over, and how this shim pauses and resumes around it (shim/upgrade/). */
  handoverParts(): HandoverParts {
    return {
      vm: this.vm, service: this.service, sockets: this.sockets, console: this.consoleHub, monitors: this.monitors, log: this.log, clock: this.cfg.clock,
      relaunch: this.cfg.relaunch, stopping: () => this.stopping, up: this.up,
      freeze: async () => {
        this.metrics.stop();
        this.metricsHttp?.close();
        this.registrar?.close();
        this.registrar = undefined;
        // The shared QMP socket is not handed over: its clients see a clean close, and the successor binds it anew.
        await this.qmpProxy?.close();
        await this.persisting;
      },
      thaw: async () => {
        this.metrics.start();
        await this.qmpProxy?.listen();
        const { cfg } = this;
        if (cfg.metricsAddress !== undefined) this.metricsHttp = (await serveHttp(cfg.metricsAddress, metricsRoute(this.metrics.registry), cfg.logs.module('http'))).server;
        if (this.registers) this.registrar = await cfg.connectRegistrar?.(cfg.logs.module('registry'));
        await this.registrar?.register(registrationOf(this.vm, { sockets: this.sockets, stateFile: this.stateFile, accel: this.accel }, this.runtimeState()));
      },
      handedOver: () => { this.stopping = true; this.cfg.clock.setTimeout(() => this.markDone(), 200); }, // the upgrade's reply goes out first
    };
  }

  /**
   * The ready line's own fields: where an incoming migration's QEMU listens, and for a requested
   * start how many updates virtqemud's listing must show before it replies.
   */
  readyFields(): { incomingUri?: string; reports?: number } {
    const uri = this.migration?.incoming?.uri;
    const reports = this.readyCounts ? this.registrar?.sent : undefined;
    return { ...(uri === undefined ? {} : { incomingUri: uri }), ...(reports === undefined ? {} : { reports }) };
  }

  /** Stops the shim and leaves QEMU running (SIGTERM): a successor re-attaches with --attach. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.persisting;
    await this.shutdownServices();
    this.markDone();
  }

  /** The runtime state as written to the state file. */
  runtimeState(): RuntimeState {
    return runtimeStateOf(this.vm, { accel: this.accel, sockets: this.sockets, private: this.cfg.private, registered: this.registers }, this.cfg.clock.now());
  }

  /**
   * Settles once every state change so far is in the state file; OPERATION_FAILED when the last
   * write failed, so a client is never told of a change a successor would not find. Durable means
   * in the state file and, normally, known to virtqemud, which answers getState from its registry
   * without asking the shim; a virtqemud that is slow or frozen delays a reply by a second at most.
   */
  private async durable(): Promise<void> {
    await durableWaits(this.persisting, this.events, this.registrar, this.cfg.clock);
    const err = this.persistError;
    if (err === undefined) return;
    throw new VirtqError('OPERATION_FAILED', `VM "${this.vm.def.name}" is ${this.vm.state}, but its state could not be saved: ${err.message}`, { cause: err });
  }

  // A tool on the shared QMP socket changed the VM: tainted, saved and reported like any change.
  private taint(): void {
    if (this.vm.tainted) return;
    this.vm.tainted = true;
    this.log.warn({ msgId: 'VM_TAINTED', via: 'qmp-proxy' }, 'a state-changing command ran on the shared QMP socket; VM tainted');
    this.onLifecycle(undefined);
  }

  // Each event is journaled (one write) before virtqemud or any subscriber hears of it.
  private onLifecycle(kind: LifecycleEventKind | undefined, details?: Record<string, unknown>): void {
    const state = this.runtimeState();
    this.persist();
    const report = { state: state.state, reason: state.reason, ...(state.qemuPid === undefined ? {} : { qemuPid: state.qemuPid }), info: registrationInfo(this.vm, this.accel) };
    const all = [...(kind === undefined ? [] : [{ kind, details }]), ...this.events.changes(this.vm)];
    if (all.length === 0) this.registrar?.update(report);
    for (const e of all) {
      const event = this.events.record({
        name: state.name, uuid: state.uuid, event: e.kind, state: state.state, reason: state.reason, timestamp: state.updatedAt,
        ...(e.details === undefined ? {} : { details: e.details }),
      });
      this.registrar?.update({ ...report, event: e.kind, ...(e.details === undefined ? {} : { details: e.details }), ...(event.seq === undefined ? {} : { seq: event.seq, timestamp: event.timestamp }) });
      this.events.feed.publish(event);
    }
  }

  // Writes the current state; after a failure (a full disk) it tries again every second until a
  // write succeeds, so the state file catches up with the VM once space is back.
  private persist(): void {
    this.persisting = this.persisting.then(() => writeRuntimeStateSync(this.stateFile, this.runtimeState())).then((usedReserve) => {
      if (usedReserve) this.log.error({ msgId: 'SPACE_RESERVE_USED' }, 'no space left for the runtime state: wrote it in the space reserve; free space on its filesystem');
      this.persistError = undefined;
    }, (err: unknown) => {
      if (this.persistError === undefined) this.log.error({ err, msgId: 'STATE_WRITE_FAILED' }, 'cannot write runtime state; retrying');
      this.persistError = VirtqError.from(err);
      if (this.retrying) return;
      this.retrying = true;
      this.cfg.clock.setTimeout(() => {
        this.retrying = false;
        if (this.persistError !== undefined && !this.stopping) this.persist();
      }, PERSIST_RETRY_MS);
    });
  }

  private async finish(): Promise<void> {
    await this.persisting;
    // The VM's last state is its only record once the shim is gone: wait a while for space.
    for (let waited = 0; this.persistError !== undefined && waited < FINAL_STATE_WAIT_MS; waited += PERSIST_RETRY_MS) {
      await new Promise<void>((resolve) => this.cfg.clock.setTimeout(resolve, PERSIST_RETRY_MS));
      await this.persisting;
    }
    // A port lives as long as its VM: given back now (virtnetworkd, if down, releases it later).
    await this.ports.release(this.vm.def.interfaces, PORT_RELEASE_WAIT_MS);
    // A VM that migrated away: its definition here is removed (--undefine-source) before the shim
    // goes, even when that waits for a restarting virtqemud (bounded: undefineHere).
    await this.migration?.tidied();
    // Calls waiting on the VM's end (shutdown, destroy) get their replies before anything closes.
    await Promise.race([this.service.server.drained(), new Promise<void>((resolve) => this.cfg.clock.setTimeout(resolve, 5000))]);
    await this.registrar?.unregister().catch(() => undefined);
    await this.migration?.forgetIfGone(this.stateFile);
    // Let the final replies and events reach clients before the sockets go.
    await new Promise<void>((resolve) => this.cfg.clock.setTimeout(resolve, 50));
    await this.shutdownServices();
    this.markDone();
  }

  private async shutdownServices(): Promise<void> {
    this.metrics.stop();
    this.metricsHttp?.close();
    this.registrar?.close();
    await this.qmpProxy?.close();
    await this.monitors.close();
    await this.consoleHub.close();
    this.journal?.close();
    // The read-write socket is the VM's name (listenOwnSocket): released last, so the next shim of
    // this name (a restore right after a save, a start right after a destroy) finds the others free.
    await this.service.close();
  }
}
