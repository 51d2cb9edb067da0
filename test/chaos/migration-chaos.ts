// Migration chaos (issue 16): VMs moved back and forth between two virtqemud roots that share one
// lockspace, by a seeded schedule, mixed with the faults of chaos.ts that can hit a migration —
// kill -9 of either virtqemud, of the source or the destination shim, of the destination QEMU —
// and with domjobabort and a cut of the stream (TCP, both ends reset). Invariants:
//   M1. no disk is leased twice: at every sample (every 50 ms while a migration is in flight, and
//       after each step) each VM's disk has at most one holder record, and it names a live QEMU
//       of that VM;
//   M2. no name is claimed on two roots at once: at every sample no VM runs on both roots, and
//       once a step has settled (within the chaos bound) each VM is listed on exactly one root,
//       running, with exactly one live QEMU, which holds its lease (runsOnlyOn).
// During a migration the destination lists the VM paused (its name claimed first, by design);
// that is not a second claim on a running VM, so M2 during flight asks only "never running twice".
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { ACTIVE_STATES, VirtqError, delay, systemClock, type DomainRow, type JobInfo } from '../../protocol/index.js';
import { MigrationWorld, runsOnlyOn } from '../helpers/migration-world.js';
import { guestConsole } from '../helpers/guest-console.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import type { DaemonHarness } from '../helpers/daemon-harness.js';
import { Rng } from './rng.js';

const clock = systemClock();
/** The longest a migration capped at 1 MiB/s may go on after its client's call failed. */
const JOB_WAIT_MS = 300_000;

/** The faults a migration step may carry. */
const FAULTS = {
  none: 4, abort: 1, 'kill-dst-qemu': 1, 'kill-dst-shim': 1, 'kill-src-shim': 1, 'kill-dst-daemon': 1, 'kill-src-daemon': 1, 'cut-stream': 1,
} as const;
type Fault = keyof typeof FAULTS;

/** What a migration chaos iteration did and found. */
export interface MigrationChaosReport {
  seed: number;
  steps: number;
  faults: Record<string, number>;
  outcomes: Record<string, number>;
  violations: string[];
  trace: string[];
}

/** How one iteration runs. */
export interface MigrationChaosOptions {
  steps: number;
  /** How many VMs move about (each the Linux test guest with one disk). */
  vms: number;
  /** How long a step may take to settle. */
  convergeMs: number;
  log?: (line: string) => void;
}

interface Guest { name: string; uuid: string; side: 'src' | 'dst' }

/** Runs one seeded iteration in a fresh pair of roots; never throws for a broken invariant (it reports it). */
export async function runMigrationChaos(seed: number, o: MigrationChaosOptions): Promise<MigrationChaosReport> {
  const rng = new Rng(seed);
  const w = new MigrationWorld();
  const r: MigrationChaosReport = { seed, steps: o.steps, faults: {}, outcomes: {}, violations: [], trace: [] };
  const note = (line: string): void => { r.trace.push(line); o.log?.(line); };
  try {
    await w.src.startDaemon();
    await w.dst.startDaemon();
    const guests: Guest[] = [];
    for (let i = 0; i < o.vms; i++) {
      const def = w.guest(`mc${seed}-${i}`, w.disk(`disk${i}.img`));
      const home = rng.chance(0.5) ? 'src' : 'dst';
      await (await w.api(home === 'src' ? w.src : w.dst)).create({ definition: def });
      const con = await guestConsole(await w.connection(home === 'src' ? w.srcUri : w.dstUri), def.name);
      await con.serial.waitFor('GUEST-READY', 90_000);
      con.close();
      guests.push({ name: def.name, uuid: def.uuid, side: home });
    }
    for (let step = 0; step < o.steps; step++) {
      const g = rng.pick(guests);
      const fault = rng.weighted(FAULTS);
      const tcp = rng.chance(0.5);
      // Only a TCP stream can be cut from outside the two QEMUs (ss -K).
      const transport = tcp || fault === 'cut-stream' ? 'tcp' : 'unix';
      r.faults[fault] = (r.faults[fault] ?? 0) + 1;
      note(`step ${step}: ${g.name} ${g.side}→${g.side === 'src' ? 'dst' : 'src'} over ${transport}, fault ${fault}`);
      const outcome = await migrationStep(w, g, fault, transport, rng, (v) => r.violations.push(`step ${step}: ${v}`));
      r.outcomes[outcome] = (r.outcomes[outcome] ?? 0) + 1;
      // M2 after the step: the VM runs on exactly one side, the other has nothing of it.
      const side = await settledSide(w, g, o.convergeMs);
      if (side === undefined) r.violations.push(`step ${step}: ${g.name} does not run on exactly one root within ${o.convergeMs} ms: ${await why(w, g)}`);
      else g.side = side;
      for (const other of guests) sampleLeases(w, other, (v) => r.violations.push(`step ${step}: ${v}`));
      note(`  → ${outcome}; ${g.name} now on ${g.side}`);
      if (r.violations.length > 0) break;
    }
  } catch (err) {
    r.violations.push(`the iteration itself failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await w.cleanup();
  }
  return r;
}

/** One migration of `g` with `fault` injected; returns how it ended (the call's error code, or ok). */
async function migrationStep(w: MigrationWorld, g: Guest, fault: Fault, transport: 'unix' | 'tcp', rng: Rng, violation: (v: string) => void): Promise<string> {
  const [from, to] = g.side === 'src' ? [w.src, w.dst] : [w.dst, w.src];
  const api = await w.api(from);
  const toUri = g.side === 'src' ? w.dstUri : w.srcUri;
  // A fault is meant to land mid-transfer: a capped rate keeps the transfer going for a while
  // (8–16 MiB/s: 7–13 s for the test guest's ~100 MiB, the fault injected as soon as memory moves).
  // A fault the source outlives (its virtqemud killed) lets the transfer run to its end, so a lower
  // cap only made the step wait (1–4 MiB/s until session 21: 30 s and more).
  const bandwidth = fault === 'none' ? undefined : rng.int(8, 16);
  const migrating = api.migrate({ name: g.name, destUri: toUri, live: true, transport, ...(bandwidth === undefined ? {} : { bandwidth }) })
    .then(() => 'ok', (err: unknown) => VirtqError.from(err).code);
  let done = false;
  void migrating.then(() => { done = true; });
  // Sample M1 and M2 while the migration is in flight.
  const sampler = (async () => {
    while (!done) {
      sampleLeases(w, g, violation);
      await runningTwice(w, g, violation);
      await delay(clock, 50);
    }
  })();
  if (fault !== 'none') {
    await transferring(api, g.name, () => done);
    if (!done) await inject(w, g, fault, from, to);
  }
  const outcome = await migrating;
  done = true;
  await sampler;
  await repair(w, g, fault, from);
  await jobOver(w, g, from);
  return outcome;
}

/**
 * Waits until the source has no migration job left: a client whose call failed (its virtqemud
 * killed) does not mean the migration stopped — the source shim drives it to its end — and the
 * settle bound starts from there.
 */
async function jobOver(w: MigrationWorld, g: Guest, from: DaemonHarness): Promise<void> {
  const end = clock.monotonic() + JOB_WAIT_MS;
  while (clock.monotonic() < end) {
    const info = await w.api(from).then((a) => a.getJobInfo({ name: g.name })).catch(() => undefined);
    if (info === undefined || info.type === 'none') return;
    await delay(clock, 200);
  }
}

async function inject(w: MigrationWorld, g: Guest, fault: Fault, from: DaemonHarness, to: DaemonHarness): Promise<void> {
  // Either virtqemud may be down (an earlier fault of this step): then there is nothing to aim at.
  const there = await w.api(to).then((a) => a.lookupByName({ name: g.name })).catch(() => undefined);
  const here = from.states().find((s) => s.name === g.name);
  switch (fault) {
    case 'abort': await w.api(from).then((a) => a.abortJob({ name: g.name })).catch(() => undefined); break;
    case 'kill-dst-qemu': kill(there?.qemuPid); break;
    case 'kill-dst-shim': kill(there?.shimPid); break;
    case 'kill-src-shim': kill(here?.shimPid); break;
    case 'kill-dst-daemon': to.daemons.at(-1)?.kill('SIGKILL'); break;
    case 'kill-src-daemon': from.daemons.at(-1)?.kill('SIGKILL'); break;
    case 'cut-stream': if (there?.qemuPid !== undefined) cutStreamOf(there.qemuPid); break;
    case 'none': break;
  }
}

/** Puts back what the fault took away, as an operator (or systemd) would: daemons restarted, a lost shim re-attached. */
async function repair(w: MigrationWorld, g: Guest, fault: Fault, from: DaemonHarness): Promise<void> {
  for (const h of [w.src, w.dst]) {
    const last = h.daemons.at(-1);
    // A daemon this step killed may not have been reaped yet: wait for its exit, then restart it.
    if (last !== undefined && last.killed && last.exitCode === null && last.signalCode === null) await new Promise((resolve) => last.once('exit', resolve));
    if (last !== undefined && (last.exitCode !== null || last.signalCode !== null)) await h.startDaemon();
  }
  if (fault === 'kill-src-shim') {
    // As after any shim crash: a successor takes the VM over if its QEMU still runs.
    const shim = spawn(process.execPath, [SHIM_BIN, '--root', from.root.dir, '--attach', g.name], { stdio: 'ignore', detached: true });
    await new Promise<void>((resolve) => { shim.once('exit', () => resolve()); clock.setTimeout(resolve, 5000); });
    shim.unref();
  }
}

function kill(pid: number | undefined): void {
  if (pid === undefined) return;
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
}

/** Resets both ends of the TCP stream of the destination QEMU `pid` (no-op for a unix stream). */
function cutStreamOf(pid: number): void {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.includes(`pid=${pid},`));
  const port = /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:\d+/.exec(line ?? '')?.[1];
  if (port !== undefined) execFileSync('ss', ['-K', '-tn', `( sport = :${port} or dport = :${port} )`]);
}

/** Waits until memory moves (or the migration is over already). */
async function transferring(api: { getJobInfo(a: { name: string }): Promise<JobInfo> }, name: string, over: () => boolean): Promise<void> {
  const end = clock.monotonic() + 60_000;
  while (!over() && clock.monotonic() < end) {
    const info = await api.getJobInfo({ name }).catch(() => undefined);
    if (info?.status === 'active' && info.transferredBytes > 0) return;
    await delay(clock, 50);
  }
}

/** M1 at one instant: at most one holder record for `g`, naming a live QEMU of it. */
function sampleLeases(w: MigrationWorld, g: Guest, violation: (v: string) => void): void {
  const held = w.leases().filter((l) => l.uuid === g.uuid);
  if (held.length > 1) violation(`${g.name}'s disk is leased ${held.length} times: ${JSON.stringify(held)}`);
}

/**
 * A root's listing, or nothing while its virtqemud is down: a fault of the step may have killed
 * it, and connecting then fails before any call could.
 */
async function listOn(w: MigrationWorld, h: DaemonHarness): Promise<DomainRow[]> {
  try {
    return (await (await w.api(h)).listDomains({})).domains;
  } catch {
    return [];
  }
}

/** M2 during flight: never running on both roots. */
async function runningTwice(w: MigrationWorld, g: Guest, violation: (v: string) => void): Promise<void> {
  const rows = await Promise.all([w.src, w.dst].map(async (h) => (await listOn(w, h)).find((d) => d.name === g.name)));
  if (rows.every((d) => d?.state === 'running')) violation(`${g.name} is listed running on both roots at once`);
}

async function settledSide(w: MigrationWorld, g: Guest, ms: number): Promise<'src' | 'dst' | undefined> {
  const end = clock.monotonic() + ms;
  while (clock.monotonic() < end) {
    for (const side of ['src', 'dst'] as const) if (await runsOnlyOn(w, g.name, g.uuid, side).catch(() => 'unreachable') === undefined) return side;
    await delay(clock, 200);
  }
  return undefined;
}

async function why(w: MigrationWorld, g: Guest): Promise<string> {
  const rows = await Promise.all([w.src, w.dst].map(async (h) => (await listOn(w, h)).filter((d) => d.name === g.name).map((d) => `${d.state}/${d.reason}${ACTIVE_STATES.has(d.state) ? ` qemu ${d.qemuPid}` : ''}`)));
  return `src ${JSON.stringify(rows[0])}, dst ${JSON.stringify(rows[1])}, live QEMUs ${JSON.stringify(w.liveQemus(g.uuid))}, leases ${JSON.stringify(w.leases().filter((l) => l.uuid === g.uuid))}`;
}
