// An upgrade asked of a shim that is still bringing its VM up (a successor re-attaching to QEMU
// serves its admin socket already) waits for the bring-up, bounded; one asked of a shim that is
// exiting or was replaced refuses at once and says where the VM is served (CI, session 12: both
// refused with "only while the VM is running or paused (it is running)").
import { describe, expect, it } from 'vitest';
import type { DomainState } from '../../../protocol/index.js';
import { awaitUpgradable, type ReadinessParts } from '../../../shim/upgrade/readiness.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function parts(state: DomainState, qemuPid: number | undefined, stopping = false): ReadinessParts & { bringUp(pid: number): void } {
  const clock = new FakeClock();
  let upNow: () => void = () => undefined;
  const p = {
    vm: { def: { name: 'vm1' }, state, qemuPid },
    clock, stopping: () => stopping,
    up: new Promise<void>((resolve) => { upNow = resolve; }),
    bringUp(pid: number) { p.vm.qemuPid = pid; upNow(); },
  };
  return p;
}

describe('shim upgrade readiness', () => {
  it('waits for a successor that restored the state file but has not re-attached to QEMU yet, then goes on', async () => {
    const p = parts('running', undefined);
    let settled: unknown = 'pending';
    const done = awaitUpgradable(p, 30_000).then(() => 'ok', (e: unknown) => e);
    void done.then((v) => { settled = v; });
    await (p.clock as FakeClock).advance(5_000);
    expect(settled).toBe('pending');
    p.bringUp(4242);
    await (p.clock as FakeClock).advance(0);
    expect(await done).toBe('ok');
  });

  it('refuses with what to do when the bring-up does not finish within the bound', async () => {
    const p = parts('running', undefined);
    const done = awaitUpgradable(p, 30_000).catch((e: unknown) => e);
    await (p.clock as FakeClock).advance(30_000);
    await expect(done).resolves.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringMatching(/has not finished bringing the VM up within 30000 ms \(it is running, no QEMU attached yet\).*virtq dominfo vm1/) });
  });

  it('refuses at once, naming where the VM is served, when the shim is exiting or handed the VM over', async () => {
    const p = parts('running', 4242, true);
    await expect(awaitUpgradable(p, 30_000)).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('no longer serves VM "vm1"') });
    expect((p.clock as FakeClock).pending()).toBe(0);
  });

  it('refuses a VM that is up but neither running nor paused with its state', async () => {
    const p = parts('shutoff', undefined);
    p.bringUp(4242);
    p.vm.qemuPid = undefined;
    await expect(awaitUpgradable(p, 30_000)).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('only while the VM is running or paused (it is shutoff)') });
  });
});
