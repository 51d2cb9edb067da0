// A VM's state on a full disk (chaos seed 27270): the shims' state directory keeps a space reserve
// that a state write gives up when nothing else is left, so how a VM ended is recorded at once and
// a virtqemud restarted while the disk is still full lists that end.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SPACE_RESERVE_BYTES } from '../../daemon/space-reserve.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpfsRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

describe('a VM on a full disk', () => {
  let h: DaemonHarness;
  afterEach(async () => { await h.cleanup(); });

  it('records its end in the space reserve, a restarted virtqemud lists it, and the reserve is made again once there is room', async () => {
    h = new DaemonHarness(tmpfsRoot('32m'));
    const reserve = join(h.layout.runtime, 'shims', '.space-reserve');
    const daemon = await h.startDaemon(['--reconcile-ms', '200']);
    expect(statSync(reserve).size).toBe(SPACE_RESERVE_BYTES);
    const { api } = await h.client();
    await api.define({ definition: idleDef('full1') });
    await api.start({ name: 'full1' });

    const filler = h.root.path('filler');
    spawnSync('sh', ['-c', `cat /dev/zero > ${filler}`]);
    // Only the reserve is left to give: the destroy's end is recorded at once, not after the
    // shim's 30 s wait for space.
    await expect(api.destroy({ name: 'full1' })).resolves.toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    const state = JSON.parse(readFileSync(join(h.layout.runtime, 'shims', 'full1.json'), 'utf8')) as { state: string; reason: string };
    expect(state).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    expect(existsSync(reserve)).toBe(false);

    // Killed and restarted while the disk is still full: the end is still listed.
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    await h.startDaemon(['--reconcile-ms', '200']);
    const again = await h.client();
    expect(await again.api.lookupByName({ name: 'full1' })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });

    // Given up for good, the reserve would protect nothing the next time: made again once there is room.
    unlinkSync(filler);
    await expect.poll(() => existsSync(reserve) && statSync(reserve).size, { timeout: 5000 }).toBe(SPACE_RESERVE_BYTES);
  });
});
