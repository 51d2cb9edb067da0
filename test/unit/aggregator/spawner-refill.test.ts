// The warm pool's refill after a start (aggregator/spawner.ts): it waits REFILL_AFTER_START_MS
// after the start settled, because spawning it blocks virtqemud's event loop until the new
// process has exec'd, and at once that fell on the caller's next call (issue 15, session 18).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeDefinition, rootLayout } from '../../../protocol/index.js';
import { processShimSpawner, REFILL_AFTER_START_MS, type ShimSpawner } from '../../../aggregator/spawner.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const UUID = '00000000-0000-4000-8000-0000000000a1';

describe('the warm pool refill after a start', () => {
  let root: TmpRoot;
  let spawner: ShimSpawner | undefined;

  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => {
    spawner?.close?.();
    root.remove();
  });

  it('spawns no refill until REFILL_AFTER_START_MS after the start, then one', async () => {
    const layout = rootLayout(root.path('r'));
    mkdirSync(layout.log, { recursive: true });
    // A stand-in shim: reads its start to EOF, prints a ready line, exits.
    const shim = root.path('shim.sh');
    writeFileSync(shim, `#!/bin/sh\ncat >/dev/null\necho '{"ok":true,"name":"r1","uuid":"${UUID}","state":"running","socket":"/nonexistent/r1.sock","shimPid":'$$'}'\n`);
    chmodSync(shim, 0o755);
    const clock = new FakeClock();
    spawner = processShimSpawner(shim, ['--root', root.path('r')], layout, process.env, clock, 10_000, 1);
    spawner.warm?.();
    await clock.advance(0);
    const [warm] = spawner.pool?.().idle ?? [];
    expect(warm).toBeGreaterThan(0);

    const up = await spawner.start(normalizeDefinition({ name: 'r1', memoryMiB: 32, vcpus: 1 }, () => UUID), { paused: false });
    expect(up.shimPid).toBe(warm);
    // Settled: still no new shim, even once every timer due now has run.
    await clock.advance(0);
    expect(spawner.pool?.().idle).toEqual([]);
    await clock.advance(REFILL_AFTER_START_MS - 1);
    expect(spawner.pool?.().idle).toEqual([]);
    await clock.advance(1);
    const refill = spawner.pool?.().idle ?? [];
    expect(refill).toHaveLength(1);
    expect(refill[0]).not.toBe(warm);
  });
});
