// One VM: owns its hypervisor process (spawned from the driver's launch plan) and monitor, runs the
// lifecycle state machine, turns monitor events and process exit into states with reasons, and
// applies onPoweroff / onReboot / onCrash. It never sees RPC: handlers call it with plain arguments.
import { VirtqError, type Clock, type DomainState, type LifecycleEventKind, type Logger, type ResolvedDefinition } from '../../protocol/index.js';
import type { HypervisorDriver, HypervisorEvents, HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { checkOperation, type Operation } from './states.js';
import { canTransition, checkTransition } from './lifecycle.js';
import { JobLock } from './jobs.js';
import type { MonitorListener } from './monitor-listener.js';
import { attachedProcess, type ExitInfo, type QemuProcess, type Spawner } from './qemu-process.js';
import { ProcessStatsCache } from '../../drivers/host/proc.js';
import { tailFile } from './tail-file.js';
import type { VmLeases } from './leases.js';
import { VmDisks } from './vm-disks.js';
import { VmNics } from './vm-nics.js';
import type { DiskSecrets } from './disk-resolver.js';
import { startFailure } from './start-failure.js';
import { classifyExit, RestartBudget, type StopIntent } from './exit-policy.js';
import { MonitorLink } from './monitor-link.js';
import { processFigures, repeatWhile, settlesWithin } from './timing.js';

export type { SavedVmState, VmDeps } from './vm-deps.js';
import { beginClaim, type Claim, type SavedVmState, type VmDeps } from './vm-deps.js';
import { incomingSpawn, type IncomingStart } from './incoming.js';

const MONITOR_CONNECT_MS = 30_000;
const POWERDOWN_RESEND_MS = 3_000;
const POWERDOWN_RESEND_FOR_MS = 30_000;

/** A VM run by this shim. */
export class Vm {
  state: DomainState = 'shutoff';
  reason = 'not started';
  details: Record<string, unknown> | undefined;
  tainted = false;
  qemuStartedAt: number | undefined;
  readonly jobs = new JobLock();
  /** Hot-plug: disks (with disk counters and this VM's lease hooks) and NICs. */
  readonly disks: VmDisks;
  readonly nics: VmNics;
  private proc: QemuProcess | undefined;
  readonly link: MonitorLink;
  private intent: StopIntent | undefined;
  private guestShutdown = false;
  private rebootPending = false;
  /** The reasons the next STOP / RESUME event of QEMU is reported with (a migration sets them). */
  expectedPause: string | undefined;
  expectedResume: string | undefined;
  private lastReset = 0;
  private readonly restarts: RestartBudget;
  private gone: Promise<void> = Promise.resolve();
  private markGone: () => void = () => undefined;
  private readonly finishedP: Promise<void>;
  private markFinished!: () => void;
  private readonly procStats: ProcessStatsCache;

  constructor(private definition: ResolvedDefinition, private readonly deps: VmDeps) {
    this.disks = new VmDisks(this, deps.leases.diskHooks(this), deps.clock, (disk) => deps.secrets.passphrase(disk));
    this.nics = new VmNics(this, deps.clock);
    this.restarts = new RestartBudget(deps.clock);
    this.link = new MonitorLink({
      clock: deps.clock, log: deps.log, driver: deps.driver, monitors: deps.monitors, events: this.events(), process: () => this.proc,
      ...(deps.onQmpCommand === undefined ? {} : { onCommandDone: deps.onQmpCommand }),
    });
    this.procStats = new ProcessStatsCache(() => deps.clock.monotonic(), 4);
    this.finishedP = new Promise((resolve) => { this.markFinished = resolve; });
  }

  /** The definition as it stands (hot-plug changes its disks). */
  get def(): ResolvedDefinition {
    return this.definition;
  }

  /**
   * The definition's devices changed (hot-plug; ports given before a start): the definition
   * follows, and unless `persist` is false the owner persists it.
   */
  setDevices(change: Partial<Pick<ResolvedDefinition, 'disks' | 'interfaces'>>, persist = true): void {
    this.definition = { ...this.definition, ...change };
    if (persist) this.deps.onLifecycle(undefined);
  }

  /**
   * Adds `note` to the details of the VM's end (its state file's): what whoever reads that end later
   * must still act on (a migration's --undefine-source). The owner persists it.
   */
  noteEnd(note: Record<string, unknown>): void {
    if (this.state !== 'shutoff' && this.state !== 'crashed') return;
    this.details = { ...this.details, ...note };
    this.deps.onLifecycle(undefined);
  }

  /** Settles when the VM has stopped for good (no restart policy left to apply). */
  get finished(): Promise<void> {
    return this.finishedP;
  }

  /** The QEMU pid while a process exists. */
  get qemuPid(): number | undefined {
    return this.proc?.pid;
  }

  /** The monitor; OPERATION_INVALID when QEMU is not connected. */
  monitor(): HypervisorMonitor {
    const mon = this.link.current;
    if (mon === undefined || mon.isClosed) {
      throw new VirtqError('OPERATION_INVALID', `VM "${this.def.name}" has no monitor connection (state ${this.state})`);
    }
    return mon;
  }

  /** Spawns QEMU, takes its monitor, feeds it its state if `incoming` (shim/vm/incoming.ts), then `cont` unless `paused`; neither before `claimed` (vm-deps.ts). */
  async start(paused: boolean, incoming?: IncomingStart, claimed?: Claim): Promise<void> {
    checkTransition(this.def.name, this.state, 'starting'); // before anything is leased or spawned
    await this.deps.secrets.withLaunchSecrets(this.def, (files) => this.launch(paused, files, incoming, claimed)).finally(() => incoming?.release?.());
  }

  private async launch(paused: boolean, secretFiles: ReadonlyMap<string, string>, incoming?: IncomingStart, claim?: Claim): Promise<void> {
    const { binary, argv } = await this.deps.driver.prepareLaunch(this.def, { secretFiles, incoming: incoming !== undefined });
    // Leases first: a refused VM leaves nothing behind, and the error is virtq's LOCK_CONFLICT naming the holder, not QEMU's.
    const leases = incoming?.leasesDisks === false ? await this.deps.leases.acquireForStart({ ...this.def, disks: [] }, { armLater: true }) : await this.deps.leases.acquireForStart(this.def);
    this.request('starting', 'booting');
    this.intent = undefined;
    this.guestShutdown = false;
    const { argv: qemuArgv, fds: qemuFds } = incomingSpawn(argv, incoming, leases.inheritFds.length);
    let proc: QemuProcess;
    try {
      proc = this.deps.spawner.spawn(binary, qemuArgv, { logFile: this.deps.qemuLogFile, inheritFds: [...leases.inheritFds, ...(incoming?.fds ?? [])] });
    } catch (err) {
      this.deps.log.info({ argv: qemuArgv }, 'spawning qemu');
      await leases.abort();
      throw err;
    }
    this.deps.log.info({ argv: qemuArgv, qemuPid: proc.pid }, 'spawning qemu'); // after the spawn: it overlaps QEMU's start (issue 15)
    this.adopt(proc);
    const claimed = beginClaim(claim); // awaited below, before the guest runs
    await leases.spawned(proc.pid);
    this.qemuStartedAt = this.deps.clock.now();
    this.deps.onLifecycle(undefined);
    try {
      const socket = await this.deps.monitors.next(this.deps.clock, MONITOR_CONNECT_MS, proc.exited);
      await this.link.attach(socket).then(() => claimed);
      await incoming?.load(this.monitor(), qemuFds);
      if (!paused) await this.monitor().cont();
    } catch (err) {
      this.intent ??= 'destroyed';
      proc.kill('SIGKILL');
      await this.gone;
      throw startFailure(this.def, err, await tailFile(this.deps.qemuLogFile, 2048));
    }
    this.request(paused ? 'paused' : 'running', incoming?.reason ?? (paused ? 'start-paused' : 'booted'));
    this.deps.onLifecycle('started');
  }

  /** A predecessor's recorded state, reported (to virtqemud, clients) until QEMU's monitor confirms or corrects it. */
  restore(saved: SavedVmState): void {
    this.state = saved.state;
    this.reason = saved.reason;
    this.tainted = saved.tainted;
    this.qemuStartedAt = saved.qemuStartedAt;
  }

  /** Takes over a QEMU started by an earlier shim: waits for its monitor to redial us. */
  async reattach(pid: number, saved: SavedVmState): Promise<void> {
    this.restore(saved);
    const proc = attachedProcess(pid, this.deps.clock);
    this.adopt(proc);
    const socket = await this.deps.monitors.next(this.deps.clock, MONITOR_CONNECT_MS, proc.exited);
    await this.link.attach(socket);
    const status = await this.monitor().queryStatus();
    if (status.running) this.observe('running', this.state === 'running' ? this.reason : 'unpaused');
    else if (status.status === 'shutdown') this.onShutdown({ guest: true, reason: 'guest-shutdown' });
    else if (this.state !== 'paused') this.observe('paused', 'unknown');
    this.deps.onLifecycle('shim-attached');
  }

  /** ACPI power button; with a timeout, waits and destroys when the guest has not stopped. */
  shutdown(timeoutSec: number | undefined): Promise<void> {
    return this.job('shutdown', async () => {
      this.request('shutting-down', 'user');
      this.deps.onLifecycle(undefined);
      await this.monitor().systemPowerdown();
      this.resendPowerdown();
      if (timeoutSec === undefined) return;
      const stopped = await settlesWithin(this.deps.clock, this.gone, timeoutSec * 1000);
      if (!stopped && this.proc !== undefined) {
        this.deps.log.warn({ timeoutSec }, 'guest ignored shutdown; destroying');
        await this.kill('shutdown-timeout', 3000);
      }
    });
  }

  /** Stops QEMU now: SIGTERM, SIGKILL after `graceMs`. Runs outside the job lock. */
  async destroy(graceMs = 5000): Promise<void> {
    checkOperation('destroy', this.def.name, this.state);
    await this.kill('destroyed', graceMs);
  }

  /** Reboots the guest cleanly, as libvirt does: ACPI power-off, then reset and continue. */
  reboot(): Promise<void> {
    return this.job('reboot', async () => {
      this.rebootPending = true;
      await this.monitor().systemPowerdown();
    });
  }

  /** Hardware reset. */
  reset(): Promise<void> {
    return this.job('reset', async () => {
      await this.monitor().systemReset();
      if (this.state === 'shutting-down') this.request('running', 'reset');
    });
  }

  suspend(): Promise<void> {
    return this.job('suspend', async () => {
      this.expectedPause = 'user';
      await this.monitor().stop();
      this.enterPaused('user');
    });
  }

  resume(): Promise<void> {
    return this.job('resume', async () => {
      this.deps.leases.refuseWhileFenced(this.def.name);
      await this.monitor().cont();
      this.enterRunning('unpaused');
    });
  }

  /** Raw QMP passthrough; taints the VM. */
  monitorCommand(command: Record<string, unknown>): Promise<unknown> {
    return this.job('qemuMonitorCommand', async () => {
      if (!this.tainted) {
        this.tainted = true;
        this.deps.log.warn({ msgId: 'VM_TAINTED', command: command['execute'] }, 'raw monitor command used; VM tainted');
        this.deps.onLifecycle(undefined);
      }
      return this.monitor().raw(command);
    });
  }

  /** Job `op`: pauses the vCPUs, runs `save` (save-image.ts), then stops QEMU with reason `saved`; a failed save resumes them. */
  saveAndStop(op: Operation, save: (mon: HypervisorMonitor, wasRunning: boolean) => Promise<void>): Promise<void> {
    return this.job(op, async () => {
      const wasRunning = this.state === 'running';
      if (wasRunning) { this.expectedPause = 'saving'; await this.monitor().stop(); this.enterPaused('saving'); }
      try {
        await save(this.monitor(), wasRunning);
      } catch (err) {
        if (wasRunning) await this.monitor().cont().then(() => this.enterRunning('save-failed'), () => undefined);
        throw err;
      }
      await this.kill('saved', 5000);
    });
  }

  /** Runs `fn` with the monitor as the VM's one job `op` (snapshots: shim/vm/snapshots.ts). */
  withMonitor<T>(op: Operation, fn: (mon: HypervisorMonitor) => Promise<T>): Promise<T> {
    return this.job(op, () => fn(this.monitor()));
  }

  // Runs `fn` as the VM's one job `op`, once the lifecycle allows `op` in the current state.
  private job<T>(op: Operation, fn: () => Promise<T>): Promise<T> {
    return this.jobs.run(op, async () => { checkOperation(op, this.def.name, this.state); return fn(); });
  }

  /** CPU seconds, RSS and uptime of the QEMU process. */
  stats(): { cpuTimeSec: number; rssBytes: number; uptimeSec: number } {
    return processFigures(this.procStats, this.proc?.pid, this.qemuStartedAt, this.deps.clock);
  }

  private adopt(proc: QemuProcess): void {
    this.proc = proc;
    this.gone = new Promise((resolve) => { this.markGone = resolve; });
    proc.exited.then((info) => this.onExit(proc, info), () => undefined);
  }

  async kill(intent: StopIntent, graceMs: number): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return;
    this.intent = intent;
    proc.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const timer = graceMs > 0 ? this.deps.clock.setTimeout(() => proc.kill('SIGKILL'), graceMs) : undefined;
    await this.gone;
    timer?.dispose();
  }

  // Presses the power button again every few seconds while the VM is shutting down.
  private resendPowerdown(): void {
    repeatWhile(this.deps.clock, POWERDOWN_RESEND_MS, POWERDOWN_RESEND_FOR_MS, () => this.state === 'shutting-down',
      () => { this.link.current?.systemPowerdown().catch(() => undefined); });
  }

  // A VM reported stopped never still holds a disk: the leases are given back before anything
  // else sees the exit (a restart re-acquires them).
  private onExit(proc: QemuProcess, info: ExitInfo): void {
    if (this.proc !== proc) return;
    void this.deps.leases.releaseAll(this.def, proc.pid)
      .catch((err: unknown) => this.deps.log.error({ err, msgId: 'LEASE_RELEASE_FAILED' }, 'cannot give back disk leases'))
      .then(() => this.afterExit(proc, info));
  }

  private afterExit(proc: QemuProcess, info: ExitInfo): void {
    if (this.proc !== proc) return;
    this.link.close();
    this.proc = undefined;
    this.qemuStartedAt = undefined;
    const { state, reason, details } = classifyExit({ intent: this.intent, state: this.state, guestShutdown: this.guestShutdown }, info);
    this.deps.log.info({ msgId: 'VM_STOPPED', state, reason, ...details }, 'qemu exited');
    this.details = details;
    this.observe(state, reason);
    this.deps.onLifecycle(state === 'crashed' ? 'crashed' : 'stopped', details);
    this.markGone();
    if (state === 'crashed' && this.def.onCrash === 'restart' && this.restarts.take()) {
      this.deps.log.warn({ msgId: 'VM_RESTART' }, 'restarting crashed VM (onCrash=restart)');
      this.start(false).catch((err: unknown) => {
        this.deps.log.error({ err }, 'restart failed');
        this.markFinished();
      });
      return;
    }
    this.markFinished();
  }

  // --- QMP events ----------------------------------------------------------------------
  private events(): HypervisorEvents {
    return {
      onShutdown: (e) => this.onShutdown(e),
      onStop: () => this.enterPaused(this.expectedPause ?? 'unknown'),
      onResume: () => this.enterRunning(this.expectedResume ?? 'unpaused'),
      onReset: (e) => {
        // One guest reboot can raise several RESET events within milliseconds.
        const now = this.deps.clock.monotonic();
        if (now - this.lastReset > 1000) this.deps.onLifecycle('reset', { guest: e.guest, cause: e.reason });
        this.lastReset = now;
      },
      onDeviceDeleted: (e) => {
        if (e.device === undefined) return;
        this.disks.deviceDeleted(e.device);
        this.nics.deviceDeleted(e.device);
        this.deps.onLifecycle('device-removed', { device: e.device });
      },
      onGuestPanicked: () => this.deps.log.warn({ msgId: 'GUEST_PANICKED' }, 'guest panicked'),
    };
  }

  private onShutdown(e: { guest: boolean; reason: string }): void {
    if (!e.guest && e.reason !== 'guest-reset') return; // host-initiated: the exit follows
    const mon = this.link.current;
    if (this.rebootPending || (e.reason === 'guest-reset' && this.def.onReboot === 'restart')) {
      this.rebootPending = false;
      void this.restartInPlace(mon, 'rebooted');
      return;
    }
    this.guestShutdown = true;
    this.deps.onLifecycle('shutdown', { cause: e.reason });
    const policy = e.reason === 'guest-reset' ? this.def.onReboot : this.def.onPoweroff;
    if (policy === 'restart') {
      void this.restartInPlace(mon, 'restarted');
      return;
    }
    this.intent = 'shutdown';
    mon?.quit().catch(() => this.proc?.kill('SIGTERM'));
  }

  private async restartInPlace(mon: HypervisorMonitor | undefined, reason: string): Promise<void> {
    try {
      await mon?.systemReset();
      await mon?.cont();
      this.observe('running', reason);
      this.deps.onLifecycle('reset', { cause: reason });
    } catch (err) {
      this.deps.log.warn({ err }, 'reset after guest shutdown failed');
    }
  }

  private enterPaused(reason: string): void {
    this.expectedPause = undefined;
    if (this.state === 'paused' || this.state === 'starting' || !canTransition(this.state, 'paused')) return;
    this.observe('paused', reason);
    this.deps.onLifecycle('suspended');
  }

  private enterRunning(reason: string): void {
    if (this.state !== 'paused') return;
    this.observe('running', reason);
    this.deps.onLifecycle('resumed');
  }

  // An operation's own move: refused (OPERATION_INVALID) when the transition table has no entry.
  private request(to: DomainState, reason: string): void {
    checkTransition(this.def.name, this.state, to);
    this.move(to, reason);
  }

  // A move QEMU reported (an event, its exit, query-status) has happened whatever the table says:
  // QEMU is the authority, so the VM takes the reported state and logs the surprise.
  private observe(to: DomainState, reason: string): void {
    if (!canTransition(this.state, to)) {
      this.deps.log.warn({ msgId: 'VM_STATE_RECONCILED', from: this.state, to, reason }, 'QEMU reported a transition the lifecycle table does not allow; taking QEMU\'s state');
    }
    this.move(to, reason);
  }

  private move(to: DomainState, reason: string): void {
    [this.state, this.reason] = [to, reason];
    if (to !== 'shutoff' && to !== 'crashed') this.details = undefined;
  }
}
