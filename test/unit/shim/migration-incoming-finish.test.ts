// The destination's finish with a scripted monitor and a fake clock. Since session 15 a source may
// ask for it while this QEMU still loads the last state (PrepareResult.switchoverEarly): with
// QEMU's MIGRATION events flowing, nothing is asked of a loading QEMU (a query is answered only
// between its reads and takes its main loop from the load) until its `completed` event, which QEMU
// sends only once its run state has left inmigrate (session 23: `cont` follows it at once), or a
// slow fallback; without that event `cont` is sent only once query-status no longer says inmigrate
// (QEMU 7.2's `cont` during inmigrate would activate the images while the source still has them).
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../protocol/index.js';
import { INCOMING_REASON, MigrationIncoming } from '../../../shim/vm/migration-incoming.js';
import type { Vm } from '../../../shim/vm/vm.js';
import { MigrationWakeups } from '../../../shim/vm/migration-wakeups.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A claimed incoming VM whose QEMU says `status()` to query-status; every command is recorded. */
async function claimedVm(wakeups: MigrationWakeups | undefined, status: () => string, lease: { claim: boolean; acquire?: () => Promise<void> } = { claim: true }) {
  const clock = new FakeClock();
  const sent: string[] = [];
  const vm = {
    def: { name: 'in1' },
    state: 'paused',
    reason: INCOMING_REASON,
    qemuPid: 4242,
    expectedResume: undefined as string | undefined,
    jobs: { run: <T>(_name: string, f: () => Promise<T>): Promise<T> => f() },
    monitor: () => ({
      raw: (cmd: { execute: string }): Promise<unknown> => {
        sent.push(cmd.execute);
        if (cmd.execute === 'migrate-incoming') wakeups?.onEvent({ event: 'MIGRATION', data: { status: 'setup' } });
        return Promise.resolve(cmd.execute === 'query-migrate' ? { status: 'setup' } : {});
      },
      queryStatus: (): Promise<{ status: string; running: boolean }> => { sent.push('query-status'); return Promise.resolve({ status: status(), running: false }); },
      cont: (): Promise<void> => { sent.push('cont'); vm.state = 'running'; vm.reason = 'migrated'; return Promise.resolve(); },
    }),
  };
  const inc = new MigrationIncoming({
    // finish reads only state, reason, def, qemuPid, jobs, expectedResume and monitor() of the VM.
    vm: vm as unknown as Vm, leases: { acquireAllForRunning: () => { sent.push('leases'); return lease.acquire?.() ?? Promise.resolve(); } }, clock, log: silentLogger(),
    socketPath: join(tmpdir(), `virtq-incoming-finish-${process.pid}.sock`), transport: 'unix', ...(wakeups === undefined ? {} : { wakeups }),
  });
  inc.spawnListening(); // as the shim starts it over unix: QEMU listens with its events on from the start
  await inc.listen();
  if (lease.claim) await inc.claim();
  sent.length = 0;
  return { clock, sent, inc };
}

describe('incoming migration finish', () => {
  it('with claim: leases the disks first, then waits for the last state and runs the guest (session 22)', async () => {
    const { sent, inc } = await claimedVm(undefined, () => 'paused', { claim: false });
    await inc.finish({ claim: true });
    expect(sent).toEqual(['leases', 'query-status', 'cont']);
    expect(inc.ran).toBe(true);
  });

  it('with claim refused: LOCK_CONFLICT, and QEMU is asked nothing (the guest never runs here)', async () => {
    const refused = Object.assign(new Error('held elsewhere'), { code: 'LOCK_CONFLICT' });
    const { sent, inc } = await claimedVm(undefined, () => 'paused', { claim: false, acquire: () => Promise.reject(refused) });
    await expect(inc.finish({ claim: true })).rejects.toBe(refused);
    expect(sent).toEqual(['leases']);
    expect(inc.ran).toBe(false);
  });

  it('without claim, refuses to run a guest whose disks it has not leased', async () => {
    const { sent, inc } = await claimedVm(undefined, () => 'paused', { claim: false });
    await expect(inc.finish()).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(sent).toEqual([]);
  });

  it('asks a loading QEMU nothing until its completed event, then sends cont at once', async () => {
    const wakeups = new MigrationWakeups();
    let status = 'inmigrate';
    const { clock, sent, inc } = await claimedVm(wakeups, () => status);
    wakeups.onEvent({ event: 'MIGRATION', data: { status: 'active' } });
    let done = false;
    const finished = inc.finish().then(() => { done = true; });
    await clock.advance(200);
    expect(sent).toEqual([]);
    status = 'paused';
    wakeups.onEvent({ event: 'MIGRATION', data: { status: 'completed' } });
    await clock.advance(0);
    await finished;
    expect(done).toBe(true);
    expect(sent).toEqual(['cont']);
    expect(inc.ran).toBe(true);
  });

  it('asks again after the slow fallback when no completed event comes', async () => {
    const wakeups = new MigrationWakeups();
    let status = 'inmigrate';
    const { clock, sent, inc } = await claimedVm(wakeups, () => status);
    wakeups.onEvent({ event: 'MIGRATION', data: { status: 'active' } });
    const finished = inc.finish();
    await clock.advance(240);
    expect(sent).toEqual([]);
    await clock.advance(20);
    expect(sent).toEqual(['query-status']);
    status = 'paused';
    await clock.advance(260);
    await finished;
    expect(sent).toEqual(['query-status', 'query-status', 'cont']);
  });

  it('a completed event seen before finish is called: cont without a query', async () => {
    const wakeups = new MigrationWakeups();
    const { sent, inc } = await claimedVm(wakeups, () => 'paused');
    wakeups.onEvent({ event: 'MIGRATION', data: { status: 'completed' } });
    await inc.finish();
    expect(sent).toEqual(['cont']);
  });

  it('a failed load (its event) is not taken for a loaded one: query-status decides, and no cont while it says inmigrate', async () => {
    const wakeups = new MigrationWakeups();
    let status = 'inmigrate';
    const { clock, sent, inc } = await claimedVm(wakeups, () => status);
    wakeups.onEvent({ event: 'MIGRATION', data: { status: 'failed' } });
    const finished = inc.finish();
    await clock.advance(50);
    expect(sent.filter((c) => c === 'cont')).toEqual([]);
    expect(sent.length).toBeGreaterThan(1);
    status = 'paused';
    await clock.advance(20);
    await finished;
    expect(sent.at(-1)).toBe('cont');
  });

  it('polls query-status every 2 ms without events, as before', async () => {
    let status = 'inmigrate';
    const { clock, sent, inc } = await claimedVm(undefined, () => status);
    const finished = inc.finish();
    await clock.advance(0);
    expect(sent).toEqual(['query-status']);
    await clock.advance(2);
    expect(sent).toEqual(['query-status', 'query-status']);
    status = 'paused';
    await clock.advance(2);
    await finished;
    expect(sent).toEqual(['query-status', 'query-status', 'query-status', 'cont']);
  });
});
