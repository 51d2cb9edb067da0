// The chaos suite (issue #8): seeded random schedules of operations and faults against a real
// virtqemud, its shims and QEMU under a tmpfs root, each ending with the invariants of chaos.ts;
// beside them (issue #13) virtstoraged and virtsecretd, their volumes and secrets, kill -9 of
// either, with the invariants of storage-invariants.ts.
//
//   npx vitest run test/chaos                            bounded: the seeds below (part of npm test)
//   VIRTQ_CHAOS_SEED=1234 npx vitest run test/chaos      one seed again (VIRTQ_CHAOS_STEPS to change its length)
//   VIRTQ_CHAOS_MINUTES=30 npx vitest run test/chaos     loop new seeds until the time is up, then print a summary
//   scripts/chaos.sh 30                                  the same, after a build
import { afterAll, describe, expect, it } from 'vitest';
import { runIteration, type ChaosOptions, type IterationReport } from './chaos.js';
import { openWorlds } from './world.js';

/**
 * Seeds that run on every `npm test`, with what each one catches when its fix is taken out (the
 * schedule of a seed does not depend on its length, only on this generator: seeds that found bugs
 * under earlier versions of it, listed in the issue note, now draw other schedules). Bugs that
 * need a narrow race have a deterministic test of their own instead, named in each test (the
 * races the storage schedule found: test/unit/drivers/storage/dir-pool.test.ts and
 * test/integration/storaged-chaos-regressions.test.ts).
 */
const SEEDS: Array<{ seed: number; steps: number; found?: string }> = [
  { seed: 1, steps: 60, found: 'a re-registered shim lost its QEMU pid; a second restart forgot how a VM ended' },
  { seed: 6, steps: 60, found: 'the same two' },
  { seed: 7, steps: 60, found: 'a second restart forgot how a VM ended' },
];

const env = process.env;
const minutes = Number(env['VIRTQ_CHAOS_MINUTES'] ?? '0');
const base: Omit<ChaosOptions, 'steps'> = {
  names: Number(env['VIRTQ_CHAOS_NAMES'] ?? '8'),
  tmpfsSize: env['VIRTQ_CHAOS_TMPFS'] ?? '64m',
  convergeMs: 10_000,
  ...(env['VIRTQ_CHAOS_VERBOSE'] === '1' ? { log: (line: string) => process.stdout.write(`${line}\n`) } : {}),
};

function failure(r: IterationReport): string {
  return [
    `chaos seed ${r.seed} broke ${r.violations.length} invariant(s); reproduce with VIRTQ_CHAOS_SEED=${r.seed} VIRTQ_CHAOS_STEPS=${r.steps} npx vitest run test/chaos`,
    ...r.violations,
    r.keptLogs === undefined ? '' : `logs and trace kept in ${r.keptLogs}`,
    '--- trace (last 60 lines) ---',
    ...r.trace.slice(-60),
  ].join('\n');
}

function summary(reports: IterationReport[], ms: number): string {
  const faults: Record<string, number> = {};
  const ops: Record<string, number> = {};
  const errors: Record<string, number> = {};
  for (const r of reports) {
    for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.ops)) ops[k] = (ops[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  }
  const fmt = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  const violations = reports.flatMap((r) => r.violations);
  const notes = reports.flatMap((r) => r.notes);
  return [
    `chaos summary: ${reports.length} iterations in ${(ms / 60_000).toFixed(1)} min, ${reports.reduce((s, r) => s + r.steps, 0)} steps`,
    `  seeds: ${reports.map((r) => r.seed).join(' ')}`,
    `  operations: ${fmt(ops)}`,
    `  faults injected: ${fmt(faults)}`,
    `  outcomes: ${fmt(errors)}`,
    `  invariant violations: ${violations.length}`,
    ...violations.map((v) => `    ${v}`),
    ...(notes.length === 0 ? [] : [`  notes: ${notes.length}`, ...notes.map((n) => `    ${n}`)]),
  ].join('\n');
}

describe('chaos', () => {
  // An iteration cleans up after itself; this is for one cut short by a timeout.
  afterAll(async () => { for (const w of [...openWorlds]) await w.dispose(); });
  if (minutes > 0) {
    it(`holds its invariants for ${minutes} minutes of new seeds`, async () => {
      const start = Date.now();
      const steps = Number(env['VIRTQ_CHAOS_STEPS'] ?? '60');
      let seed = Number(env['VIRTQ_CHAOS_SEED'] ?? String(Date.now() % 1_000_000));
      const reports: IterationReport[] = [];
      while (Date.now() - start < minutes * 60_000) {
        const r = await runIteration(seed, { ...base, steps, deadlineMs: 300_000 });
        reports.push(r);
        process.stdout.write(`chaos seed ${seed}: ${r.steps} steps in ${(r.ms / 1000).toFixed(1)} s, ${r.violations.length} violations\n`);
        if (r.violations.length > 0) process.stdout.write(`${failure(r)}\n`);
        seed++;
      }
      process.stdout.write(`${summary(reports, Date.now() - start)}\n`);
      expect(reports.flatMap((r) => r.violations)).toEqual([]);
    }, minutes * 60_000 + 600_000);
    return;
  }
  const only = env['VIRTQ_CHAOS_SEED'];
  const seeds = only === undefined ? SEEDS : [{ seed: Number(only), steps: Number(env['VIRTQ_CHAOS_STEPS'] ?? '40') }];
  for (const { seed, steps, found } of seeds) {
    it(`seed ${seed} (${steps} steps)${found === undefined ? '' : `: ${found}`}`, async () => {
      // Under the test's own timeout, so a hang is reported with its trace rather than cut short.
      const r = await runIteration(seed, { ...base, steps, deadlineMs: 200_000 });
      process.stdout.write(`${summary([r], r.ms)}\n`);
      if (r.violations.length > 0) expect.fail(failure(r));
    }, 240_000);
  }
});
