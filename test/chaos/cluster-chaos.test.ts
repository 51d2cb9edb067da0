// Cluster chaos (issue 20): three virtqemud hosts on a real three-member etcd, a seeded schedule
// of lifecycle calls, racing defines and shared-disk starts mixed with kill -9 of daemons and
// shims, etcd members SIGSTOPped (one, or two: quorum lost) and a virtqemud paused shorter than
// its TTL, and migrations between hosts (as `virtq migrate --to-host`); invariants in
// cluster-chaos.ts. Each failing seed's violations, with the world at that moment, are written to
// a report file under $VIRTQ_CHAOS_REPORT_DIR (default <tmpdir>/virtq-cluster-chaos), printed.
//
//   npx vitest run test/chaos/cluster-chaos.test.ts                          bounded: the seed below (part of npm test)
//   VIRTQ_CHAOS_SEED=1234 npx vitest run test/chaos/cluster-chaos.test.ts    one seed (VIRTQ_CHAOS_STEPS to change its length)
//   VIRTQ_CHAOS_MINUTES=30 npx vitest run test/chaos/cluster-chaos.test.ts   new seeds until the time is up, then a summary
//   VIRTQ_CHAOS_CONVERGE_MS (default 20000): the bound of C1–C3 and M1 after each step
import { describe, expect, it } from 'vitest';
import { runClusterChaos, type ClusterChaosOptions, type ClusterChaosReport } from './cluster-chaos.js';
import { reportDir } from './cluster-report.js';

const env = process.env;
const minutes = Number(env['VIRTQ_CHAOS_MINUTES'] ?? '0');
const opts = (steps: number): ClusterChaosOptions => ({
  steps, names: Number(env['VIRTQ_CHAOS_VMS'] ?? '4'), convergeMs: Number(env['VIRTQ_CHAOS_CONVERGE_MS'] ?? '20000'), ttlSec: 3, reportDir: reportDir(env),
  ...(env['VIRTQ_CHAOS_VERBOSE'] === '1' ? { log: (line: string) => process.stdout.write(`${line}\n`) } : {}),
});

function failure(r: ClusterChaosReport): string {
  return [`cluster chaos seed ${r.seed} broke ${r.violations.length} invariant(s); reproduce with VIRTQ_CHAOS_SEED=${r.seed} VIRTQ_CHAOS_STEPS=${r.steps} npx vitest run test/chaos/cluster-chaos.test.ts`,
    `full text (each violation with the hosts' listings and etcd's claims at the time): ${r.reportFile}`,
    ...r.violations, '--- trace ---', ...r.trace].join('\n');
}

const sum = (rs: ClusterChaosReport[], key: 'faults' | 'ops' | 'outcomes'): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of rs) for (const [k, n] of Object.entries(r[key])) out[k] = (out[k] ?? 0) + n;
  return out;
};

describe('cluster chaos', () => {
  if (minutes > 0) {
    it(`runs new seeds for ${minutes} minutes without a violation`, async () => {
      const end = Date.now() + minutes * 60_000;
      // Seeds of this suite start at 200000 (the other chaos suites use small seeds and Date.now() % 1e6).
      let seed = Number(env['VIRTQ_CHAOS_SEED'] ?? String(200_000 + (Date.now() % 100_000)));
      const reports: ClusterChaosReport[] = [];
      process.stdout.write(`cluster chaos: reports of failing seeds go to ${reportDir(env)}\n`);
      while (Date.now() < end) {
        const r = await runClusterChaos(seed++, opts(Number(env['VIRTQ_CHAOS_STEPS'] ?? '25')));
        reports.push(r);
        process.stdout.write(`cluster chaos seed ${r.seed}: ${r.steps} steps, faults ${JSON.stringify(r.faults)}, ${r.migrations} migrations, slowest converge ${Math.round(r.maxConvergeMs)} ms, ${r.violations.length} violations${r.violations.length === 0 ? '' : ` (report: ${r.reportFile})`}\n`);
        // Keep going: a 30-minute run reports every failing seed, not only the first.
        if (r.violations.length > 0) process.stdout.write(`${failure(r)}\n`);
      }
      const failed = reports.filter((r) => r.violations.length > 0);
      const ops = sum(reports, 'ops');
      process.stdout.write(`cluster chaos: ${reports.length} seeds (${reports[0]?.seed}–${reports.at(-1)?.seed}), ${reports.reduce((s, r) => s + r.steps, 0)} steps, ${Object.values(ops).reduce((s, n) => s + n, 0)} operations ${JSON.stringify(ops)}, faults ${JSON.stringify(sum(reports, 'faults'))}, ${reports.reduce((s, r) => s + r.migrations, 0)} migrations, outcomes ${JSON.stringify(sum(reports, 'outcomes'))}, slowest converge ${Math.round(Math.max(...reports.map((r) => r.maxConvergeMs)))} ms, ${failed.reduce((s, r) => s + r.violations.length, 0)} violations${failed.length === 0 ? '' : ` in seeds ${failed.map((r) => r.seed).join(', ')}; reports: ${failed.map((r) => r.reportFile).join(' ')}`}\n`);
      if (failed.length > 0) throw new Error(failed.map(failure).join('\n\n'));
    }, minutes * 60_000 + 600_000);
    return;
  }
  const seed = Number(env['VIRTQ_CHAOS_SEED'] ?? '211001');
  const steps = Number(env['VIRTQ_CHAOS_STEPS'] ?? '13');
  it(`seed ${seed}, ${steps} steps: no name or disk on two hosts, etcd's claims match the listings`, async () => {
    const r = await runClusterChaos(seed, opts(steps));
    if (r.violations.length > 0) throw new Error(failure(r));
    expect(Object.values(r.faults).reduce((s, n) => s + n, 0)).toBe(steps);
  }, 300_000);
});
