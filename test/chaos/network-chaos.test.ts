// The network part of the chaos suite: seeded schedules of VM starts and destroys on a
// virtnetworkd network, port create/delete races and kill -9 of VMs and of virtnetworkd, each
// ending with the invariants of network-chaos.ts (no MAC or port shared, no tap leaked).
//
//   npx vitest run test/chaos/network-chaos.test.ts                      bounded: the seeds below (part of npm test)
//   VIRTQ_CHAOS_SEED=1234 npx vitest run test/chaos/network-chaos.test.ts one seed (VIRTQ_CHAOS_STEPS to change its length)
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

describe('network chaos', () => {
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
