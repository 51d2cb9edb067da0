// The shim's block-counter refresh skips a VM that waits for its incoming migration: its QEMU has
// moved no block yet, and once the stream has begun it answers a query only between its reads of
// it (bench/RESULTS.md, session 14). The same VM running is refreshed as before.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../protocol/index.js';
import { ShimMetrics, shimRegistry } from '../../../shim/metrics.js';
import { INCOMING_REASON } from '../../../shim/vm/migration-incoming.js';
import type { Vm } from '../../../shim/vm/vm.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function vmWithDisk(state: string, reason: string) {
  const seen = { stats: 0 };
  const def = { name: 'm1', uuid: '5f0c3a39-3bb4-4c6e-9d3e-6a3f0b1c2d4e', vcpus: 1, memoryMiB: 128, disks: [{ target: 'vda' }] };
  const vm = {
    def, state, reason, tainted: false,
    stats: () => ({ rssBytes: 0, uptimeSec: 0, cpuTimeSec: 0 }),
    disks: { stats: () => { seen.stats++; return Promise.resolve([{ target: 'vda', rdBytes: 1, wrBytes: 2, rdOps: 3, wrOps: 4 }]); } },
  };
  return { vm, seen };
}

describe('shim block-counter refresh', () => {
  it('does not query a QEMU waiting for its incoming migration', async () => {
    const { vm, seen } = vmWithDisk('paused', INCOMING_REASON);
    // ShimMetrics reads only def, state, reason, tainted, stats() and disks.stats() of the VM.
    const metrics = new ShimMetrics(shimRegistry(vm.def), vm as unknown as Vm, new FakeClock(), silentLogger());
    await metrics.refreshDisks();
    expect(seen.stats).toBe(0);
    vm.state = 'running';
    vm.reason = 'migrated';
    await metrics.refreshDisks();
    expect(seen.stats).toBe(1);
  });

  it('still refreshes a VM paused for another reason', async () => {
    const { vm, seen } = vmWithDisk('paused', 'user');
    const metrics = new ShimMetrics(shimRegistry(vm.def), vm as unknown as Vm, new FakeClock(), silentLogger());
    await metrics.refreshDisks();
    expect(seen.stats).toBe(1);
  });
});
