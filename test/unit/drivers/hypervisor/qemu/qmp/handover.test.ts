// Handing a negotiated QMP connection over (decision 0021), against the fake QMP server: the old
// monitor stops reading mid-line and keeps the partial bytes; a monitor resumed over the same
// socket with them sees the whole event and its commands' replies, with no second handshake.
// It refuses while a command is in flight (its reply would reach the wrong owner).
import { afterEach, describe, expect, it } from 'vitest';
import { QmpMonitor } from '../../../../../../drivers/hypervisor/qemu/qmp/monitor.js';
import { resumeReading, stopReading } from '../../../../../../drivers/host/fd-handover.js';
import { delay, systemClock } from '../../../../../../protocol/index.js';
import { FakeQmpServer, loadQmpFixture } from '../../../../../helpers/fake-qmp-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('QMP hand-over', () => {
  it('carries a half-received event and later replies over to the resumed monitor', async () => {
    const clock = systemClock();
    const { fake, socket } = await FakeQmpServer.accepted();
    cleanups.push(() => fake.dispose());
    const stops: string[] = [];
    let closedOld = 0;
    const old = await QmpMonitor.attach(socket, { clock, callbacks: { onStop: () => stops.push('old') }, onClose: () => { closedOld++; } });
    fake.sendRaw('{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}');
    await delay(clock, 50);
    const handed = old.handOver(stopReading);
    expect(handed.leftover.toString()).toBe('{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}');
    expect(handed.greeting.version.qemu).toMatchObject({ major: 7, minor: 2 });
    // Sent while nobody reads: waits in the kernel.
    fake.sendRaw('}\n');
    await delay(clock, 50);
    expect(stops).toEqual([]);
    expect(closedOld).toBe(1);
    expect(socket.destroyed).toBe(false);

    const resumed = QmpMonitor.resume(handed.socket, handed.greeting, handed.leftover, { clock, callbacks: { onStop: () => stops.push('new') } });
    resumeReading(handed.socket);
    await delay(clock, 50);
    expect(stops).toEqual(['new']);
    fake.expect('query-status', loadQmpFixture('query-status-running'));
    await expect(resumed.queryStatus()).resolves.toMatchObject({ running: true });
    expect(fake.received.filter((c) => c['execute'] === 'qmp_capabilities')).toHaveLength(1);
    resumed.close();
  });

  it('refuses to hand over while a command is in flight', async () => {
    const clock = systemClock();
    const { fake, socket } = await FakeQmpServer.accepted();
    cleanups.push(() => fake.dispose());
    const mon = await QmpMonitor.attach(socket, { clock, callbacks: {} });
    const pending = fake.expect('query-status', loadQmpFixture('query-status-running'), { mode: 'manual' });
    const status = mon.queryStatus();
    await pending.received;
    expect(() => mon.handOver(stopReading)).toThrow(expect.objectContaining({ code: 'OPERATION_INVALID' }));
    pending.release();
    await expect(status).resolves.toMatchObject({ running: true });
    expect(mon.handOver(stopReading).leftover.length).toBe(0);
    socket.destroy();
  });
});
