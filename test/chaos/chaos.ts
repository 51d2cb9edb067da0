// One chaos iteration: a seeded schedule of host operations from several clients (overlapping
// names, some concurrent, some left running in the background) mixed with faults — kill -9 of
// virtqemud, of shims and of QEMU, SIGSTOP of shims, clients hanging up mid-call, a full disk,
// half-written temp files — then quiescence and the invariants:
//   1. every VM seen running still runs or has a recorded reason for stopping;
//   2. no two live QEMUs share a name or a UUID (checked after every step too);
//   3. the listing converges to the processes within a bound;
//   4. no definition is lost or corrupt, and no temp file is read as one;
//   5. once everything is destroyed and undefined, no QEMU, shim or lease holder is left;
//   6. every event told to a subscriber that resumes with its sequence numbers is in the VM's
//      journal, in order, once, and it is told every journaled event (event-watch.ts);
//   7. once virtqemud has stopped and virtstoraged and virtsecretd are killed -9, no process
//      started under the root runs, whether or not its command line names the root (a
//      capabilities probe, a clone's cp), found by the variable world.ts puts in its environment.
// Beside it runs the storage schedule of storage-chaos.ts (virtstoraged and virtsecretd, their
// operations, kill -9 of either, hang-ups mid-transfer) with the invariants of storage-invariants.ts.
import { EventWatch } from './event-watch.js';
import { readFileSync, readdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  ACTIVE_STATES, VirtqError, isErrorCode, normalizeDefinition,
  type DomainRow, type DomainState, type RpcClient,
} from '../../protocol/index.js';
import { idleGuest } from '../helpers/test-guest.js';
import { Rng } from './rng.js';
import { StorageChaos } from './storage-chaos.js';
import { ChaosWorld, processesOfRoot, sleep, type QemuProc } from './world.js';

/** How an iteration runs. */
export interface ChaosOptions {
  /** Scheduled steps (each one or more operations, or a fault). */
  steps: number;
  /** Size of the VM name pool (the most VMs alive at once). */
  names: number;
  /** tmpfs size of the root ("off": a plain temp dir, no disk-full faults). */
  tmpfsSize: string;
  /** How long the listing may take to match the processes once quiet. */
  convergeMs: number;
  /** Progress lines (the trace is also kept in the report). */
  log?: (line: string) => void;
  /**
   * Past this, the iteration stops waiting and reports where it hung (the phase and every call
   * still in flight) instead of leaving the test runner's timeout to cut it short without a trace.
   */
  deadlineMs?: number;
}

/** What an iteration did and found. */
export interface IterationReport {
  seed: number;
  steps: number;
  ops: Record<string, number>;
  faults: Record<string, number>;
  errors: Record<string, number>;
  violations: string[];
  /** Outcomes worth a look that break no invariant by themselves (a lease conflict: each disk belongs to one name). */
  notes: string[];
  trace: string[];
  ms: number;
  /** Where the logs of a failed iteration were kept. */
  keptLogs?: string;
}

type OpKind = 'define' | 'redefine' | 'undefine' | 'create' | 'start' | 'destroy' | 'suspend' | 'resume' | 'shutdown' | 'autostart' | 'list' | 'getDefinition';
type Via = 'daemon' | 'direct' | 'disconnect';

interface Op {
  kind: OpKind;
  name: string;
  via: Via;
  slot: number;
  variant: number;
  flag: boolean;
  closeAfterMs: number;
}

type Outcome =
  | { ok: true; value: unknown }
  | { ok: false; code: string; message: string; uncertain: boolean };

const OP_WEIGHTS: Record<OpKind, number> = {
  define: 14, redefine: 5, undefine: 6, create: 17, start: 15, destroy: 7, suspend: 8, resume: 8, shutdown: 2, autostart: 3, list: 6, getDefinition: 3,
};
const PER_VM: ReadonlySet<OpKind> = new Set(['destroy', 'suspend', 'resume', 'shutdown', 'getDefinition']);

const STEP_WEIGHTS = {
  ops: 30, background: 10, killDaemon: 5, killShim: 9, reattach: 5, killQemu: 5, stopShim: 6, disconnect: 8, disk: 5, junk: 2, pause: 3, check: 2,
};

/** Outcomes expected under these faults; others are noted in the report for a look. */
const USUAL: ReadonlySet<string> = new Set(['NO_DOMAIN', 'NAME_IN_USE', 'UUID_IN_USE', 'OPERATION_INVALID', 'OPERATION_FAILED', 'SHIM_UNAVAILABLE', 'CONNECTION_CLOSED', 'NO_CONNECT']);

const SLOTS = 3;
const UNCERTAIN = new Set(['CONNECTION_CLOSED', 'TIMEOUT']);

/** The key a definition is compared by: what the test sent, and what the store must hold. */
function defKey(d: { memoryMiB: number; vcpus?: number; kernel?: { path: string }; disks?: Array<{ path?: string; readonly?: boolean }>; uuid?: string }, withUuid: boolean): string {
  return JSON.stringify({
    m: d.memoryMiB, v: d.vcpus ?? 1, k: d.kernel?.path, d: (d.disks ?? []).map((x) => [x.path, x.readonly === true]),
    ...(withUuid ? { u: (d.uuid ?? '').toLowerCase() } : {}),
  });
}

interface Track { overlapped: boolean }

/** What the definitions on disk may be, given the replies seen (uncertain calls widen it). */
class DefinitionModel {
  private readonly names = new Map<string, { possible: Set<string>; inflight: Set<Track> }>();

  private entry(name: string): { possible: Set<string>; inflight: Set<Track> } {
    let e = this.names.get(name);
    if (e === undefined) {
      e = { possible: new Set(['none']), inflight: new Set() };
      this.names.set(name, e);
    }
    return e;
  }

  begin(name: string): Track {
    const e = this.entry(name);
    const t: Track = { overlapped: e.inflight.size > 0 };
    for (const o of e.inflight) o.overlapped = true;
    e.inflight.add(t);
    return t;
  }

  /** `value` is a defKey or 'none'; a certain, unraced outcome replaces what was possible. */
  end(name: string, t: Track, value: string | undefined, certain: boolean): void {
    const e = this.entry(name);
    e.inflight.delete(t);
    if (value === undefined) return;
    if (certain && !t.overlapped) e.possible = new Set([value]);
    else e.possible.add(value);
  }

  all(): Array<[string, Set<string>]> {
    return [...this.names].map(([n, e]) => [n, e.possible]);
  }
}

function count(map: Record<string, number>, key: string, n = 1): void {
  map[key] = (map[key] ?? 0) + n;
}

/** Runs one seeded iteration and returns its report (violations empty when all held). */
export async function runIteration(seed: number, opts: ChaosOptions): Promise<IterationReport> {
  const chaos = new Chaos(seed, opts);
  return chaos.run();
}

class Chaos {
  private readonly rng: Rng;
  private readonly w: ChaosWorld;
  private readonly report: IterationReport;
  private readonly model = new DefinitionModel();
  private readonly names: string[];
  private readonly slots: Array<RpcClient | undefined> = Array.from({ length: SLOTS }, () => undefined);
  private readonly pending = new Set<Promise<void>>();
  /** Calls not yet answered, for the report of an iteration that hangs. */
  private readonly inFlight = new Map<number, string>();
  private callSeq = 0;
  private phase = 'starting';
  private readonly lost = new Set<string>();
  private readonly stopped = new Map<number, NodeJS.Timeout>();
  /** VMs seen running or paused: uuid → name and when. */
  private readonly seenRunning = new Map<string, { name: string; at: number }>();
  /** Successful destroy / shutdown replies, and undefines of VMs not running: name → times. */
  private readonly stopAcks = new Map<string, number[]>();
  private diskEpoch = 0;
  private step = 0;
  private readonly t0 = Date.now();
  private readonly kernel = idleGuest().kernel;
  private readonly shared: string;
  private probe = 0;
  private readonly storage: StorageChaos;
  /** Invariant (issue #17): every event told to a resuming subscriber is in the journal, in order, once. */
  private readonly events: EventWatch;

  constructor(private readonly seed: number, private readonly opts: ChaosOptions) {
    this.rng = new Rng(seed);
    this.w = ChaosWorld.create(opts.tmpfsSize);
    this.names = Array.from({ length: opts.names }, (_, i) => `vm${i}`);
    for (const n of this.names) this.w.image(n);
    this.shared = this.w.image('shared');
    this.report = { seed, steps: 0, ops: {}, faults: {}, errors: {}, violations: [], notes: [], trace: [], ms: 0 };
    this.events = new EventWatch(() => this.w.connect(), (l) => this.trace(l));
    this.storage = new StorageChaos(seed, this.w.root, {
      trace: (l) => this.trace(l), violation: (v) => this.violation(v), note: (n) => this.report.notes.push(n),
      count: (what, key) => count(this.report[what], key), stopAck: (n) => this.stopAck(n), track: (p) => this.track(p),
      virtq: () => this.w.connect(), diskFull: () => this.w.diskFull,
    });
  }

  async run(): Promise<IterationReport> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = this.opts.deadlineMs;
    const hung = new Promise<'hung'>((resolve) => { if (deadline !== undefined) timer = setTimeout(() => resolve('hung'), deadline); });
    try {
      if (await Promise.race([this.body().then(() => 'done' as const), hung]) === 'hung') {
        const calls = [...this.inFlight.values()];
        this.violation(`the iteration did not finish within ${Math.round((deadline ?? 0) / 1000)} s: stuck in ${this.phase}; ${calls.length} call(s) unanswered${calls.length === 0 ? '' : `: ${calls.join('; ')}`}`);
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      for (const t of this.stopped.values()) clearTimeout(t);
      this.report.ms = Date.now() - this.t0;
      if (this.report.violations.length > 0) {
        const kept = this.w.preserveLogs(this.seed);
        if (kept !== undefined) {
          this.report.keptLogs = kept;
          writeFileSync(join(kept, 'trace.txt'), `${this.report.trace.join('\n')}\n\nviolations:\n${this.report.violations.join('\n')}\n`);
        }
      }
      await this.events.stop();
      await this.storage.dispose();
      await this.w.dispose();
    }
    return this.report;
  }

  private async body(): Promise<void> {
    try {
      await Promise.all([this.w.startDaemon(), this.storage.start()]);
      this.events.start();
      this.trace(`root ${this.w.root}${this.w.tmpfs ? ` (tmpfs ${this.opts.tmpfsSize})` : ''}`);
      // The disk-full fault needs a tmpfs root: as root, not getting one fails the run rather than
      // quietly leaving the fault out; otherwise it is said in the summary.
      if (this.w.tmpfsError !== undefined) {
        const what = `no disk-full faults: ${this.w.tmpfsError} (VIRTQ_CHAOS_TMPFS=off runs without them on purpose)`;
        if (process.getuid?.() === 0) this.violation(what);
        else this.report.notes.push(what);
      }
      for (this.step = 1; this.step <= this.opts.steps; this.step++) {
        this.phase = `step ${this.step}`;
        await Promise.all([this.runStep(), this.storage.step()]);
        this.checkUnique('after step');
        this.storage.checkInUse('after step', this.w.qemus());
        this.report.steps++;
      }
      this.phase = 'the final quiesce and checks';
      await this.quiesce();
      await this.checkConvergence('at the end');
      await this.checkSeenRunning('at the end');
      await this.storage.checkAtEnd(this.opts.convergeMs, () => this.w.qemus());
      // Then every lost shim re-attached, and virtqemud restarted from scratch: it must rebuild
      // the same truth from the files and the shims re-registering.
      this.phase = 'the final re-attach and restart';
      for (const name of [...this.lost].sort()) await this.reattach(name);
      this.fault('kill -9 virtqemud');
      this.trace('FAULT kill -9 virtqemud (quiet), restart');
      await this.w.killDaemon();
      await this.restartDaemon();
      await this.checkConvergence('after a last restart');
      await this.checkSeenRunning('after a last restart');
      await this.checkDefinitions();
      this.phase = 'the event journal check and teardown';
      for (const v of await this.events.check(this.w.layout.state, this.opts.convergeMs)) this.violation(v);
      this.trace(`event journal: told ${this.events.count.events} events of ${this.events.count.vms} VMs, each in its journal once, in order`);
      await this.events.stop();
      await this.teardown();
      this.phase = 'the check for processes left behind';
      await this.checkNothingLeft();
    } catch (err) {
      this.violation(`the iteration itself failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  // --- bookkeeping ---------------------------------------------------------------------

  private trace(line: string): void {
    const l = `[${((Date.now() - this.t0) / 1000).toFixed(1)}s #${this.step}] ${line}`;
    this.report.trace.push(l);
    this.opts.log?.(l);
  }

  private violation(what: string): void {
    const v = `seed ${this.seed} step ${this.step}: ${what}`;
    this.report.violations.push(v);
    this.trace(`VIOLATION ${what}`);
  }

  private fault(kind: string): void {
    count(this.report.faults, kind);
  }

  private seen(name: string, uuid: string): void {
    if (!this.seenRunning.has(uuid)) this.seenRunning.set(uuid, { name, at: Date.now() });
  }

  private stopAck(name: string): void {
    this.stopAcks.set(name, [...(this.stopAcks.get(name) ?? []), Date.now()]);
  }

  private track(p: Promise<void>): void {
    const q = p.catch((err: unknown) => this.violation(`background work failed: ${(err as Error).stack ?? String(err)}`)).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }

  // --- clients and calls ---------------------------------------------------------------

  private async slot(i: number): Promise<RpcClient> {
    const c = this.slots[i];
    if (c !== undefined && !c.isClosed) return c;
    const fresh = await this.w.connect();
    this.slots[i] = fresh;
    return fresh;
  }

  private async call(op: Op, proc: string, args: unknown): Promise<Outcome> {
    let client: RpcClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    const id = ++this.callSeq;
    this.inFlight.set(id, `${proc} ${op.name} via ${op.via} (from ${((Date.now() - this.t0) / 1000).toFixed(1)}s, step ${this.step})`);
    try {
      if (op.via === 'direct' && PER_VM.has(op.kind)) {
        const s = this.w.state(op.name);
        if (s === undefined) return { ok: false, code: 'NO_DOMAIN', message: 'no state file', uncertain: false };
        client = await this.w.connect(s.sockets.rw);
      } else if (op.via === 'disconnect') {
        client = await this.w.connect();
        const c = client;
        timer = setTimeout(() => c.close(), op.closeAfterMs);
      } else {
        client = await this.slot(op.slot);
      }
      return { ok: true, value: await client.call('virtq', proc, args) };
    } catch (err) {
      const e = VirtqError.from(err);
      return { ok: false, code: e.code, message: e.message, uncertain: UNCERTAIN.has(e.code) };
    } finally {
      this.inFlight.delete(id);
      if (timer !== undefined) clearTimeout(timer);
      // Only the pooled clients of the slots outlive a call.
      if (client !== undefined && !this.slots.includes(client)) client.close();
    }
  }

  private definition(name: string, variant: number, uuid?: string): Record<string, unknown> {
    return {
      name, ...(uuid === undefined ? {} : { uuid }), memoryMiB: variant % 2 === 0 ? 32 : 48, vcpus: 1, accel: 'tcg', kernel: { path: this.kernel },
      disks: [
        { path: this.w.path('disks', `${name}.img`), format: 'raw', target: 'vda' },
        ...(variant >= 2 ? [{ path: this.shared, format: 'raw', target: 'vdb', readonly: true }] : []),
      ],
    };
  }

  private drawOp(): Op {
    const kind = this.rng.weighted(OP_WEIGHTS);
    const idx = this.rng.int(0, 1000);
    const aim = this.rng.chance(0.75);
    const name = aim ? this.aim(kind, idx) : this.names[idx % this.names.length] as string;
    const r = this.rng.next();
    const via: Via = r < 0.15 ? 'disconnect' : r < 0.35 && PER_VM.has(kind) ? 'direct' : 'daemon';
    return { kind, name, via, slot: this.rng.int(0, SLOTS - 1), variant: this.rng.int(0, 3), flag: this.rng.chance(0.5), closeAfterMs: this.rng.int(0, 40) };
  }

  /**
   * Mostly aim at a name the operation can act on (from the files under the root, not from
   * virtqemud): running VMs for per-VM calls, defined ones to start or undefine, free ones to
   * define or create. The draw is the same whatever is found, so a seed keeps its schedule.
   */
  private aim(kind: OpKind, idx: number): string {
    const live = new Set(this.w.states().filter((s) => ACTIVE_STATES.has(s.state as DomainState) && s.qemuPid !== undefined).map((s) => s.name));
    let defined: Set<string>;
    try {
      defined = new Set(readdirSync(join(this.w.layout.config, 'domains')).filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => f.slice(0, -5)));
    } catch {
      defined = new Set();
    }
    const pool = PER_VM.has(kind) || kind === 'list' ? [...live]
      : kind === 'start' || kind === 'undefine' || kind === 'redefine' || kind === 'autostart' ? [...defined]
        : this.names.filter((n) => !live.has(n) && !defined.has(n));
    const names = pool.filter((n) => this.names.includes(n)).sort();
    return names.length === 0 ? this.names[idx % this.names.length] as string : names[idx % names.length] as string;
  }

  /** Runs one operation and feeds what it learnt to the model. */
  private async op(op: Op): Promise<void> {
    count(this.report.ops, op.kind);
    const { name } = op;
    const epoch = this.diskEpoch;
    const fullAtStart = this.w.diskFull;
    let out: Outcome;
    switch (op.kind) {
      case 'define':
      case 'redefine': {
        let uuid: string | undefined;
        if (op.kind === 'redefine') {
          const found = await this.call({ ...op, via: 'daemon' }, 'lookupByName', { name });
          if (found.ok) uuid = (found.value as DomainRow).uuid;
        }
        const def = this.definition(name, op.variant, uuid);
        const t = this.model.begin(name);
        out = await this.call(op, 'define', { definition: def });
        const key = defKey(def as never, uuid !== undefined);
        if (out.ok) this.model.end(name, t, key, true);
        else this.model.end(name, t, out.uncertain ? key : undefined, false);
        if (!out.ok && fullAtStart && this.w.diskFull && epoch === this.diskEpoch) this.checkFullDiskError('define', name, out);
        break;
      }
      case 'undefine': {
        const t = this.model.begin(name);
        out = await this.call(op, 'undefine', { name });
        if (out.ok) this.model.end(name, t, 'none', true);
        else this.model.end(name, t, out.uncertain ? 'none' : undefined, false);
        break;
      }
      case 'create':
        out = await this.call(op, 'create', { definition: this.definition(name, op.variant), ...(op.flag && op.variant === 3 ? { paused: true } : {}) });
        break;
      case 'start':
        out = await this.call(op, 'start', { name, ...(op.flag && op.variant === 3 ? { paused: true } : {}) });
        break;
      case 'destroy':
        out = await this.call(op, 'destroy', { name, graceMs: op.flag ? 200 : 2000 });
        break;
      case 'suspend':
        out = await this.call(op, 'suspend', { name });
        break;
      case 'resume':
        out = await this.call(op, 'resume', { name });
        break;
      case 'shutdown':
        out = await this.call(op, 'shutdown', { name, timeoutSec: 1 });
        break;
      case 'autostart':
        out = await this.call(op, 'setAutostart', { name, autostart: op.flag });
        break;
      case 'list':
        out = await this.call(op, 'listDomains', {});
        break;
      case 'getDefinition':
        out = await this.call(op, 'getDefinition', { name });
        break;
    }
    // A client told a VM stopped, or that had it forgotten (or may have: the reply was lost),
    // accounts for its end.
    if (op.kind === 'undefine' && (out.ok || out.uncertain) && !this.w.qemus().some((q) => q.name === name)) this.stopAck(name);
    if (out.ok) {
      count(this.report.errors, 'ok');
      const v = out.value as Partial<DomainRow> & { domains?: DomainRow[] };
      if ((op.kind === 'create' || op.kind === 'start') && (v.state === 'running' || v.state === 'paused') && v.uuid !== undefined) this.seen(name, v.uuid);
      if (op.kind === 'list') for (const r of v.domains ?? []) if ((r.state === 'running' || r.state === 'paused') && r.qemuPid !== undefined) this.seen(r.name, r.uuid);
      if ((op.kind === 'destroy' || op.kind === 'shutdown') && (v.state === 'shutoff' || v.state === 'crashed')) this.stopAck(name);
    } else {
      count(this.report.errors, out.code);
      if (!USUAL.has(out.code) || out.message.includes('a shim already serves')) this.report.notes.push(`seed ${this.seed} step ${this.step}: ${op.kind} ${name} via ${op.via}: ${out.code}: ${out.message}`);
      if (!isErrorCode(out.code) || out.code === 'INTERNAL') this.violation(`${op.kind} ${name} via ${op.via}: an error outside the catalogue's expected codes: ${out.code}: ${out.message}`);
    }
    this.trace(`${op.kind} ${name} via ${op.via}${op.via === 'disconnect' ? `(${op.closeAfterMs}ms)` : ''} → ${out.ok ? 'ok' : `${out.code}: ${out.message.split('\n')[0]?.slice(0, 160)}`}`);
  }

  /** A write refused for lack of space must say so. */
  private checkFullDiskError(what: string, name: string, out: Outcome & { ok: false }): void {
    if (['NAME_IN_USE', 'UUID_IN_USE', 'CONNECTION_CLOSED', 'NO_CONNECT', 'TIMEOUT'].includes(out.code)) return;
    if (out.code === 'NO_SPACE' && out.message.includes('no space left on device')) return;
    this.violation(`${what} ${name} on a full disk failed without a clear error: ${out.code}: ${out.message}`);
  }

  // --- steps ---------------------------------------------------------------------------

  private async runStep(): Promise<void> {
    const kind = this.rng.weighted(STEP_WEIGHTS);
    switch (kind) {
      case 'ops': {
        const n = this.rng.int(1, 4);
        const ops = Array.from({ length: n }, () => this.drawOp());
        // Concurrent calls on overlapping names: make half the batch share one name.
        if (n > 1 && this.rng.chance(0.5)) for (const o of ops.slice(1)) if (this.rng.chance(0.6)) o.name = (ops[0] as Op).name;
        await Promise.all(ops.map((o) => this.op(o)));
        return;
      }
      case 'background': {
        const n = this.rng.int(1, 3);
        for (let i = 0; i < n; i++) this.track(this.op(this.drawOp()));
        await sleep(this.rng.int(0, 300));
        return;
      }
      case 'killDaemon':
        return this.killDaemon();
      case 'killShim':
        return this.killShim();
      case 'reattach':
        return this.reattachOne(this.rng.int(0, 1000));
      case 'killQemu': {
        const idx = this.rng.int(0, 1000);
        const qemus = this.w.qemus().sort((a, b) => a.name.localeCompare(b.name));
        if (qemus.length === 0) return;
        const q = qemus[idx % qemus.length] as QemuProc;
        this.fault('kill -9 qemu');
        this.trace(`FAULT kill -9 qemu ${q.name} pid ${q.pid}`);
        try { process.kill(q.pid, 'SIGKILL'); } catch { /* gone */ }
        return;
      }
      case 'stopShim':
        return this.stopShim();
      case 'disconnect': {
        const op = this.drawOp();
        op.via = 'disconnect';
        this.fault('client disconnect mid-call');
        await this.op(op);
        return;
      }
      case 'disk':
        return this.toggleDisk();
      case 'junk': {
        const name = this.rng.pick(this.names);
        const dir = this.rng.chance(0.7) ? join(this.w.layout.config, 'domains') : join(this.w.layout.runtime, 'shims');
        this.fault('half-written temp file');
        try {
          writeFileSync(join(dir, `.${name}.json.${randomBytes(4).toString('hex')}.tmp`), `{"name":"${name}","memoryMiB":`);
          this.trace(`FAULT half-written temp file for ${name} in ${dir}`);
        } catch (err) {
          this.trace(`junk not written: ${(err as Error).message}`);
        }
        return;
      }
      case 'pause':
        await sleep(this.rng.int(200, 1500));
        return;
      case 'check':
        // Mid-run, with more VMs alive than at the end: let things settle, then the listing must match.
        await this.settle();
        await this.checkConvergence('mid-run');
        await this.checkSeenRunning('mid-run');
        return;
    }
  }

  private async killDaemon(): Promise<void> {
    const n = this.rng.int(0, 3);
    const ops = Array.from({ length: n }, () => this.drawOp()).map((o) => ({ ...o, via: 'daemon' as const }));
    const before = this.rng.int(0, 400);
    const down = this.rng.int(0, 1500);
    const junk = this.rng.chance(0.3);
    const junkName = this.rng.pick(this.names);
    for (const o of ops) this.track(this.op(o));
    await sleep(before);
    if (!this.w.daemonUp) await this.restartDaemon();
    this.fault('kill -9 virtqemud');
    this.trace(`FAULT kill -9 virtqemud (${n} calls in flight), restart in ${down} ms`);
    await this.w.killDaemon();
    if (junk) {
      try {
        writeFileSync(join(this.w.layout.config, 'domains', `.${junkName}.json.${randomBytes(4).toString('hex')}.tmp`), `{"name":"${junkName}","memoryMiB":`);
      } catch {
        // a full disk
      }
    }
    await sleep(down);
    await this.restartDaemon();
  }

  private async restartDaemon(): Promise<void> {
    try {
      await this.w.startDaemon();
    } catch (err) {
      this.violation(`virtqemud did not restart${this.w.diskFull ? ' (disk full)' : ''}: ${(err as Error).message}`);
      this.w.freeDisk();
      this.diskEpoch++;
      await this.w.startDaemon();
    }
  }

  private async killShim(): Promise<void> {
    const idx = this.rng.int(0, 1000);
    const withOp = this.rng.chance(0.6);
    const op = this.drawOp();
    const delay = this.rng.int(0, 150);
    const reattachNow = this.rng.chance(0.5);
    const reattachAfter = this.rng.int(0, 800);
    // A third of the time: start a VM and kill its shim while it starts (QEMU spawned or not).
    const whileStarting = this.rng.chance(0.33);
    const startDelay = this.rng.int(0, 700);
    if (whileStarting) return this.killStartingShim(op, startDelay, reattachNow, reattachAfter);
    const name = this.names[idx % this.names.length] as string;
    if (withOp) {
      op.name = name;
      this.track(this.op(op));
    }
    await sleep(delay);
    let pid = this.w.state(name)?.shimPid;
    if (pid === undefined || !this.w.isShim(pid)) {
      const shims = this.w.shims().sort((a, b) => a.pid - b.pid);
      if (shims.length === 0) return;
      pid = (shims[idx % shims.length] as { pid: number }).pid;
    }
    this.fault('kill -9 shim');
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await sleep(50);
    const victim = this.w.states().find((s) => s.shimPid === pid)?.name;
    this.trace(`FAULT kill -9 shim pid ${pid} (${victim ?? 'no state file yet'})${withOp ? ` during ${op.kind} ${op.name}` : ''}; ${reattachNow ? `re-attach in ${reattachAfter} ms` : 'left lost'}`);
    if (victim === undefined) return;
    this.lost.add(victim);
    if (!reattachNow) return;
    await sleep(reattachAfter);
    await this.reattach(victim);
  }

  private async killStartingShim(op: Op, delay: number, reattachNow: boolean, reattachAfter: number): Promise<void> {
    // An idle warm shim is the one a start takes: it counts as the starting shim, not as one before.
    const pool = new Set((await this.w.livePool())?.idle);
    const before = new Set(this.w.shims().map((p) => p.pid).filter((p) => !pool.has(p)));
    const start: Op = { ...op, kind: op.variant % 2 === 0 ? 'create' : 'start', via: 'daemon' };
    start.name = this.aim(start.kind, op.closeAfterMs);
    // Half the time right after its QEMU appears (spawned, reply not out yet), else at a random
    // point after the shim appears.
    const afterQemu = op.flag;
    const wait = afterQemu ? delay % 25 : delay % 400;
    const qemusBefore = new Set(this.w.qemus().map((q) => q.pid));
    let done = false;
    this.track(this.op(start).finally(() => { done = true; }));
    let pid: number | undefined;
    const deadline = Date.now() + 5000;
    while (pid === undefined && !done && Date.now() < deadline) {
      const fresh = this.w.shims().map((p) => p.pid).filter((p) => !before.has(p)).sort((a, b) => b - a)[0];
      if (fresh !== undefined && (!afterQemu || this.w.qemus().some((q) => q.name === start.name && !qemusBefore.has(q.pid)))) pid = fresh;
      else await sleep(5);
    }
    if (pid === undefined) return;
    await sleep(wait);
    this.fault('kill -9 shim while it starts a VM');
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    const finished = done;
    await sleep(50);
    const victim = this.w.states().find((s) => s.shimPid === pid)?.name;
    this.trace(`FAULT kill -9 shim pid ${pid} ${wait} ms after its ${afterQemu ? 'QEMU' : 'start'} while it starts ${start.kind} ${start.name}${finished ? ' (the start had already answered)' : ''} (${victim === undefined ? 'no state file yet' : `state file of ${victim}`}); ${reattachNow ? 'may re-attach' : 'left lost'}`);
    if (victim === undefined) return;
    this.lost.add(victim);
    if (!reattachNow) return;
    await sleep(reattachAfter);
    await this.reattach(victim);
  }

  private async reattachOne(idx: number): Promise<void> {
    const lost = [...this.lost].sort();
    if (lost.length === 0) return;
    await this.reattach(lost[idx % lost.length] as string);
  }

  private async reattach(name: string): Promise<void> {
    this.lost.delete(name);
    this.fault('re-attach');
    const r = await this.w.attach(name);
    count(this.report.errors, r.ok ? 'ok' : (r.error?.code ?? '?'));
    this.trace(`re-attach ${name} → ${r.ok ? 'ok' : `${r.error?.code}: ${r.error?.message}`}`);
    if (!r.ok && r.error?.code === 'INTERNAL') this.violation(`re-attach ${name}: ${r.error.code}: ${r.error.message}`);
  }

  private async stopShim(): Promise<void> {
    const idx = this.rng.int(0, 1000);
    const ms = this.rng.int(200, 3000);
    const withOp = this.rng.chance(0.6);
    const op = this.drawOp();
    const shims = this.w.shims().sort((a, b) => a.pid - b.pid).filter((s) => !this.stopped.has(s.pid));
    if (shims.length === 0) return;
    const pid = (shims[idx % shims.length] as { pid: number }).pid;
    const name = this.w.states().find((s) => s.shimPid === pid)?.name;
    this.fault('SIGSTOP shim');
    try { process.kill(pid, 'SIGSTOP'); } catch { return; }
    this.trace(`FAULT SIGSTOP shim pid ${pid} (${name ?? '?'}) for ${ms} ms`);
    this.stopped.set(pid, setTimeout(() => this.cont(pid), ms));
    if (withOp && name !== undefined) this.track(this.op({ ...op, name }));
  }

  private cont(pid: number): void {
    const t = this.stopped.get(pid);
    if (t !== undefined) clearTimeout(t);
    this.stopped.delete(pid);
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  }

  private async toggleDisk(): Promise<void> {
    if (!this.w.tmpfs) return;
    this.diskEpoch++;
    if (!this.w.diskFull) {
      this.fault('disk full');
      this.w.fillDisk();
      this.trace('FAULT disk full');
      // A write on a full disk fails, clearly, and leaves no definition behind.
      const name = `probe${this.probe++}`;
      const t = this.model.begin(name);
      const out = await this.call({ kind: 'define', name, via: 'daemon', slot: 0, variant: 0, flag: false, closeAfterMs: 0 }, 'define', { definition: this.definition(name, 0) });
      this.trace(`define ${name} on a full disk → ${out.ok ? 'ok' : `${out.code}: ${out.message}`}`);
      this.model.end(name, t, out.ok || out.uncertain ? defKey(this.definition(name, 0) as never, false) : undefined, out.ok);
      if (!out.ok) this.checkFullDiskError('define', name, out);
      return;
    }
    await this.freeDisk();
  }

  /** Gives the space back and checks that writes work again. */
  private async freeDisk(): Promise<void> {
    if (!this.w.diskFull) return;
    this.diskEpoch++;
    this.w.freeDisk();
    this.trace('disk space back');
    const name = `probe${this.probe++}`;
    const def = this.definition(name, 1);
    let t = this.model.begin(name);
    const out = await this.call({ kind: 'define', name, via: 'daemon', slot: 0, variant: 1, flag: false, closeAfterMs: 0 }, 'define', { definition: def });
    this.model.end(name, t, out.ok || out.uncertain ? defKey(def as never, false) : undefined, out.ok);
    if (!out.ok && out.code !== 'CONNECTION_CLOSED' && out.code !== 'NO_CONNECT') this.violation(`define ${name} once space is back: ${out.code}: ${out.message}`);
    if (!out.ok) return;
    t = this.model.begin(name);
    const gone = await this.call({ kind: 'undefine', name, via: 'daemon', slot: 0, variant: 1, flag: false, closeAfterMs: 0 }, 'undefine', { name });
    this.model.end(name, t, gone.ok || gone.uncertain ? 'none' : undefined, gone.ok);
  }

  // --- quiescence and invariants -------------------------------------------------------

  private async quiesce(): Promise<void> {
    this.step = this.opts.steps + 1;
    this.trace('quiesce: SIGCONT every stopped shim, free the disk, virtqemud up, wait for calls in flight');
    await this.freeDisk();
    if (this.w.tmpfs) {
      const fs = statfsSync(this.w.root);
      this.trace(`tmpfs in use: ${Math.round(((fs.blocks - fs.bfree) * fs.bsize) / 1024)} KiB of ${Math.round((fs.blocks * fs.bsize) / 1024)} KiB`);
    }
    await this.settle();
  }

  /** Stopped shims continued, virtqemud up, every call in flight answered. */
  private async settle(): Promise<void> {
    for (const pid of [...this.stopped.keys()]) this.cont(pid);
    if (!this.w.daemonUp) await this.restartDaemon();
    await this.storage.ensureUp();
    const all = Promise.all([...this.pending]);
    const timeout = sleep(100_000).then(() => 'timeout' as const);
    if (await Promise.race([all.then(() => 'done' as const), timeout]) === 'timeout') this.violation(`${this.pending.size} calls still unanswered 100 s after quiescence`);
  }

  private async listing(): Promise<DomainRow[] | undefined> {
    try {
      const c = await this.slot(0);
      return ((await c.call('virtq', 'listDomains', {})) as { domains: DomainRow[] }).domains;
    } catch {
      return undefined;
    }
  }

  /** Invariant 2: live QEMUs never share a name or a UUID. */
  private checkUnique(when: string): void {
    const qemus = this.w.qemus();
    for (const key of ['name', 'uuid'] as const) {
      const by = new Map<string, number[]>();
      for (const q of qemus) by.set(q[key], [...(by.get(q[key]) ?? []), q.pid]);
      for (const [v, pids] of by) if (pids.length > 1) this.violation(`${when}: ${pids.length} live QEMUs share the ${key} ${v} (pids ${pids.join(', ')})`);
    }
  }

  private listingProblems(rows: DomainRow[], qemus: QemuProc[]): string[] {
    const problems: string[] = [];
    for (const q of qemus) {
      const row = rows.find((r) => r.name === q.name);
      if (row === undefined) problems.push(`live QEMU ${q.name} (pid ${q.pid}) is not listed`);
      else if (!ACTIVE_STATES.has(row.state)) problems.push(`live QEMU ${q.name} (pid ${q.pid}) is listed ${row.state}/${row.reason}`);
      else if (row.qemuPid !== q.pid) problems.push(`live QEMU ${q.name} is pid ${q.pid} but listed with qemuPid ${row.qemuPid ?? 'none'}`);
      else if (row.uuid !== q.uuid) problems.push(`live QEMU ${q.name} has uuid ${q.uuid} but is listed with ${row.uuid}`);
    }
    for (const r of rows) {
      if (!ACTIVE_STATES.has(r.state)) continue;
      if (!qemus.some((q) => q.name === r.name && q.pid === r.qemuPid)) problems.push(`${r.name} is listed ${r.state}/${r.reason} (qemuPid ${r.qemuPid ?? 'none'}) without a live QEMU`);
    }
    return problems;
  }

  /** Invariant 3: the listing matches the processes within the bound. */
  private async checkConvergence(when: string): Promise<void> {
    const start = Date.now();
    let problems: string[] = [];
    for (;;) {
      this.checkUnique('quiet');
      const rows = await this.listing();
      problems = rows === undefined ? ['virtqemud does not answer listDomains'] : this.listingProblems(rows, this.w.qemus());
      if (problems.length === 0) {
        const shown = (rows ?? []).map((r) => `${r.name}:${r.state}/${r.reason}${r.qemuPid === undefined ? '' : `@${r.qemuPid}`}${r.shimUp ? '' : ' (shim lost)'}`).join(' ');
        this.trace(`listing converged ${when} in ${Date.now() - start} ms (${this.w.qemus().length} live VMs): ${shown}`);
        break;
      }
      if (Date.now() - start > this.opts.convergeMs) {
        for (const p of problems) this.violation(`listing did not converge ${when} within ${this.opts.convergeMs} ms: ${p}`);
        break;
      }
      await sleep(250);
    }
    // The rows seen now count as seen running for invariant 1.
    for (const r of (await this.listing()) ?? []) if ((r.state === 'running' || r.state === 'paused') && r.qemuPid !== undefined) this.seen(r.name, r.uuid);
  }

  /**
   * Invariant 1: a VM seen running runs, or its stop is recorded with a reason, within the
   * convergence bound: a stop still in flight (a QEMU that has just exited, its shim writing the
   * end down) is given the bound to be recorded, as the listing is.
   */
  private async checkSeenRunning(when: string): Promise<void> {
    const start = Date.now();
    for (;;) {
      const gaps = await this.unrecordedStops(when);
      if (gaps.length === 0) return;
      if (Date.now() - start > this.opts.convergeMs) {
        for (const g of gaps) this.violation(g);
        return;
      }
      await sleep(250);
    }
  }

  private async unrecordedStops(when: string): Promise<string[]> {
    const gaps: string[] = [];
    const qemus = this.w.qemus();
    const states = this.w.states();
    const rows = await this.listing();
    for (const [uuid, { name, at }] of this.seenRunning) {
      if (qemus.some((q) => q.uuid === uuid)) continue;
      const row = rows?.find((r) => r.uuid === uuid);
      if (row !== undefined && stoppedWithReason(row.state, row.reason)) continue;
      const st = states.find((s) => s.name === name);
      if (st !== undefined && st.uuid === uuid && stoppedWithReason(st.state as DomainState, st.reason)) continue;
      // The name now belongs to a later VM: this one's record was replaced.
      if (rows?.some((r) => r.name === name && r.uuid !== uuid) === true || (st !== undefined && st.uuid !== uuid)) continue;
      if ((this.stopAcks.get(name) ?? []).some((t) => t >= at)) continue;
      gaps.push(`${when}: ${name} (uuid ${uuid}) was running and is gone with no recorded reason within ${this.opts.convergeMs} ms: listing ${row === undefined ? 'has no row' : `says ${row.state}/${row.reason}`}, state file ${st === undefined ? 'missing' : `says ${st.state}/${st.reason} (uuid ${st.uuid})`}`);
    }
    return gaps;
  }

  /** Invariant 4: every definition on disk parses, matches what was sent, and is listed; none is lost. */
  private async checkDefinitions(): Promise<void> {
    const dir = join(this.w.layout.config, 'domains');
    const onDisk = new Map<string, { uuid: string; keys: [string, string] }>();
    for (const file of readdirSync(dir)) {
      if (file.startsWith('.') && file.endsWith('.tmp')) continue;
      if (!file.endsWith('.json')) continue;
      const name = file.slice(0, -5);
      try {
        const def = normalizeDefinition(JSON.parse(readFileSync(join(dir, file), 'utf8')), () => { throw new Error('no uuid'); });
        if (def.name !== name) throw new Error(`names "${def.name}"`);
        onDisk.set(name, { uuid: def.uuid, keys: [defKey(def, true), defKey(def, false)] });
      } catch (err) {
        this.violation(`definition ${file} is corrupt: ${(err as Error).message}`);
      }
    }
    const known = new Map(this.model.all());
    for (const [name, possible] of known) {
      const d = onDisk.get(name);
      if (d === undefined) {
        if (!possible.has('none')) this.violation(`the definition of ${name} is lost (expected one of ${[...possible].join(' | ')})`);
        continue;
      }
      if (!d.keys.some((k) => possible.has(k))) this.violation(`the definition of ${name} on disk (${d.keys[1]}) is none of what was sent and acknowledged (${[...possible].join(' | ')})`);
    }
    for (const name of onDisk.keys()) if (!known.has(name)) this.violation(`a definition of ${name} appeared that was never sent`);
    const rows = await this.listing();
    if (rows === undefined) return;
    const persistent = new Set(rows.filter((r) => r.persistent).map((r) => r.name));
    for (const [name, d] of onDisk) {
      const row = rows.find((r) => r.name === name);
      if (row === undefined || !row.persistent) this.violation(`${name} is defined on disk but listed ${row === undefined ? 'not at all' : 'as transient'}`);
      else if (row.uuid !== d.uuid) this.violation(`${name} is defined on disk with uuid ${d.uuid} but listed with ${row.uuid}`);
    }
    for (const name of persistent) if (!onDisk.has(name)) this.violation(`${name} is listed as persistent but has no definition on disk`);
  }

  /** Invariant 5: destroy and undefine everything; nothing of the root may be left running. */
  private async teardown(): Promise<void> {
    this.trace('teardown: re-attach lost shims, destroy and undefine everything');
    const live = new Set(this.w.qemus().map((q) => q.pid));
    for (const s of this.w.states()) {
      if (s.qemuPid !== undefined && live.has(s.qemuPid) && !this.w.isShim(s.shimPid)) await this.reattach(s.name);
    }
    const deadline = Date.now() + 20_000;
    let rows: DomainRow[] = [];
    for (;;) {
      rows = (await this.listing()) ?? [];
      const active = rows.filter((r) => ACTIVE_STATES.has(r.state));
      await Promise.all(active.map(async (r) => {
        const out = await this.call({ kind: 'destroy', name: r.name, via: 'daemon', slot: 1, variant: 0, flag: false, closeAfterMs: 0 }, 'destroy', { name: r.name, graceMs: 500 });
        if (!out.ok) this.trace(`teardown destroy ${r.name} → ${out.code}: ${out.message}`);
      }));
      for (const r of rows.filter((x) => !ACTIVE_STATES.has(x.state))) {
        const out = await this.call({ kind: 'undefine', name: r.name, via: 'daemon', slot: 1, variant: 0, flag: false, closeAfterMs: 0 }, 'undefine', { name: r.name });
        if (!out.ok && out.code !== 'NO_DOMAIN') this.trace(`teardown undefine ${r.name} → ${out.code}: ${out.message}`);
      }
      // The live virtqemud's idle warm shims are alive by design; every other shim is left over.
      const pool = await this.w.livePool();
      const left = this.w.leftovers(new Set(pool?.idle));
      rows = (await this.listing()) ?? [];
      if (rows.length === 0 && left.qemus.length + left.shims.length + left.holders.length === 0) {
        this.trace(`teardown: ${pool === undefined ? 'no pool listed' : `warm pool ${pool.idle.join(',') || 'empty'} (size ${pool.size})`}`);
        if (pool !== undefined && pool.idle.length > pool.size) this.violation(`virtqemud lists ${pool.idle.length} idle pool shims, more than its pool size ${pool.size}`);
        break;
      }
      if (Date.now() > deadline) {
        for (const q of left.qemus) this.violation(`orphaned QEMU ${q.name} pid ${q.pid} after destroying everything`);
        for (const s of left.shims) this.violation(`orphaned shim pid ${s.pid} (${s.args.slice(1).join(' ')}) after destroying everything`);
        for (const h of left.holders) this.violation(`orphaned lease holder pid ${h.pid} (${h.args.join(' ')}) after destroying everything`);
        for (const r of rows) this.violation(`${r.name} is still listed (${r.state}/${r.reason}, ${r.persistent ? 'persistent' : 'transient'}) after destroying and undefining everything`);
        break;
      }
      await sleep(300);
    }
    // virtqemud's orderly stop takes its idle pool shims with it: then no shim at all is left.
    if (!await this.w.stopDaemon()) this.violation('virtqemud did not stop within 15 s of SIGTERM');
    const end = Date.now() + 10_000;
    while (this.w.shims().length > 0 && Date.now() < end) await sleep(100);
    for (const s of this.w.shims()) this.violation(`shim pid ${s.pid} (${s.args.slice(1).join(' ')}) still runs after virtqemud stopped`);
    this.trace('teardown done');
  }

  /** Invariant 7: nothing started under the root outlives virtqemud's stop and a kill -9 of the others. */
  private async checkNothingLeft(): Promise<void> {
    await this.storage.killDaemons();
    const end = Date.now() + 10_000;
    let left = processesOfRoot(this.w.root);
    while (left.length > 0 && Date.now() < end) {
      await sleep(100);
      left = processesOfRoot(this.w.root);
    }
    for (const p of left) this.violation(`pid ${p.pid} (${p.args.join(' ')}), started under this root, still runs 10 s after every daemon ended`);
    this.trace(`left behind: ${left.length === 0 ? 'nothing' : left.map((p) => p.pid).join(', ')}`);
  }
}

function stoppedWithReason(state: DomainState, reason: string): boolean {
  return (state === 'shutoff' || state === 'crashed') && reason !== '' && reason !== 'defined';
}
