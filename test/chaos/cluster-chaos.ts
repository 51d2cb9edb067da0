// Cluster chaos (issue 20): three virtqemud "hosts" joined with --cluster to a real three-member
// etcd, driven by a seeded schedule of define/start/destroy/undefine/create of a few names on
// random hosts, defines of one name racing on several hosts, and starts of VMs sharing a disk
// (the names share disk images pairwise, one shared lockspace), mixed with faults: kill -9 of a
// virtqemud (restarted), kill -9 of a shim (re-attached), SIGSTOP/SIGCONT of one etcd member,
// quorum lost (two members SIGSTOPped for a while), SIGSTOP of a virtqemud shorter than its TTL.
//
// Invariants. Sampled every 100 ms all along (from /proc and the lockspace, no daemon asked):
//   S1. no VM name has a live QEMU on two hosts (nor two QEMUs at all);
//   S2. no shared disk is open read-write by two live QEMUs (their fdinfo flags);
//   S3. no disk has two live exclusive lease holders in the lockspace.
// After each step, within the converge bound (and after quorum returns):
//   C1. no name and no UUID is listed by two hosts;
//   C2. each host's listing matches its QEMUs: every active row has its live QEMU, every live
//       QEMU under a host's root is listed active there (no orphans), no shim is lost;
//   C3. etcd's claims (names/ and uuids/) are exactly the hosts' listings, host by host, and every
//       host holds a live lease (its hosts/ entry).
// During a quorum loss:
//   Q1. each host refuses a define with CLUSTER_UNAVAILABLE within 30 s, and from then on no
//       define/create/start succeeds on it until quorum is back;
//   Q2. VMs running when quorum went keep running (same QEMU pid) unless the schedule destroyed them;
//   Q3. every host still answers its listing.
// Races: of a define raced on several hosts, at most one succeeds.
//
// Migration between hosts, as `virtq migrate NAME --to-host HOST` does it (client/fleet-route.ts
// finds both ends in etcd; the source's virtqemud migrates to the destination's, the definition
// moving with a persistent VM), with the faults of any other operation. While one is in flight
// (until the step has converged) S1 and S2 allow its two ends a QEMU each with the disk open;
// S3 (one lease holder) stays strict. After the step:
//   M1. a VM that ran before its migration (successful or failed) runs on exactly one host
//       (one live QEMU), that host lists it active, and etcd names that host as its holder
//       (unless a later operation of the same step destroyed it).
//
// Every violation goes, with the world at that moment, to a report file (cluster-report.ts).
//
// Extending it: when the etcd lock-manager plugin (disk leases as etcd keys) lands,
// give ClusterWorld an `etcdLeases()` reader beside `liveLeases()` and add S4 (one exclusive
// etcd lease per disk, held by the host whose QEMU has it open read-write) and a C4 (etcd disk
// leases = the running VMs' disks); a fault `lease-expiry` (SIGSTOP a virtqemud past its TTL)
// then checks the fencing (its VMs paused before another host may take the disk).
import { VirtqError, delay, systemClock, type DomainRow } from '../../protocol/index.js';
import { parseClusterUri } from '../../protocol/cluster.js';
import { routeMigration } from '../../client/fleet-route.js';
import { ClusterWorld, converge, type ClusterHost } from './cluster-world.js';
import { attach, jobOver } from './cluster-waits.js';
import { clusterProblems, instantProblems, migratedProblems, worldText, type InFlight, type Problem } from './cluster-invariants.js';
import { SeedReport } from './cluster-report.js';
import { Rng } from './rng.js';
import { waitStopped } from './stopped.js';
import { acceptedClaim, probeDefines } from './quorum-probe.js';

const clock = systemClock();
const CLAIMING = new Set(['define', 'create', 'start', 'race-define', 'race-disk', 'migrate']);

const OPS = { define: 3, start: 4, destroy: 2, undefine: 2, create: 1, 'race-define': 2, 'race-disk': 2, migrate: 3 } as const;
type OpKind = keyof typeof OPS;
const FAULTS = { none: 5, 'kill-daemon': 1, 'kill-shim': 1, 'pause-etcd-member': 1, 'lose-quorum': 1, 'pause-daemon': 1 } as const;
type Fault = keyof typeof FAULTS;

/** What a cluster chaos iteration did and found. */
export interface ClusterChaosReport {
  seed: number;
  steps: number;
  ops: Record<string, number>;
  outcomes: Record<string, number>;
  faults: Record<string, number>;
  violations: string[];
  trace: string[];
  /** The longest a converge took. */
  maxConvergeMs: number;
  /** Migrations attempted, by how the call ended (also in `outcomes` as migrate:CODE). */
  migrations: number;
  /** The report file with every violation's full text (written only when there is one). */
  reportFile: string;
}

/** How one iteration runs. */
export interface ClusterChaosOptions {
  steps: number;
  /** How many VM names the schedule plays with (they share disks pairwise). */
  names: number;
  convergeMs: number;
  ttlSec: number;
  /** Where the seed's report file goes (cluster-report.ts). */
  reportDir: string;
  log?: (line: string) => void;
}

const count = (m: Record<string, number>, k: string): void => { m[k] = (m[k] ?? 0) + 1; };

/** Runs one seeded iteration in a fresh fleet; never throws for a broken invariant (it reports it). */
export async function runClusterChaos(seed: number, o: ClusterChaosOptions): Promise<ClusterChaosReport> {
  const run = new ClusterChaos(seed, o);
  await run.run();
  return run.r;
}

class ClusterChaos {
  readonly r: ClusterChaosReport;
  private readonly rng: Rng;
  private readonly w: ClusterWorld;
  private readonly names: string[];
  private readonly disks: string[] = [];
  private step = 0;
  /** Hosts that have refused with CLUSTER_UNAVAILABLE during the current quorum loss. */
  private readonly refusing = new Set<string>();
  /** Names destroyed during the current quorum loss. */
  private readonly destroyed = new Set<string>();
  /** Migrations of this step (their ends may both hold a QEMU until the step has converged). */
  private inFlight: InFlight[] = [];
  /** Names that ran when this step migrated them: M1 applies to them. */
  private readonly migratedRunning = new Set<string>();
  private fault: string = 'none';
  private lastOp = '(none yet)';
  private readonly report: SeedReport;
  /** Reports being written (each waits for its world dump). */
  private readonly writing: Array<Promise<void>> = [];

  constructor(readonly seed: number, private readonly o: ClusterChaosOptions) {
    this.rng = new Rng(seed);
    this.w = new ClusterWorld(o.ttlSec);
    this.names = Array.from({ length: o.names }, (_, i) => `cc${seed}-${i}`);
    this.report = new SeedReport(o.reportDir, seed, new Date());
    this.r = { seed, steps: o.steps, ops: {}, outcomes: {}, faults: {}, violations: [], trace: [], maxConvergeMs: 0, migrations: 0, reportFile: this.report.file };
  }

  private note(line: string): void {
    if (line.includes(' FAULT ')) this.fault = line.slice(line.indexOf('FAULT ') + 6);
    // Wall-clock time on each line: the hosts' virtqemud.log (kept with a failing seed's report) is matched by it.
    this.r.trace.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    this.o.log?.(line);
  }

  private violation(invariant: string, seen: string): void {
    const text = `step ${this.step}: ${invariant}: ${seen}`;
    if (this.r.violations.includes(text)) return;
    this.r.violations.push(text);
    const ctx = { seed: this.seed, step: this.step, operation: this.lastOp, fault: this.fault, invariant, seen, at: new Date().toISOString() };
    this.writing.push(worldText(this.w).catch((e: unknown) => `(the world could not be read: ${String(e)})`).then((world) => this.report.add({ ...ctx, world })));
  }

  async run(): Promise<void> {
    let sampling = true;
    let sampler: Promise<void> = Promise.resolve();
    try {
      await this.w.start(3);
      for (let i = 0; i < Math.ceil(this.o.names / 2); i++) this.disks.push(this.w.disk(`d${i}`));
      sampler = (async () => { while (sampling) { this.sample(); await delay(clock, 100); } })();
      for (this.step = 0; this.step < this.o.steps && this.r.violations.length === 0; this.step++) {
        const fault = this.rng.weighted(FAULTS);
        count(this.r.faults, fault);
        this.fault = fault;
        this.lastOp = '(none yet)';
        await this.faultStep(fault);
        await this.converged(`after step ${this.step}`);
      }
    } catch (err) {
      this.violation('E1', `the iteration itself failed at step ${this.step}: ${(err as Error).stack ?? String(err)}`);
    } finally {
      sampling = false;
      await sampler;
      await Promise.all(this.writing);
      this.report.finish(this.r.trace, this.w.hosts.map((h) => ({ host: h.id, dir: h.harness.layout.log })));
      await this.w.cleanup();
    }
  }

  private host(): ClusterHost {
    return this.rng.pick(this.w.hosts);
  }

  // --- faults ----------------------------------------------------------------------------

  private async faultStep(fault: Fault): Promise<void> {
    switch (fault) {
      case 'none':
        await this.op();
        return;
      case 'kill-daemon': {
        const h = this.host();
        const lag = this.rng.int(0, 400);
        this.note(`step ${this.step}: FAULT kill -9 virtqemud of ${h.id} ${lag} ms into the op`);
        await Promise.all([this.op(), delay(clock, lag).then(() => h.kill())]);
        await h.start();
        this.note(`  ${h.id} restarted`);
        return;
      }
      case 'kill-shim': {
        const shims = this.w.hosts.flatMap((h) => h.harness.states().filter((s) => s.shimPid > 0).map((s) => ({ h, s })));
        const victim = shims.length === 0 ? undefined : this.rng.pick(shims);
        this.note(`step ${this.step}: FAULT kill -9 shim ${victim === undefined ? '(none running)' : `of ${victim.s.name} on ${victim.h.id} (pid ${victim.s.shimPid})`}`);
        if (victim !== undefined) try { process.kill(victim.s.shimPid, 'SIGKILL'); } catch { /* gone */ }
        await this.op();
        // As an operator (or systemd) would: a successor shim takes the VM over if its QEMU runs.
        if (victim !== undefined) this.note(`  re-attach ${victim.s.name} on ${victim.h.id}: ${await attach(victim.h.root, victim.s.name)}`);
        return;
      }
      case 'pause-etcd-member': {
        const m = this.rng.int(0, 2);
        this.note(`step ${this.step}: FAULT SIGSTOP etcd member m${m}`);
        this.w.etcd.pause(m);
        try {
          await this.op();
          await this.op();
        } finally {
          this.w.etcd.resume(m);
        }
        return;
      }
      case 'pause-daemon': {
        const h = this.host();
        const ms = this.rng.int(200, Math.floor(this.o.ttlSec * 1000 / 2));
        this.note(`step ${this.step}: FAULT SIGSTOP virtqemud of ${h.id} for ${ms} ms (TTL ${this.o.ttlSec} s)`);
        h.signal('SIGSTOP');
        await Promise.all([this.op(), delay(clock, ms).then(() => h.signal('SIGCONT'))]);
        return;
      }
      case 'lose-quorum':
        await this.quorumLoss();
        return;
    }
  }

  private async quorumLoss(): Promise<void> {
    const keep = this.rng.int(0, 2);
    const paused = [0, 1, 2].filter((i) => i !== keep);
    const before = this.w.qemus();
    this.note(`step ${this.step}: FAULT quorum lost: SIGSTOP etcd members ${paused.map((i) => `m${i}`).join(', ')}; running: ${before.map((q) => `${q.name}@${q.host}`).join(' ') || 'none'}`);
    const revision = await this.w.revision();
    for (const i of paused) this.w.etcd.pause(i);
    this.refusing.clear();
    this.destroyed.clear();
    let accepted: ClusterHost[] = [];
    const name = `q${this.seed}-${this.step}`;
    try {
      const running = await waitStopped(paused.map((i) => this.w.etcd.members[i]?.proc.pid ?? 0));
      if (running.length > 0) this.note(`  threads not stopped after 10 s: ${running.join(' ')}`);
      // Q1: every host comes to refuse a define (a define that succeeds now claimed without quorum).
      const probe = await probeDefines(this.w, name, this.disks[0] as string);
      for (const id of probe.refusing) this.refusing.add(id);
      for (const id of probe.silent) this.violation('Q1', `${id} did not refuse with CLUSTER_UNAVAILABLE within 30 s of quorum lost`);
      accepted = probe.accepted;
      this.note(`  refusing: ${[...this.refusing].sort().join(', ')}`);
      for (let i = this.rng.int(1, 3); i > 0; i--) await this.op();
      // Q2 and Q3.
      for (const q of before) {
        if (this.destroyed.has(q.name)) continue;
        if (!this.w.qemus().some((n) => n.pid === q.pid)) this.violation('Q2', `${q.name}'s QEMU (pid ${q.pid} on ${q.host}) stopped while quorum was lost`);
      }
      for (const h of this.w.hosts) if (await h.list() === undefined) this.violation('Q3', `${h.id} does not answer its listing while quorum is lost`);
      await delay(clock, this.rng.int(0, 2000));
    } finally {
      for (const i of paused) this.w.etcd.resume(i);
      this.refusing.clear();
      this.note('  quorum back: SIGCONT');
    }
    for (const h of accepted) {
      this.violation('Q1', `${h.id} accepted a define of ${name} with etcd's quorum lost (every thread of both members stopped before it was sent); ${await acceptedClaim(this.w, name, revision)}`);
      await (await h.api()).undefine({ name }).catch(() => undefined);
    }
  }

  // --- operations ------------------------------------------------------------------------

  private diskOf(name: string): string {
    return this.disks[this.names.indexOf(name) % this.disks.length] as string;
  }

  /** The host listing `name` (the first that does), else a random one. */
  private async holder(name: string): Promise<ClusterHost> {
    for (const h of this.w.hosts) if ((await h.list(5000))?.some((d) => d.name === name) === true) return h;
    return this.host();
  }

  /** The schedule's names some host lists now. */
  private async listedNames(): Promise<string[]> {
    const rows = await Promise.all(this.w.hosts.map((h) => h.list(5000)));
    return this.names.filter((n) => rows.some((r) => r?.some((d) => d.name === n) === true));
  }

  private async call(h: ClusterHost, kind: string, name: string, f: (api: Awaited<ReturnType<ClusterHost['api']>>) => Promise<unknown>): Promise<string> {
    const code = await h.api().then(f).then(() => 'ok', (e: unknown) => VirtqError.from(e).code);
    count(this.r.outcomes, `${kind}:${code}`);
    if (code === 'ok' && CLAIMING.has(kind) && this.refusing.has(h.id)) this.violation('Q1', `${kind} ${name} succeeded on ${h.id} after it had refused with CLUSTER_UNAVAILABLE, quorum still lost`);
    if (code === 'ok' && kind === 'destroy') {
      this.destroyed.add(name);
      // Stopped on purpose after its migration in this same step: M1 (runs on exactly one host) no longer applies.
      this.migratedRunning.delete(name);
    }
    if (code === 'INTERNAL') this.violation('E1', `${kind} ${name} on ${h.id} failed with INTERNAL`);
    return code;
  }

  private async op(): Promise<void> {
    const kind: OpKind = this.rng.weighted(OPS);
    count(this.r.ops, kind);
    // Calls on a VM mostly pick one some host lists (else most would only be refused NO_DOMAIN).
    const listed = kind === 'migrate' ? [...new Set(this.w.qemus().map((q) => q.name))].filter((n) => this.names.includes(n))
      : kind === 'start' || kind === 'destroy' || kind === 'undefine' ? await this.listedNames() : [];
    const name = this.rng.chance(0.8) && listed.length > 0 ? this.rng.pick(listed) : this.rng.pick(this.names);
    // Mostly aim at the host that has the VM; sometimes at any host (which must refuse).
    const aim = async (): Promise<ClusterHost> => (this.rng.chance(0.8) ? this.holder(name) : this.host());
    this.lastOp = `${kind} ${name} (under way)`;
    let line: string;
    switch (kind) {
      case 'define': case 'create': {
        const h = this.host();
        line = `${kind} ${name} on ${h.id} → ${await this.call(h, kind, name, (api) => api[kind]({ definition: this.w.definition(name, this.diskOf(name)) }))}`;
        break;
      }
      case 'start': case 'destroy': case 'undefine': {
        const h = await aim();
        line = `${kind} ${name} on ${h.id} → ${await this.call(h, kind, name, (api) => api[kind]({ name }))}`;
        break;
      }
      case 'race-define': {
        const hosts = [...this.w.hosts].sort(() => this.rng.next() - 0.5).slice(0, this.rng.int(2, 3));
        const codes = await Promise.all(hosts.map((h) => this.call(h, kind, name, (api) => api.define({ definition: this.w.definition(name, this.diskOf(name)) }))));
        if (codes.filter((c) => c === 'ok').length > 1) this.violation('R1', `defines of ${name} raced on ${hosts.map((h) => h.id).join(', ')}: more than one won (${codes.join(', ')})`);
        line = `race-define ${name} on ${hosts.map((h, i) => `${h.id}→${codes[i]}`).join(' ')}`;
        break;
      }
      case 'migrate':
        line = await this.migrate(name);
        break;
      case 'race-disk': {
        // Every name of one disk started at once on its host (or created on a random host).
        const disk = this.diskOf(name);
        const sharing = this.names.filter((n) => this.diskOf(n) === disk);
        const parts = await Promise.all(sharing.map(async (n) => {
          const owner = await this.holder(n);
          const listed = (await owner.list(5000))?.some((d) => d.name === n) === true;
          const code = listed
            ? await this.call(owner, kind, n, (api) => api.start({ name: n }))
            : await this.call(owner, kind, n, (api) => api.create({ definition: this.w.definition(n, disk) }));
          return `${listed ? 'start' : 'create'} ${n}@${owner.id}→${code}`;
        }));
        line = `race-disk ${parts.join(' ')}`;
        break;
      }
    }
    this.lastOp = line;
    this.note(`step ${this.step}: ${line}`);
  }

  /**
   * `virtq migrate NAME --to-host HOST` as the CLI does it: both ends found in etcd, the source's
   * virtqemud migrating to the destination's, a persistent VM's definition moving with it.
   * Returns once the source has no job left (a killed client does not stop the migration).
   */
  private async migrate(name: string): Promise<string> {
    const ran = this.w.qemus().find((q) => q.name === name);
    const from = ran?.host ?? (await this.holder(name)).id;
    const others = this.w.hosts.filter((h) => h.id !== from);
    // Mostly to another host; sometimes to its own (which must be refused).
    const to = this.rng.chance(0.9) ? this.rng.pick(others) : this.host();
    this.r.migrations++;
    let route: Awaited<ReturnType<typeof routeMigration>>;
    try {
      route = await routeMigration(parseClusterUri(this.w.etcd.uri(this.w.prefix)), name, to.id, clock);
    } catch (err) {
      const code = VirtqError.from(err).code;
      count(this.r.outcomes, `migrate:${code}`);
      return `migrate ${name} ${from}→${to.id} → ${code} (route)`;
    }
    const src = this.w.hosts.find((h) => h.id === route.from.host) ?? this.host();
    if (ran !== undefined) this.migratedRunning.add(name);
    this.inFlight.push({ name, from: route.from.host, to: route.to.host });
    const persistent = await src.api().then((api) => api.lookupByName({ name })).then((r) => r.persistent, () => false);
    const code = await this.call(src, 'migrate', name, (api) => api.migrate({ name, destUri: route.toUri, live: true, ...(persistent ? { persistent: true, undefineSource: true } : {}) }));
    await jobOver(src, name);
    return `migrate ${name} ${route.from.host}→${route.to.host}${persistent ? ' (persistent)' : ''} → ${code}`;
  }

  // --- invariants ------------------------------------------------------------------------

  /** S1–S3 at one instant. */
  private sample(): void {
    for (const p of instantProblems(this.w.qemus(), this.w.liveLeases(), this.inFlight)) this.violation(p.invariant, p.seen);
  }

  /** C1–C3 within the bound, then M1 for the VMs this step migrated; the step's migrations are then over. */
  private async converged(when: string): Promise<void> {
    const settle = async (check: () => Promise<Problem[]>): Promise<boolean> => {
      const { problems, tookMs } = await converge(async () => (await check()).map((p) => `${p.invariant}\u0000${p.seen}`), this.o.convergeMs);
      this.r.maxConvergeMs = Math.max(this.r.maxConvergeMs, tookMs);
      for (const p of problems) {
        const [invariant, seen] = p.split('\u0000') as [string, string];
        this.violation(invariant, `${when}: not converged within ${this.o.convergeMs} ms: ${seen}`);
      }
      if (problems.length === 0) this.note(`  converged in ${Math.round(tookMs)} ms`);
      return problems.length === 0;
    };
    if (await settle(() => clusterProblems(this.w))) {
      const migrated = [...this.migratedRunning];
      if (migrated.length > 0) await settle(async () => (await Promise.all(migrated.map((n) => migratedProblems(this.w, n)))).flat());
    }
    this.inFlight = [];
    this.migratedRunning.clear();
    this.sample();
  }
}
