// Where the cluster chaos writes what it found (issue 20): one report file per seed with
// violations, rewritten (atomically) at each new violation, so a 30-minute run that a capture
// truncates — or a process that dies — still leaves every violation's full text: the seed, the
// step, the operation and fault under way, the invariant with what it expects and what was seen,
// and the world at that moment (each host's listing, etcd's claims, the live QEMUs and leases).
// At the end of a failing seed the trace and each host's log directory are kept beside it.
//
// The directory: $VIRTQ_CHAOS_REPORT_DIR, else <os tmpdir>/virtq-cluster-chaos; the loop prints it.
import { closeSync, cpSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What each invariant expects, for the report (the violation text says what was seen). */
export const EXPECTED: Readonly<Record<string, string>> = {
  S1: 'no VM name has a live QEMU on two hosts, nor two live QEMUs at all (a migration in flight may have its paused destination on the other end)',
  S2: 'no shared disk is open read-write by two live QEMUs (but the two ends of a migration in flight)',
  S3: 'no disk has two live exclusive lease holders in the lockspace',
  C1: 'within the converge bound: no name and no UUID is listed by two hosts',
  C2: 'within the converge bound: every active row has its live QEMU and shim, every live QEMU is listed active on its host',
  C3: "within the converge bound: etcd's names/ and uuids/ claims are exactly the hosts' listings, and every host has its hosts/ lease entry",
  M1: 'after a migration (successful or failed) of a running VM, within the converge bound: it runs on exactly one host (one live QEMU), that host lists it active and etcd names that host as its holder',
  Q1: 'during a quorum loss every host refuses a define with CLUSTER_UNAVAILABLE within 30 s, and no claiming call succeeds on it afterwards',
  Q2: 'VMs running when quorum went keep running (same QEMU pid) unless the schedule destroyed them',
  Q3: 'every host answers its listing while quorum is lost',
  R1: 'of a define raced on several hosts, at most one succeeds',
  E1: 'no call fails with INTERNAL, and the iteration itself runs to its end',
};

/** One violation with its context. */
export interface ViolationRecord {
  seed: number;
  step: number;
  /** The operation under way (or last done) in the step, as the trace writes it. */
  operation: string;
  fault: string;
  invariant: string;
  seen: string;
  /** When it was found (ISO time). */
  at: string;
  /** The world when it was found: listings, claims, QEMUs, leases. */
  world: string;
}

/** The directory reports go to (created on first use). */
export function reportDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['VIRTQ_CHAOS_REPORT_DIR'] ?? join(tmpdir(), 'virtq-cluster-chaos');
}

/** The report file of one seed. */
export class SeedReport {
  readonly file: string;
  private readonly records: ViolationRecord[] = [];

  constructor(private readonly dir: string, readonly seed: number, startedAt: Date) {
    this.file = join(dir, `seed-${seed}-${startedAt.toISOString().replace(/[:.]/g, '-')}.txt`);
  }

  get count(): number {
    return this.records.length;
  }

  /** Adds a violation and rewrites the file with all of them. */
  add(v: ViolationRecord): void {
    this.records.push(v);
    this.write();
  }

  /** Once the seed is over: the trace after the violations, and each host's logs beside the file. */
  finish(trace: readonly string[], logDirs: ReadonlyArray<{ host: string; dir: string }>): void {
    if (this.records.length === 0) return;
    const kept: string[] = [];
    for (const l of logDirs) {
      const dest = `${this.file.replace(/\.txt$/, '')}-logs/${l.host}`;
      try {
        cpSync(l.dir, dest, { recursive: true });
        kept.push(dest);
      } catch {
        // A host whose root is gone already has no logs to keep; the report says which were kept.
      }
    }
    this.write(['', '--- logs kept ---', ...kept, '', '--- trace ---', ...trace]);
  }

  private write(tail: string[] = []): void {
    mkdirSync(this.dir, { recursive: true });
    const text = [
      `cluster chaos seed ${this.seed}: ${this.records.length} violation(s)`,
      `reproduce: VIRTQ_CHAOS_SEED=${this.seed} VIRTQ_CHAOS_STEPS=<steps> npx vitest run test/chaos/cluster-chaos.test.ts`,
      ...this.records.flatMap((r, i) => [
        '', `=== violation ${i + 1}: ${r.invariant} at step ${r.step} (${r.at})`,
        `operation: ${r.operation}`, `fault:     ${r.fault}`,
        `expected:  ${EXPECTED[r.invariant] ?? '(see test/chaos/cluster-chaos.ts)'}`, `seen:      ${r.seen}`,
        '--- world at that moment ---', r.world,
      ]),
      ...tail, '',
    ].join('\n');
    // Atomic: a reader (or a crash) sees the previous report or this one, never half of one.
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
