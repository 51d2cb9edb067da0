// A VM's state on a full disk (chaos seed 27270): the shims' state directory keeps a space reserve
// that a state write gives up when nothing else is left, so how a VM ended is recorded at once and
// a virtqemud restarted while the disk is still full lists that end. And when even the reserve was
// gone (chaos seed 32209), the end its shim journaled is written into its state file by the next
// virtqemud's reconciliation, so that a later restart does not list the VM again.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SPACE_RESERVE_BYTES } from '../../daemon/space-reserve.js';
import { journalEvents } from '../../daemon/journal-events.js';
import { journalDir } from '../../drivers/journal/segments.js';
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

  it('a transient VM whose crash its shim journaled but could not write down: the next virtqemud writes it down, and a later one does not list the VM again', async () => {
    h = new DaemonHarness(tmpfsRoot('32m'));
    const shims = join(h.layout.runtime, 'shims');
    const stateOf = () => JSON.parse(readFileSync(join(shims, 'full2.json'), 'utf8')) as { state: string; reason: string; shimPid: number; qemuPid?: number };
    const listed = async () => (await (await h.client()).api.listDomains({})).domains.map((d) => `${d.name}:${d.state}/${d.reason}`);
    let daemon = await h.startDaemon(['--reconcile-ms', '200']);
    await (await h.client()).api.create({ definition: idleDef('full2') });
    const { shimPid, qemuPid } = stateOf();

    // virtqemud away; no room left for the shim's state write, the reserve given up to an earlier one.
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    unlinkSync(join(shims, '.space-reserve'));
    const filler = h.root.path('filler');
    spawnSync('sh', ['-c', `cat /dev/zero > ${filler}`]);
    process.kill(qemuPid ?? 0, 'SIGKILL');
    // Its journal's last page has room: the crash is journaled; the state file still says running.
    await expect.poll(() => journalEvents(journalDir(h.layout.state, 'full2'), {}).events.map((e) => `${e.event}/${e.reason}`), { timeout: 10_000 })
      .toContain('crashed/signal-SIGKILL');
    expect(stateOf()).toMatchObject({ state: 'running' });

    // The shim cannot re-register with the next virtqemud (stopped, then killed once that one has
    // adopted it), so that virtqemud learns the end from reconciliation alone.
    process.kill(shimPid, 'SIGSTOP');
    unlinkSync(filler);
    daemon = await h.startDaemon(['--reconcile-ms', '200']);
    process.kill(shimPid, 'SIGKILL');
    await expect.poll(listed, { timeout: 10_000 }).toEqual([]);
    expect(stateOf()).toMatchObject({ state: 'crashed', reason: 'signal-SIGKILL' });
    expect(stateOf().qemuPid).toBeUndefined();

    // Before, the file still said running, and the next virtqemud listed the VM again: crashed, lost while it was down.
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    await h.startDaemon(['--reconcile-ms', '200']);
    expect(await listed()).toEqual([]);
  });
});
