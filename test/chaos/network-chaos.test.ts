// The network part of the chaos suite: seeded schedules of VM starts and destroys on a
// virtnetworkd network, port create/delete races and kill -9 of VMs and of virtnetworkd, each
// ending with the invariants of network-chaos.ts (no MAC or port shared, no tap leaked).
//
//   npx vitest run test/chaos/network-chaos.test.ts                      bounded: the seeds below (part of npm test)
//   VIRTQ_CHAOS_SEED=1234 npx vitest run test/chaos/network-chaos.test.ts one seed (VIRTQ_CHAOS_STEPS to change its length)
//   VIRTQ_CHAOS_MINUTES=30 npx vitest run test/chaos/network-chaos.test.ts  new seeds until the time is up, then a summary
import { describe, expect, it } from 'vitest';
import { runNetworkIteration, type NetChaosReport } from './network-chaos.js';

/** Bounded for npm test: seed 6 draws every kind of step (VM start, destroy and crash, both races, kill -9 of virtnetworkd) in 8. */
const SEEDS: Array<{ seed: number; steps: number }> = [{ seed: 6, steps: 8 }];

function failure(r: NetChaosReport): string {
  return [
    `network chaos seed ${r.seed} broke ${r.violations.length} invariant(s); reproduce with VIRTQ_CHAOS_SEED=${r.seed} VIRTQ_CHAOS_STEPS=${r.steps} npx vitest run test/chaos/network-chaos.test.ts`,
    ...r.violations, '--- trace ---', ...r.trace,
  ].join('\n');
}

const minutes = Number(process.env['VIRTQ_CHAOS_MINUTES'] ?? '0');

describe('network chaos', () => {
  if (minutes > 0) {
    it(`runs new seeds for ${minutes} minutes without a violation`, async () => {
      const end = Date.now() + minutes * 60_000;
      let seed = Number(process.env['VIRTQ_CHAOS_SEED'] ?? String(Date.now() % 1_000_000));
      const steps = Number(process.env['VIRTQ_CHAOS_STEPS'] ?? '30');
      const ops: Record<string, number> = {};
      let seeds = 0;
      while (Date.now() < end) {
        const r = await runNetworkIteration(seed++, steps);
        seeds++;
        for (const [k, n] of Object.entries(r.ops)) ops[k] = (ops[k] ?? 0) + n;
        process.stdout.write(`network chaos seed ${r.seed}: ${steps} steps in ${(r.ms / 1000).toFixed(1)} s, ${r.violations.length} violations\n`);
        if (r.violations.length > 0) expect.fail(failure(r));
      }
      process.stdout.write(`network chaos: ${seeds} seeds, ${seeds * steps} steps, ops ${JSON.stringify(ops)}, 0 violations\n`);
    }, minutes * 60_000 + 600_000);
    return;
  }
  const only = process.env['VIRTQ_CHAOS_SEED'];
  const seeds = only === undefined ? SEEDS : [{ seed: Number(only), steps: Number(process.env['VIRTQ_CHAOS_STEPS'] ?? '30') }];
  for (const { seed, steps } of seeds) {
    it(`seed ${seed} (${steps} steps)`, async () => {
      const r = await runNetworkIteration(seed, steps);
      process.stdout.write(`network chaos seed ${seed}: ${steps} steps in ${(r.ms / 1000).toFixed(1)} s, ops ${JSON.stringify(r.ops)}, ${r.violations.length} violations\n`);
      if (process.env['VIRTQ_CHAOS_VERBOSE'] === '1') process.stdout.write(`${r.trace.join('\n')}\n`);
      if (r.violations.length > 0) expect.fail(failure(r));
    }, 180_000);
  }
});
