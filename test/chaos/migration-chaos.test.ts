// Migration chaos (issue 16): VMs moved back and forth between two virtqemud roots, mixed with
// kill -9 of daemons, shims and QEMU, domjobabort and stream cuts; invariants in migration-chaos.ts.
//
//   npx vitest run test/chaos/migration-chaos.test.ts                          bounded: the seed below (part of npm test)
//   VIRTQ_CHAOS_SEED=1234 npx vitest run test/chaos/migration-chaos.test.ts    one seed (VIRTQ_CHAOS_STEPS to change its length)
//   VIRTQ_CHAOS_MINUTES=30 npx vitest run test/chaos/migration-chaos.test.ts   new seeds until the time is up, then a summary
import { describe, expect, it } from 'vitest';
import { runMigrationChaos, type MigrationChaosOptions, type MigrationChaosReport } from './migration-chaos.js';

const env = process.env;
const minutes = Number(env['VIRTQ_CHAOS_MINUTES'] ?? '0');
const opts = (steps: number): MigrationChaosOptions => ({
  steps, vms: Number(env['VIRTQ_CHAOS_VMS'] ?? '2'), convergeMs: 10_000,
  ...(env['VIRTQ_CHAOS_VERBOSE'] === '1' ? { log: (line: string) => process.stdout.write(`${line}\n`) } : {}),
});

function failure(r: MigrationChaosReport): string {
  return [`migration chaos seed ${r.seed} broke ${r.violations.length} invariant(s); reproduce with VIRTQ_CHAOS_SEED=${r.seed} VIRTQ_CHAOS_STEPS=${r.steps} npx vitest run test/chaos/migration-chaos.test.ts`,
    ...r.violations, '--- trace ---', ...r.trace].join('\n');
}

describe('migration chaos', () => {
  if (minutes > 0) {
    it(`runs new seeds for ${minutes} minutes without a violation`, async () => {
      const end = Date.now() + minutes * 60_000;
      let seed = Number(env['VIRTQ_CHAOS_SEED'] ?? String(Date.now() % 1_000_000));
      const reports: MigrationChaosReport[] = [];
      while (Date.now() < end) {
        const r = await runMigrationChaos(seed++, opts(Number(env['VIRTQ_CHAOS_STEPS'] ?? '12')));
        reports.push(r);
        if (r.violations.length > 0) throw new Error(failure(r));
      }
      const faults: Record<string, number> = {};
      for (const r of reports) for (const [k, n] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + n;
      process.stdout.write(`migration chaos: ${reports.length} seeds, ${reports.reduce((s, r) => s + r.steps, 0)} migrations, faults ${JSON.stringify(faults)}, 0 violations\n`);
    }, minutes * 60_000 + 600_000);
    return;
  }
  // Bounded for npm test: seed 16 draws, in 5 steps, domjobabort and kill -9 of the destination
  // QEMU (TCP) on one VM, then a plain migration, kill -9 of the destination shim (unix) and of the
  // source virtqemud (TCP, the migration completes) on the other: it goes there and back.
  const seed = Number(env['VIRTQ_CHAOS_SEED'] ?? '16');
  const steps = Number(env['VIRTQ_CHAOS_STEPS'] ?? '5');
  it(`seed ${seed}, ${steps} steps: no disk leased twice, no name claimed on two roots at once`, async () => {
    const r = await runMigrationChaos(seed, opts(steps));
    if (r.violations.length > 0) throw new Error(failure(r));
    expect(Object.values(r.faults).reduce((s, n) => s + n, 0)).toBe(steps);
  }, 900_000);
});
