// The incoming-migration watchdog with a scripted monitor and a fake clock: a QEMU listening with
// `-incoming defer` that no source connects to within 10 s is stopped, and a query-migrate that
// fails on the way (a monitor reconnecting, a call timing out) does not end the watch: it asks
// again. A source that connected (a status other than setup) ends the watch for good.
import { describe, expect, it } from 'vitest';
import { silentLogger, VirtqError } from '../../../protocol/index.js';
import { INCOMING_REASON, MigrationIncoming } from '../../../shim/vm/migration-incoming.js';
import type { Vm } from '../../../shim/vm/vm.js';
import { MigrationWakeups } from '../../../shim/vm/migration-wakeups.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A VM waiting for its migration; query-migrate answers from `answers` in turn (an Error throws).
 * With `wakeups`, migrate-incoming sends QEMU's MIGRATION `setup` event, as QEMU does.
 */
function waitingVm(answers: Array<string | Error>, wakeups?: MigrationWakeups) {
  const seen = { queries: 0, destroyed: 0, listening: false };
  const vm = {
    def: { name: 'in1' },
    state: 'paused',
    reason: INCOMING_REASON,
    qemuPid: 4242,
    monitor: () => ({
      raw: (cmd: { execute: string }): Promise<unknown> => {
        if (cmd.execute === 'migrate-incoming') wakeups?.onEvent({ event: 'MIGRATION', data: { status: 'setup' } });
        if (cmd.execute !== 'query-migrate') return Promise.resolve({});
        // listen's own query over TCP (which port QEMU bound): not the watchdog's.
        if (!seen.listening) return Promise.resolve({ status: 'setup', 'socket-address': [{ type: 'inet', host: '127.0.0.1', port: '4444' }] });
        const a = answers[Math.min(seen.queries++, answers.length - 1)];
        return a instanceof Error ? Promise.reject(a) : Promise.resolve({ status: a });
      },
    }),
    destroy: (): Promise<void> => { seen.destroyed++; vm.state = 'shutoff'; vm.reason = 'destroyed'; return Promise.resolve(); },
  };
  return { vm, seen };
}

/**
 * An incoming VM listening over `transport`: unix as the shim starts it (QEMU spawned listening
 * with its events on, so their `setup` came before the monitor), tcp through `migrate-incoming`.
 */
async function listening(answers: Array<string | Error>, wakeups?: MigrationWakeups, transport: 'unix' | 'tcp' = 'unix') {
  const clock = new FakeClock();
  const { vm, seen } = waitingVm(answers, wakeups);
  const inc = new MigrationIncoming({
    // The watchdog reads only state, reason, def, qemuPid, monitor() and destroy() of the VM.
    vm: vm as unknown as Vm, leases: { acquireAllForRunning: () => Promise.resolve() }, clock, log: silentLogger(),
    socketPath: join(tmpdir(), `virtq-incoming-watchdog-${process.pid}.sock`), transport, ...(wakeups === undefined ? {} : { wakeups }),
  });
  inc.spawnListening();
  await inc.listen();
  seen.listening = true;
  return { clock, seen };
}

const gone = new VirtqError('NO_CONNECT', 'the monitor is reconnecting');

describe('incoming migration watchdog', () => {
  it('stops a QEMU no source connected to within 10 s', async () => {
    const { clock, seen } = await listening(['setup']);
    await clock.advance(9_000);
    expect(seen.destroyed).toBe(0);
    await clock.advance(2_000);
    expect(seen.destroyed).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it('keeps polling after a failed query-migrate, and still gives up at the deadline', async () => {
    const { clock, seen } = await listening([gone, gone, 'setup']);
    await clock.advance(11_000);
    expect(seen.queries).toBeGreaterThan(3);
    expect(seen.destroyed).toBe(1);
  });

  it('does not give up on a query that fails at the deadline: only a status read says no source came', async () => {
    const answers: Array<string | Error> = Array.from({ length: 30 }, () => gone);
    const { clock, seen } = await listening([...answers, 'setup']);
    await clock.advance(12_000);
    expect(seen.destroyed).toBe(0);
    await clock.advance(4_000);
    expect(seen.destroyed).toBe(1);
  });

  it('ends the watch once the source has connected, even after failed queries', async () => {
    const { clock, seen } = await listening([gone, 'active']);
    await clock.advance(30_000);
    expect(seen.destroyed).toBe(0);
    expect(seen.queries).toBe(2);
    expect(clock.pending()).toBe(0);
  });

  describe.each(['unix', 'tcp'] as const)('with QEMU\'s MIGRATION events (session 14), over %s', (transport) => {
    it('asks QEMU nothing before the deadline, then stops a QEMU no source connected to', async () => {
      const wakeups = new MigrationWakeups();
      const { clock, seen } = await listening(['setup'], wakeups, transport);
      await clock.advance(9_900);
      expect(seen.queries).toBe(0);
      expect(seen.destroyed).toBe(0);
      await clock.advance(1_000);
      expect(seen.queries).toBe(1);
      expect(seen.destroyed).toBe(1);
      expect(clock.pending()).toBe(0);
    });

    it('ends the watch at the event that leaves setup, without a query', async () => {
      const wakeups = new MigrationWakeups();
      const { clock, seen } = await listening(['setup'], wakeups, transport);
      await clock.advance(700);
      wakeups.onEvent({ event: 'MIGRATION', data: { status: 'active' } });
      await clock.advance(30_000);
      expect(seen.queries).toBe(0);
      expect(seen.destroyed).toBe(0);
      expect(clock.pending()).toBe(0);
    });

    it('still asks QEMU at the deadline when the last event said setup, and asks again after a failed query', async () => {
      const wakeups = new MigrationWakeups();
      const { clock, seen } = await listening([gone, 'active'], wakeups, transport);
      wakeups.onEvent({ event: 'MIGRATION', data: { status: 'setup' } });
      await clock.advance(12_000);
      expect(seen.queries).toBe(2);
      expect(seen.destroyed).toBe(0);
      expect(clock.pending()).toBe(0);
    });
  });
});
