// The source side of a live migration, driven by the VM's shim: the destination is prepared
// (name claimed, QEMU listening), QEMU sends memory until it pauses before switchover, the disk
// leases are handed over (released here, taken there), QEMU finishes, the destination runs the
// guest and this QEMU is stopped (stopped: migrated). Any failure before the guest runs there
// rolls back so it runs here: the destination is stopped first (its leases then free), the leases
// are taken back, the guest resumed. See docs/decisions/0018-live-migration.md.
import { UNDEFINE_SOURCE_NOTE, VirtqError, asDefined, delay, type Clock, type Disposable, type JobInfo, type Logger, type MigrateArgs, type MigrateResult } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import type { Vm } from './vm.js';
import { checkOperation } from './states.js';
import { INCOMING_REASON } from './migration-incoming.js';
import type { VmLeases } from './leases.js';
import type { DestinationLink } from '../migration-link.js';
import type { MigrationWakeups } from './migration-wakeups.js';
import { FINISHED, finalStatus, jobInfoOf, migrationFailed, migrationSettings, parseMigrationStatus, queryMigrate, setUpSource, type MigrationStatus } from './migration-qmp.js';

/** How often query-migrate is read while memory is sent, and while the guest is paused at switchover. */
const BULK_POLL_MS = 20;
const SWITCHOVER_POLL_MS = 2;
/**
 * The same once QEMU's MIGRATION events are seen to arrive: each status change then wakes the poll
 * at once (migration-wakeups.ts), and fewer polls leave the cores to the two QEMUs.
 */
const BULK_FALLBACK_MS = 100;
const SWITCHOVER_FALLBACK_MS = 10;
const CANCEL_WAIT_MS = 30_000;
/** QEMU statuses of a migration still under way on the source (before it completed). */
const UNFINISHED = new Set(['setup', 'active', 'pre-switchover', 'cancelling']);
/** Statuses a migration passes through on its way to `completed`: their events wake no query. */
const ON_THE_WAY = new Set(['setup', 'active', 'pre-switchover', 'device']);
/** How long the rollback waits for a destination without a shim to see its QEMU gone (its reconcile pass). */
const FORGET_WAIT_MS = 15_000;
/** How often, while memory moves, the destination is asked whether it can still take the guest. */
const DEST_CHECK_MS = 1000;

/** What the source side works with. */
export interface MigrationSourceDeps {
  vm: Vm;
  leases: Pick<VmLeases, 'handOver' | 'acquireAllForRunning'>;
  clock: Clock;
  log: Logger;
  connect(destUri: string): Promise<DestinationLink>;
  /** Removes this VM's stored definition from the source virtqemud (--undefine-source). */
  undefineSource(name: string): Promise<void>;
  /** QEMU's MIGRATION events, when the shim taps them: the polls then wake on each status change. */
  wakeups?: MigrationWakeups;
  /** The destination check's interval (DEST_CHECK_MS); tests shorten it. */
  destCheckMs?: number;
}

/** The migration in progress, as domjobinfo and domjobabort see it. */
interface Job {
  startedAt: number;
  /** The wake-ups' mark when the job began: events seen since mean they flow. */
  eventsFrom: number;
  last: MigrationStatus | undefined;
  aborted: boolean;
  /** Why it was cancelled when not by domjobabort (the destination lost): the migration's error. */
  failure?: VirtqError;
  /** Set once QEMU's migration has begun: cancelling then means migrate_cancel. */
  qemuStarted: boolean;
  /** When waitFor's last wait between two polls ended (an event or the fallback), else when it began: preSwitchoverWoke. */
  wokeAt: number;
}

/** One VM's outgoing migrations. */
export class MigrationSource {
  private job: Job | undefined;
  /** --persistent and --undefine-source of a migration that has happened, while they run. */
  private movingDefinition: Promise<void> = Promise.resolve();
  private definitionOwed = false;

  constructor(private readonly d: MigrationSourceDeps) {}

  /**
   * Runs the migration as the VM's job; resolves once the guest runs on the destination.
   * `persisted` waits for the shim's state file to hold the VM's state as it is.
   */
  migrate(a: MigrateArgs, persisted: () => Promise<void>): Promise<MigrateResult> {
    return this.d.vm.jobs.run('migrate', () => this.run(a, persisted));
  }

  /**
   * Settles once a migration that has happened has also moved the definition (--persistent,
   * --undefine-source): the shim of a VM that migrated away waits for it before it goes, since
   * the source's definition may have to wait for a virtqemud that restarts meanwhile.
   */
  tidied(): Promise<void> {
    return this.movingDefinition;
  }

  /** True while a migration's --undefine-source has not removed the definition here (its state file must stay: it says so). */
  owesUndefine(): boolean {
    return this.definitionOwed;
  }

  /** Progress of the running migration (type `none` when there is none). */
  async jobInfo(): Promise<JobInfo> {
    const job = this.job;
    if (job === undefined) return jobInfoOf(undefined, 0);
    const elapsed = this.d.clock.monotonic() - job.startedAt;
    if (!job.qemuStarted) return { ...jobInfoOf(job.last, elapsed), status: job.last?.status ?? 'setup' };
    try {
      job.last = await queryMigrate(this.d.vm.monitor());
    } catch {
      // the last figures read stay good enough for a progress report
    }
    return jobInfoOf(job.last, elapsed);
  }

  /** Cancels the running migration; the migration's own call then rolls back and fails. */
  async abort(): Promise<void> {
    const job = this.job;
    if (job === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${this.d.vm.def.name}" has no job running`);
    job.aborted = true;
    if (job.qemuStarted) await this.d.vm.monitor().raw({ execute: 'migrate_cancel' }).catch(() => undefined);
  }

  /**
   * A successor shim found QEMU still migrating (its predecessor died mid-transfer, before the
   * switchover it alone could drive): the migration is cancelled so the guest runs on here. The
   * leases are made sure of first; if another QEMU holds them, nothing is cancelled.
   */
  async recover(): Promise<void> {
    const { vm, log, clock } = this.d;
    const pid = vm.qemuPid;
    // A destination's successor: its QEMU's incoming migration is the source's to drive or cancel.
    if (pid === undefined || vm.reason === INCOMING_REASON || vm.state === 'shutoff' || vm.state === 'crashed') return;
    const mon = vm.monitor();
    // A QEMU the re-attach found shut down is being let go: its monitor closing means no migration.
    const s = await queryMigrate(mon).catch((err: unknown) => {
      if (VirtqError.from(err).code === 'CONNECTION_CLOSED' || vm.qemuPid === undefined) return undefined;
      throw err;
    });
    if (s === undefined) return;
    if (!UNFINISHED.has(s.status)) return;
    log.warn({ msgId: 'MIGRATION_ORPHANED', status: s.status }, 'QEMU is still migrating for a shim that is gone: cancelling');
    try {
      await this.d.leases.acquireAllForRunning(vm.def, pid);
    } catch (err) {
      const holders = VirtqError.from(err).details?.['holders'];
      const ours = Array.isArray(holders) && holders.every((h: { qemuPid?: number }) => h.qemuPid === pid);
      if (!ours) {
        log.error({ err, msgId: 'MIGRATION_LEASES_LOST' }, 'the disk leases are held elsewhere: the migration is left as it is');
        return;
      }
    }
    vm.expectedResume = 'migration-cancelled';
    try {
      await mon.raw({ execute: 'migrate_cancel' });
      const end = clock.monotonic() + CANCEL_WAIT_MS;
      while (clock.monotonic() < end && UNFINISHED.has((await queryMigrate(mon)).status)) await delay(clock, SWITCHOVER_POLL_MS);
    } finally {
      vm.expectedResume = undefined;
    }
  }

  private async run(a: MigrateArgs, persisted: () => Promise<void>): Promise<MigrateResult> {
    const { vm, clock, log } = this.d;
    const name = vm.def.name;
    const pid = vm.qemuPid;
    checkOperation('migrate', name, vm.state);
    if (pid === undefined) throw new VirtqError('OPERATION_INVALID', `cannot migrate VM "${name}": it has no QEMU process`);
    const mon = vm.monitor();
    const wasRunning = vm.state === 'running';
    const job: Job = { startedAt: clock.monotonic(), eventsFrom: this.d.wakeups?.mark() ?? 0, last: undefined, aborted: false, qemuStarted: false, wokeAt: 0 };
    this.job = job;
    // Milliseconds since the job began at each step, logged with the result: where a migration's time goes.
    const phases: Record<string, number> = {};
    const mark = (step: string): void => { phases[step] = Math.round(clock.monotonic() - job.startedAt); };
    const dest = await this.d.connect(a.destUri);
    mark('connected');
    const steps = { prepared: false, released: false, claimed: false };
    try {
      // The source's capabilities and limits are set while the destination starts its QEMU (they
      // act only once `migrate` runs); both are settled before any failure is handled.
      const [prep, setup] = await Promise.allSettled([dest.prepare(asDefined(vm.def), a.transport ?? 'unix'), setUpSource(mon, a)]);
      if (prep.status === 'fulfilled') steps.prepared = true;
      if (prep.status === 'rejected') throw prep.reason;
      if (setup.status === 'rejected') throw setup.reason;
      const { uri, early, claimsInFinish } = prep.value;
      mark('prepared');
      this.checkAborted(job);
      vm.expectedPause = 'migration';
      if (a.live !== true && wasRunning) await mon.stop();
      await mon.raw({ execute: 'migrate', arguments: { uri } });
      job.qemuStarted = true;
      mark('started');
      log.info({ msgId: 'MIGRATION_STARTED', uri, dest: a.destUri }, 'migration started');
      const watch = this.watchDestination(dest, job);
      try {
        await this.waitFor(mon, job, 'pre-switchover', a.timeoutSec);
      } finally {
        watch.dispose();
      }
      mark('preSwitchover');
      // A check that found the destination lost (or a domjobabort) just as QEMU paused: nothing is handed over.
      this.checkAborted(job);
      // The wake-up before the query that saw it (QEMU's event, or the fallback's timer): the query's
      // round trip inside the pause is preSwitchover − preSwitchoverWoke (bench/RESULTS.md, f-mig13).
      phases['preSwitchoverWoke'] = Math.round(job.wokeAt - job.startedAt);
      // The guest is paused here: the leases move while no QEMU runs it (fleet-wide ones handed
      // over, never given up, so no other VM can take a disk in between).
      await this.d.leases.handOver(vm.def);
      steps.released = true;
      mark('released');
      // A destination asked early that leases the disks in its switchover call: this QEMU goes on
      // at once and the claim overlaps the last state's transfer, not the guest's pause. The guest
      // runs there only once the leases are that QEMU's; when they cannot be taken the rollback
      // brings it back here, this QEMU continued (completed or not) only once the leases are back
      // (decision 0018, session 22). Otherwise the claim comes first, inside the pause.
      const claimInFinish = early && claimsInFinish;
      if (!claimInFinish) {
        await dest.claim(name);
        steps.claimed = true;
        mark('claimed');
      }
      await mon.raw({ execute: 'migrate-continue', arguments: { state: 'pre-switchover' } });
      mark('continued');
      // Asked at once when the destination allows it (no fleet claim to move there): the call's
      // hops (this shim → that virtqemud → its shim) then overlap the device state's transfer, and
      // that shim runs the guest as soon as its QEMU has loaded the last state, not one round trip
      // after this QEMU said `completed` (decision 0018, session 15).
      const finishing = early ? settled(dest.finish(name, claimInFinish)) : undefined;
      const completed = await this.waitFor(mon, job, 'completed', undefined).catch(async (err: unknown) => {
        // The destination loads the whole state only once this QEMU has sent all of it (its EOF
        // comes after the images here are inactivated): a guest that runs there has migrated,
        // whatever this side saw (its monitor gone, an abort too late), and must not come back here.
        if (finishing === undefined || (await finishing) !== undefined) throw err;
        log.warn({ err, msgId: 'MIGRATION_RAN_THERE' }, 'the source\'s QEMU did not report the migration completed, but the guest runs on the destination');
        return { ...(job.last ?? parseMigrationStatus({})), status: 'completed' };
      });
      mark('completed');
      // QEMU's figures are read from this QEMU (which no longer runs the guest) while the
      // destination runs it: read-only queries, off the path the caller waits on. figures() never
      // fails, and is settled before a failed finish rolls back on this monitor.
      const figures = this.figures(mon, completed);
      const failed = await (finishing ?? settled(dest.finish(name)));
      if (failed !== undefined) {
        await figures;
        throw failed.err;
      }
      mark('running');
      // It runs there now: nothing below may bring it back here.
      this.job = undefined;
      const done = await figures;
      // SIGKILL at once (grace 0), not SIGTERM: this QEMU sent its whole state and inactivated its
      // images before `completed`, and holds no lease, so its orderly exit (closing the block layer,
      // ~25 ms more at load, session 16) had nothing left to flush. The reply still waits for its exit.
      const stopped = vm.kill('migrated', 0);
      // Known before the kill settles: the VM's end starts the shim's finish, which waits for it.
      this.movingDefinition = stopped.then(() => this.afterwards(dest, a, name, persisted), () => undefined);
      await stopped;
      mark('sourceStopped');
      log.info({ msgId: 'MIGRATION_DONE', downtimeMs: done.downtimeMs, totalMs: done.totalTimeMs, phases, qemu: done.qemu }, 'migration completed; the guest runs on the destination');
      await this.movingDefinition;
      return {
        state: vm.state, reason: vm.reason, totalMs: clock.monotonic() - job.startedAt, transferredBytes: done.transferredBytes,
        ...(done.downtimeMs === undefined ? {} : { downtimeMs: done.downtimeMs }),
      };
    } catch (err) {
      if (this.job === job) await this.rollBack(mon, dest, job, steps, wasRunning, pid, err);
      throw err;
    } finally {
      if (this.job === job) this.job = undefined;
      dest.close();
    }
  }

  // QEMU's own figures of the finished migration (read once it has stored them) and the settings
  // it ran with, for the log; reading them must not fail a migration that has happened.
  private async figures(mon: HypervisorMonitor, completed: MigrationStatus): Promise<MigrationStatus & { qemu: Record<string, unknown> }> {
    try {
      const [s, settings] = await Promise.all([finalStatus(mon, completed, () => delay(this.d.clock, SWITCHOVER_POLL_MS)), migrationSettings(mon)]);
      const { status: _status, error: _error, ...numbers } = s;
      return { ...s, qemu: { ...numbers, ...settings } };
    } catch (err) {
      this.d.log.warn({ err }, 'cannot read the finished migration\'s figures');
      return { ...completed, qemu: {} };
    }
  }

  // --persistent and --undefine-source, once the guest runs on the destination: a failure here
  // leaves the VM running there and is logged, since the migration itself has happened. The
  // definition here goes only once the destination has stored it: listed on two hosts is a
  // conflict an operator settles, a definition on none is lost.
  private async afterwards(dest: DestinationLink, a: MigrateArgs, name: string, persisted: () => Promise<void>): Promise<void> {
    const { log, vm } = this.d;
    const stored = a.persistent !== true || await dest.define(asDefined(vm.def)).then(() => true, (err: unknown) => {
      log.error({ err, msgId: 'MIGRATION_DEFINE_FAILED' }, 'the VM runs on the destination, but its definition could not be stored there');
      return false;
    });
    if (a.undefineSource !== true) return;
    if (!stored) {
      log.error({ msgId: 'MIGRATION_UNDEFINE_SKIPPED' }, 'the definition here is kept: the destination could not store it (--undefine-source not done)');
      return;
    }
    // Written down before it is asked: a shim that dies from here on leaves it to virtqemud, which
    // finds it in this VM's state file when it sees the shim go (daemon.ts) or as it starts (discovery.ts).
    this.definitionOwed = true;
    vm.noteEnd({ [UNDEFINE_SOURCE_NOTE]: true });
    await persisted().catch(() => undefined); // a failed write is retried by the shim; the call below goes on
    await this.d.undefineSource(name).then(
      () => { this.definitionOwed = false; },
      (err: unknown) => log.error({ err, msgId: 'MIGRATION_UNDEFINE_FAILED' }, 'the VM runs on the destination, but its definition here could not be removed: the next virtqemud to start removes it'));
  }

  // Waits until QEMU reports `target`; pauses the guest after `timeoutSec` so memory converges.
  private async waitFor(mon: HypervisorMonitor, job: Job, target: string, timeoutSec: number | undefined): Promise<MigrationStatus> {
    const { vm, clock } = this.d;
    let forced = false;
    job.wokeAt = clock.monotonic();
    // An event naming the target ends the wait unqueried (QEMU leaves that state only by a continue, a
    // cancel or a failure, handled after the wait as after a query); one of a state on the way is only looked at; the timer still queries.
    let ask = false; // a first look without an event queries anyway (`told` undefined)
    for (;;) {
      const since = this.d.wakeups?.mark() ?? 0;
      const told = this.told(job);
      if (told === target) return (job.last = parseMigrationStatus({ status: target })); // no figures: figures() asks QEMU
      const s = ask || told === undefined || !ON_THE_WAY.has(told) ? await queryMigrate(mon) : parseMigrationStatus({ status: told });
      job.last = s;
      if (s.status === target) return s;
      if (s.status === 'cancelled' || job.aborted) throw job.failure ?? new VirtqError('OPERATION_ABORTED', `migration of VM "${vm.def.name}" was cancelled`);
      if (FINISHED.has(s.status)) throw migrationFailed(s);
      if (!forced && timeoutSec !== undefined && clock.monotonic() - job.startedAt > timeoutSec * 1000 && vm.state === 'running') {
        forced = true;
        this.d.log.warn({ msgId: 'MIGRATION_TIMEOUT', timeoutSec }, 'migration did not converge in time: pausing the guest');
        await mon.stop();
      }
      await this.nap(job, s.status === 'pre-switchover' || s.status === 'device', since);
      job.wokeAt = clock.monotonic();
      ask = !(this.d.wakeups?.seenSince(since) ?? false); // the timer, not an event, ended the nap
    }
  }

  /** The status QEMU's last MIGRATION event named, once events are seen to flow in this job. */
  private told(job: Job): string | undefined {
    const w = this.d.wakeups;
    return w !== undefined && w.seenSince(job.eventsFrom) ? w.lastStatus() : undefined;
  }

  // The wait between two polls: QEMU's next MIGRATION event ends it early; without events (none
  // seen in this job yet) the short intervals stay as they were.
  private nap(job: Job, switchover: boolean, since: number): Promise<void> {
    const { wakeups, clock } = this.d;
    if (wakeups === undefined || !wakeups.seenSince(job.eventsFrom)) return delay(clock, switchover ? SWITCHOVER_POLL_MS : BULK_POLL_MS);
    return wakeups.nap(clock, switchover ? SWITCHOVER_FALLBACK_MS : BULK_FALLBACK_MS, since);
  }

  private checkAborted(job: Job): void {
    if (job.aborted) throw job.failure ?? new VirtqError('OPERATION_ABORTED', `migration of VM "${this.d.vm.def.name}" was cancelled`);
  }

  /**
   * While memory moves, asks the destination every DEST_CHECK_MS whether it can still take the
   * guest. Its shim or its virtqemud gone, nothing there could claim the leases or run the guest,
   * and the migration would fail only at the switchover — minutes later for a large guest on a
   * capped link: it is cancelled at once instead (the rollback then runs as for any failure).
   */
  private watchDestination(dest: DestinationLink, job: Job): Disposable {
    const { vm, clock, log } = this.d;
    const every = this.d.destCheckMs ?? DEST_CHECK_MS;
    let watching = true;
    let timer: Disposable | undefined;
    const check = async (): Promise<void> => {
      const lost = await dest.lost(vm.def.name, vm.def.uuid);
      if (!watching) return;
      if (lost === undefined) {
        timer = clock.setTimeout(later, every);
        return;
      }
      log.warn({ err: lost, msgId: 'MIGRATION_DEST_LOST' }, 'the destination cannot take the guest any more: cancelling the migration');
      job.failure = lost;
      job.aborted = true;
      await vm.monitor().raw({ execute: 'migrate_cancel' });
    };
    // A check that cannot run (QEMU's monitor gone: the migration fails by itself) only ends the watch.
    const later = (): void => { check().catch(() => undefined); };
    timer = clock.setTimeout(later, every);
    return { dispose: () => { watching = false; timer?.dispose(); } };
  }

  // The guest must run here again, and never without its leases. QEMU resumes a source that was
  // running by itself once its migration is cancelled, so the order is: the destination's QEMU
  // stopped (any lease it took is then free), the leases taken back, only then migrate_cancel.
  // A QEMU that completed (the destination then failed to lease or to run the guest) waits paused
  // with its images inactive; `cont` takes them back, as after a cancel. A guest whose leases
  // cannot be taken back stays paused (before switchover, or completed) and is reported.
  private async rollBack(mon: HypervisorMonitor, dest: DestinationLink, job: Job, steps: { prepared: boolean; released: boolean; claimed: boolean }, wasRunning: boolean, pid: number, cause: unknown): Promise<void> {
    const { vm, log, clock } = this.d;
    log.warn({ msgId: 'MIGRATION_ROLLBACK', err: cause, ...steps, qemuStatus: job.last?.status }, 'migration failed; rolling back to the source');
    let destLeft = false;
    if (steps.prepared) {
      await dest.abort(vm.def.name).catch((err: unknown) => {
        destLeft = true;
        log.error({ err, msgId: 'MIGRATION_DEST_ABORT_FAILED' }, 'cannot stop the destination\'s incoming QEMU; it ends when the stream is cancelled');
      });
    }
    if (steps.released) {
      try {
        await this.d.leases.acquireAllForRunning(vm.def, pid);
      } catch (err) {
        log.error({ err, msgId: 'MIGRATION_LEASES_LOST' }, 'cannot take the disk leases back: the guest stays paused');
        return;
      }
    }
    vm.expectedResume = 'migration-cancelled';
    try {
      if (job.qemuStarted) {
        await mon.raw({ execute: 'migrate_cancel' }).catch(() => undefined);
        const end = clock.monotonic() + CANCEL_WAIT_MS;
        while (clock.monotonic() < end) {
          const s = await queryMigrate(mon).catch(() => undefined);
          if (s === undefined || FINISHED.has(s.status)) break;
          await delay(clock, SWITCHOVER_POLL_MS);
        }
      }
      // A guest paused for the migration (not live, or forced by --timeout) is continued here.
      const status = await mon.queryStatus().catch(() => undefined);
      if (wasRunning && status !== undefined && !status.running) await mon.cont();
    } catch (err) {
      log.error({ err }, 'cannot resume the guest after a failed migration');
    } finally {
      vm.expectedResume = undefined;
      vm.expectedPause = undefined;
    }
    // Its QEMU exits once the stream is gone; its virtqemud then lets the name go when told.
    if (destLeft) {
      await dest.forget(vm.def.name, vm.def.uuid, FORGET_WAIT_MS).catch((err: unknown) => log.error({ err, msgId: 'MIGRATION_DEST_LEFT' }, 'the destination still lists the VM'));
    }
  }
}

/** A call's failure as a value (undefined when it succeeded): awaited later without an unhandled rejection meanwhile. */
function settled(p: Promise<unknown>): Promise<{ err: unknown } | undefined> {
  return p.then(() => undefined, (err: unknown) => ({ err }));
}
