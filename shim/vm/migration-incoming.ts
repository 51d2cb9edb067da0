// The destination side of a live migration, in the shim started for it (`virtq-shim --incoming`):
// its QEMU was spawned with only a lease lifeline, no lease, listening from its start on a unix
// socket beside the shim's (`-incoming unix:PATH`), or over TCP with `-incoming defer`. At
// switchover the source has released the disk leases and asks this side to take them (claim; since
// session 22 outside a fleet as the first act of finish, while the last state arrives); once QEMU
// has the last state and the leases are its own, the guest is run here (finish).
// abort stops this QEMU: the shim then ends and the name is free again on this host.
import { unlinkSync } from 'node:fs';
import { VirtqError, delay, type Clock, type Logger } from '../../protocol/index.js';
import type { Vm } from './vm.js';
import type { VmLeases } from './leases.js';
import type { ArmedLeases } from '../../drivers/lock/types.js';
import type { MigrationWakeups } from './migration-wakeups.js';

/** How long finish waits for QEMU to have loaded the last state after the source completed. */
const LOAD_WAIT_MS = 30_000;
const POLL_MS = 2;
/** The same once QEMU's MIGRATION events are seen to arrive (its `completed` wakes the poll at once). */
const FALLBACK_POLL_MS = 10;
/** The same while the last event says QEMU still loads: nothing is asked of it until `completed` or this long. */
const LOADING_FALLBACK_MS = 250;
/** MIGRATION statuses after which the incoming QEMU loads nothing more (it exits on a failed load). */
const LOAD_ENDED = new Set(['completed', 'failed', 'cancelled']);
/**
 * How long a listening QEMU waits for its source to connect before this side gives up. The source
 * sends `migrate` as soon as prepare answers (milliseconds); no connection by then means no source
 * will come (the destination virtqemud died during prepare, so its answer never reached the
 * source), and nothing else would ever stop this QEMU. Once the stream has begun, QEMU exits by
 * itself if the source goes away mid-stream.
 */
const CONNECT_WAIT_MS = 10_000;
const CONNECT_POLL_MS = 500;
/**
 * How long after QEMU listens the leases are armed (their holders spawned): after the prepare's
 * answer has left, so the spawn does not hold up the source's `migrate`; long before any 128 MiB
 * transfer reaches its switchover. A claim that comes sooner waits for the arming.
 */
const ARM_AFTER_MS = 50;

/** What the destination side works with. */
export interface MigrationIncomingDeps {
  vm: Vm;
  leases: Pick<VmLeases, 'acquireAllForRunning'> & Partial<Pick<VmLeases, 'armForRunning'>>;
  clock: Clock;
  log: Logger;
  /** Where QEMU listens for the stream: this unix socket, or a loopback TCP port it chooses. */
  socketPath: string;
  transport: 'unix' | 'tcp';
  /** QEMU's MIGRATION events, when the shim taps them. */
  wakeups?: MigrationWakeups;
}

/** QEMU's answer to query-migrate on an incoming side listening on TCP. */
interface IncomingAddress { 'socket-address'?: Array<{ type?: string; host?: string; port?: string }> }

/** The pause reason of a VM waiting for its incoming migration. */
export const INCOMING_REASON = 'incoming-migration';

/** One incoming migration. */
export class MigrationIncoming {
  private claimed = false;
  /** The leases readied for the switchover (armForRunning), for the QEMU `armedPid`, once ready. */
  private armed: ArmedLeases | undefined;
  private armedPid: number | undefined;
  /** Set by the claim or an abort: leases armed from then on are let go at once. */
  private armStopped = false;
  /** The wake-ups' mark when QEMU began to listen: events seen since mean they flow. */
  private eventsFrom = 0;
  /** Set when QEMU was spawned listening with its events on (spawnListening): listen asks it nothing. */
  private listensFromStart = false;
  /** Where QEMU listens, once it does (`unix:PATH` or `tcp:127.0.0.1:PORT`): the source's `migrate` URI. */
  uri: string | undefined;
  /** Set once the guest has run here: from then on this is the VM's home like any other. */
  ran = false;

  constructor(private readonly d: MigrationIncomingDeps) {}

  /** Whether this VM still waits for its migration (before finish ran the guest). */
  get waiting(): boolean {
    return this.d.vm.state === 'paused' && this.d.vm.reason === INCOMING_REASON;
  }

  /**
   * Over unix, where QEMU will listen is known before it spawns: the argv then names it
   * (`-incoming unix:PATH`, as raw QEMU's destination is started) and turns QEMU's MIGRATION events
   * on (`-global migration.x-events=on`, the `events` capability's property). QEMU listens from its
   * initialisation, before its main loop answers the monitor's `qmp_capabilities` (the attach), so
   * `listen` sends nothing: the prepare's answer waits for no round trip to
   * a QEMU that has just started (bench/RESULTS.md, session 19). The stale socket is removed first
   * (QEMU's bind would fail on it). A QEMU without that property refuses to start, loudly: the
   * prepare fails, no guest is touched. Over TCP: undefined (QEMU picks the port; `-incoming defer`).
   */
  spawnListening(): { uri: string; qemuArgs: string[] } | undefined {
    if (this.d.transport !== 'unix') return undefined;
    try {
      unlinkSync(this.d.socketPath); // not rmSync: its first call loads Node's rimraf, on the prepare's path
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.listensFromStart = true;
    return { uri: `unix:${this.d.socketPath}`, qemuArgs: ['-global', 'migration.x-events=on'] };
  }

  /** Whether QEMU's MIGRATION events are known to flow: seen since listen, or on from QEMU's start (whose `setup` came before the monitor). */
  private eventsOn(): boolean {
    return this.d.wakeups !== undefined && (this.listensFromStart || this.d.wakeups.seenSince(this.eventsFrom));
  }

  /** QEMU starts listening; the source's `migrate` may connect once this resolves. */
  async listen(): Promise<void> {
    this.eventsFrom = this.d.wakeups?.mark() ?? 0;
    if (this.listensFromStart) {
      this.uri = `unix:${this.d.socketPath}`;
      this.listening();
      return;
    }
    if (this.d.transport !== 'tcp') throw new VirtqError('INTERNAL', `VM "${this.d.vm.def.name}": a unix incoming migration's QEMU must be spawned listening (spawnListening)`);
    const mon = this.d.vm.monitor();
    const events = { execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'events', state: true }] } };
    // Port 0: QEMU binds a free port itself, so no other process can take it in between. The
    // three commands are sent at once: QEMU runs a monitor's commands one by one in order, so
    // query-migrate sees the listener, and each round trip saved is a wake-up of this shim and
    // of QEMU while the prepare holds up the migration (bench/RESULTS.md, session 9).
    const [caps, incoming, query] = await Promise.allSettled([
      mon.raw(events),
      mon.raw({ execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:0' } }),
      mon.raw({ execute: 'query-migrate' }),
    ]);
    for (const r of [caps, incoming, query]) if (r.status === 'rejected') throw r.reason;
    const bound = query.status === 'fulfilled' ? (query.value as IncomingAddress)['socket-address']?.find((a) => a.type === 'inet' && a.port !== undefined) : undefined;
    if (bound?.port === undefined) throw new VirtqError('OPERATION_FAILED', `QEMU of VM "${this.d.vm.def.name}" did not say which TCP port it listens on for the migration`);
    this.uri = `tcp:127.0.0.1:${bound.port}`;
    this.listening();
  }

  private listening(): void {
    this.d.log.info({ msgId: 'MIGRATION_INCOMING', uri: this.uri }, 'waiting for the incoming migration');
    this.watchConnect(this.d.clock.monotonic() + CONNECT_WAIT_MS);
    this.arm();
  }

  // The lease work of the claim, readied while memory moves: the claim runs in the source's
  // pause (bench/RESULTS.md, session 12: two process spawns were most of it). A failure here
  // only means the claim does it all, as before.
  private arm(): void {
    const { vm, leases, log, clock } = this.d;
    const pid = vm.qemuPid;
    const armFor = leases.armForRunning?.bind(leases);
    if (pid === undefined || armFor === undefined) return;
    this.armedPid = pid;
    void delay(clock, ARM_AFTER_MS).then(async () => {
      if (this.armStopped) return;
      const armed = await armFor(vm.def, pid);
      if (this.armStopped) armed?.disarm();
      else this.armed = armed;
    }).catch((err: unknown) => {
      log.warn({ err, msgId: 'MIGRATION_LEASES_NOT_ARMED' }, 'cannot ready the disk leases ahead; the switchover takes them the usual way');
    });
  }

  // Armed leases not taken are let go (a rollback, an abandoned or failed incoming migration);
  // an arming still under way lets go of its own when it ends.
  private disarm(): void {
    this.armStopped = true;
    const armed = this.armed;
    this.armed = undefined;
    armed?.disarm();
  }

  // Until the source connects (query-migrate names a status other than setup), then never again.
  // A query that fails says nothing about the source (a monitor reconnecting, a QEMU busy past the
  // call's timeout): the watchdog asks again rather than stopping, else this QEMU would wait forever
  // (QEMU's exit ends the VM's `waiting` by itself). Only a status read at the deadline stops it. Once
  // QEMU's MIGRATION events are known to flow (on from QEMU's start, or migrate-incoming's own `setup`
  // arrives in listen()), the watchdog sends nothing before its deadline: an event that leaves `setup`
  // says the source connected. A query sent to a QEMU that loads the stream is answered only between its
  // reads (300+ ms late, bench/RESULTS.md session 13) and takes its main loop from the load; without
  // events the watchdog asks every CONNECT_POLL_MS as before.
  private watchConnect(deadline: number): void {
    const { clock, log, vm, wakeups } = this.d;
    let failures = 0;
    const again = (): void => {
      if (wakeups === undefined || !this.eventsOn()) {
        clock.setTimeout(() => void check(), CONNECT_POLL_MS);
        return;
      }
      // Woken by the next MIGRATION event, else at the deadline (past it: every CONNECT_POLL_MS, as a failed query is asked again).
      const left = deadline - clock.monotonic();
      void wakeups.nap(clock, left > 0 ? left : CONNECT_POLL_MS, wakeups.mark()).then(check);
    };
    const check = async (): Promise<void> => {
      if (!this.waiting || this.claimed) return;
      if (this.eventsOn()) {
        const status = wakeups?.lastStatus();
        if (status !== undefined && status !== 'setup') return;
        if (clock.monotonic() < deadline) {
          again();
          return;
        }
      }
      let status: string | undefined;
      try {
        status = ((await vm.monitor().raw({ execute: 'query-migrate' })) as { status?: string }).status;
      } catch (err) {
        if (failures++ === 0) log.warn({ err, msgId: 'MIGRATION_INCOMING_QUERY_FAILED' }, 'cannot ask QEMU whether the migration source connected; asking again');
        again();
        return;
      }
      if (status !== undefined && status !== 'setup') return;
      if (clock.monotonic() < deadline) {
        again();
        return;
      }
      log.warn({ msgId: 'MIGRATION_INCOMING_ABANDONED', waitedMs: CONNECT_WAIT_MS }, 'no source connected to this incoming migration in time; stopping its QEMU (the VM never ran here)');
      await this.abort().catch((err: unknown) => {
        log.error({ err, msgId: 'MIGRATION_INCOMING_ABANDON_FAILED' }, 'cannot stop the QEMU of an abandoned incoming migration; trying again');
        again();
      });
    };
    again();
  }

  /** Leases every disk for this QEMU; LOCK_CONFLICT (nothing kept) when one is held elsewhere. */
  claim(): Promise<void> {
    return this.d.vm.jobs.run('migrateIncomingClaim', async () => {
      this.checkWaiting();
      await this.takeLeases();
    });
  }

  private async takeLeases(): Promise<void> {
    const { vm } = this.d;
    const pid = vm.qemuPid;
    if (pid === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" has no QEMU to lease disks for`);
    if (this.claimed) return;
    const t0 = this.d.clock.monotonic();
    // Taken over by this claim (acquire() lets go of them itself when it fails); a claim that
    // comes before the arming is done does not wait for it.
    const armed = this.armedPid === pid ? this.armed : undefined;
    this.armed = undefined;
    this.disarm();
    await this.d.leases.acquireAllForRunning(vm.def, pid, armed);
    this.claimed = true;
    // The lease work alone: the rest of the source's released → claimed (or → running) is hops.
    this.d.log.info({ msgId: 'MIGRATION_CLAIMED', leaseMs: Math.round(this.d.clock.monotonic() - t0), armed: armed !== undefined }, 'the disk leases are this QEMU\'s');
  }

  /**
   * Waits for QEMU to have loaded the last state, then runs the guest (resumed: migrated). With
   * `claim`, the disks are leased first (the source released them and went on past pre-switchover):
   * the lease work then overlaps the last state's transfer instead of the source's pause, and the
   * guest still runs here only once the leases are this QEMU's (decision 0018, session 22).
   */
  finish(opts: { claim?: boolean } = {}): Promise<void> {
    const { vm, clock } = this.d;
    return vm.jobs.run('migrateIncomingFinish', async () => {
      this.checkWaiting();
      if (opts.claim === true) await this.takeLeases();
      if (!this.claimed) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" holds no disk leases yet: claim them before the guest runs`);
      const mon = vm.monitor();
      const t0 = clock.monotonic();
      const end = t0 + LOAD_WAIT_MS;
      const wakeups = this.d.wakeups;
      // A source that asks early (PrepareResult.switchoverEarly) does so while this QEMU still loads
      // the last state: a query would be answered only between its reads and take its main loop
      // from the load (session 14), so while its last MIGRATION event is not `completed` this side
      // asks nothing and waits for that event, with a slow fallback in case an event is missed.
      // The event itself ends the wait (session 23): QEMU sets the run state that leaves `inmigrate`
      // before it sends it (process_incoming_migration_bh: "as soon as an external observer sees
      // this event they might start to prod at the VM"). Without events query-status decides.
      const loading = (): boolean => wakeups !== undefined && this.eventsOn() && !LOAD_ENDED.has(wakeups.lastStatus() ?? '');
      const loaded = (): boolean => wakeups !== undefined && this.eventsOn() && wakeups.lastStatus() === 'completed';
      let ask = !loading();
      // For the log: the status queries sent, and the last MIGRATION event seen before the wait ended.
      let queries = 0;
      for (;;) {
        if (loaded()) break;
        const since = wakeups?.mark() ?? 0;
        if (ask) {
          queries++;
          if ((await mon.queryStatus()).status !== 'inmigrate') break;
        }
        if (clock.monotonic() > end) throw new VirtqError('TIMEOUT', `VM "${vm.def.name}" did not receive its last state within ${LOAD_WAIT_MS} ms`);
        if (wakeups === undefined || !this.eventsOn()) {
          await delay(clock, POLL_MS);
          ask = true;
          continue;
        }
        await wakeups.nap(clock, loading() ? LOADING_FALLBACK_MS : FALLBACK_POLL_MS, since);
        ask = !loading() || !wakeups.seenSince(since);
      }
      const loadedAt = clock.monotonic();
      vm.expectedResume = 'migrated';
      try {
        await mon.cont();
      } finally {
        vm.expectedResume = undefined;
      }
      this.ran = true;
      this.d.log.info({ msgId: 'MIGRATION_RUNNING', loadWaitMs: Math.round(loadedAt - t0), contMs: Math.round(clock.monotonic() - loadedAt), queries, lastEvent: wakeups?.lastStatus() }, 'the migrated guest runs here');
    });
  }

  /** Stops this QEMU (its leases go with it); the shim then ends and frees the name. */
  async abort(): Promise<void> {
    const { vm } = this.d;
    this.disarm();
    if (vm.qemuPid === undefined) return;
    if (!this.waiting) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" runs here already (${vm.state}: ${vm.reason}); it is not an incoming migration any more`);
    await vm.destroy(1000);
  }

  private checkWaiting(): void {
    if (!this.waiting) throw new VirtqError('OPERATION_INVALID', `VM "${this.d.vm.def.name}" is not waiting for an incoming migration (it is ${this.d.vm.state}: ${this.d.vm.reason})`);
  }
}
