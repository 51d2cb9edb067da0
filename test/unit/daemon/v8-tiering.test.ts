// A serving daemon lowers V8's interrupt budget at run time (daemon/v8-tiering.ts). What this
// rests on is checked against this Node's V8: the flag exists, and set at run time (not on the
// command line) it makes a function optimised after a fraction of the calls it takes by default.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DAEMON_INTERRUPT_BUDGET, DAEMON_TIER_UP_FLAG, tierUpSooner } from '../../../daemon/v8-tiering.js';

/** Calls until a small function is optimised, in a fresh node; `flag` is set at run time first when given. */
function callsUntilOptimised(flag?: string): number {
  // `run` is never optimised, so `work` is not inlined into it: `work` tiers up on its own budget.
  const script = `
    if (${JSON.stringify(flag ?? '')}) require('node:v8').setFlagsFromString(${JSON.stringify(flag ?? '')});
    function work(o) { return o.a + o.b; }
    function run() {
      let calls = 0;
      for (; calls < 100000; calls++) { work({ a: calls, b: 3 }); if (%GetOptimizationStatus(work) & 16) break; }
      return calls;
    }
    %NeverOptimizeFunction(run);
    process.stdout.write(String(run()));`;
  // Without concurrent recompilation the optimisation is done when the call that asked for it returns.
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return Number(out);
}

describe('tierUpSooner', () => {
  it('sets the interrupt budget flag, and nothing else', () => {
    const set: string[] = [];
    tierUpSooner((flags) => set.push(flags));
    expect(set).toEqual([`--interrupt-budget=${DAEMON_INTERRUPT_BUDGET}`]);
    expect(DAEMON_INTERRUPT_BUDGET).toBeLessThan(67584); // V8's own default in Node 20
  });

  it('names a flag this Node accepts', () => {
    // An unknown flag on the command line is refused: "bad option", exit 9.
    expect(() => execFileSync(process.execPath, [DAEMON_TIER_UP_FLAG, '-e', ''], { stdio: ['ignore', 'ignore', 'pipe'] })).not.toThrow();
  });

  it('set at run time, makes V8 optimise a function after a fraction of the calls it takes by default', () => {
    const byDefault = callsUntilOptimised();
    const lowered = callsUntilOptimised(DAEMON_TIER_UP_FLAG);
    expect(byDefault).toBeLessThan(100000); // optimised at all
    // ~5200 against ~640 on Node 20 (V8 11.3): 67584 / 8192 ≈ 8.
    expect(lowered * 4).toBeLessThan(byDefault);
  });
});
