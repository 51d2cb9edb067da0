// QmpMonitor, the facade, against the fake QMP server with replies recorded from QEMU 7.2:
// attach/handshake, typed commands, events through callbacks, close handling, hostile input.
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QmpMonitor } from '../../../../../../drivers/hypervisor/qemu/qmp/monitor.js';
import type { QmpEventCallbacks, QmpLogger, QmpMonitorOptions } from '../../../../../../drivers/hypervisor/qemu/qmp/monitor.js';
import { FakeClock } from '../../../../../helpers/fake-clock.js';
import { FakeQmpServer, loadQmpFixture } from '../../../../../helpers/fake-qmp-server.js';
import type { FakeQmpOptions } from '../../../../../helpers/fake-qmp-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function attached(
  callbacks: QmpEventCallbacks = {},
  extra: Partial<QmpMonitorOptions> = {},
  fakeOptions: FakeQmpOptions = {},
): Promise<{ fake: FakeQmpServer; monitor: QmpMonitor; clock: FakeClock }> {
  const { fake, socket } = await FakeQmpServer.accepted(fakeOptions);
  const clock = new FakeClock();
  const monitor = await QmpMonitor.attach(socket, { clock, callbacks, commandTimeoutMs: 1000, ...extra });
  cleanups.push(async () => { monitor.close(); await fake.dispose(); });
  return { fake, monitor, clock };
}

describe('QmpMonitor', () => {
  it('negotiates capabilities on attach and exposes the greeting', async () => {
    const { fake, monitor } = await attached();
    expect(fake.received).toEqual([{ execute: 'qmp_capabilities' }]);
    expect(monitor.greeting.version.qemu).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(monitor.isClosed).toBe(false);
  });

  it('fails attach with TIMEOUT when no greeting comes in time', async () => {
    const { fake, socket } = await FakeQmpServer.accepted({ greeting: null });
    const clock = new FakeClock();
    const attach = QmpMonitor.attach(socket, { clock, callbacks: {}, handshakeTimeoutMs: 2000 });
    const settled = vi.fn();
    attach.catch(settled);
    await clock.advance(1999);
    expect(settled).not.toHaveBeenCalled();
    await clock.advance(1);
    await expect(attach).rejects.toMatchObject({ code: 'TIMEOUT' });
    await fake.peerClosed;
    await fake.dispose();
  });

  it('parses query-status for prelaunch, running and paused', async () => {
    const { fake, monitor } = await attached();
    for (const c of ['prelaunch', 'running', 'paused']) fake.expect('query-status', loadQmpFixture(`query-status-${c}`));
    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'prelaunch', running: false });
    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'running', running: true });
    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'paused', running: false });
    fake.assertDone();
  });

  it('sends the QEMU command names and arguments for the action methods', async () => {
    const { fake, monitor } = await attached();
    const ok = loadQmpFixture('cont-ok');
    for (const c of ['cont', 'stop', 'system_powerdown', 'system_reset', 'blockdev-add', 'blockdev-del', 'device_add', 'device_del', 'send-key']) fake.expect(c, ok);
    await monitor.cont();
    await monitor.stop();
    await monitor.systemPowerdown();
    await monitor.systemReset();
    await monitor.blockdevAdd({ driver: 'null-co', 'node-name': 'n1' });
    await monitor.blockdevDel('n1');
    await monitor.deviceAdd({ driver: 'virtio-blk-pci', id: 'vd1', drive: 'n1' });
    await monitor.deviceDel('vd1');
    await monitor.sendKey(['ctrl', 'alt', 'delete'], 100);
    expect(fake.received.slice(1).map(({ id: _id, ...rest }) => rest)).toEqual([
      { execute: 'cont' },
      { execute: 'stop' },
      { execute: 'system_powerdown' },
      { execute: 'system_reset' },
      { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': 'n1' } },
      { execute: 'blockdev-del', arguments: { 'node-name': 'n1' } },
      { execute: 'device_add', arguments: { driver: 'virtio-blk-pci', id: 'vd1', drive: 'n1' } },
      { execute: 'device_del', arguments: { id: 'vd1' } },
      { execute: 'send-key', arguments: { keys: [{ type: 'qcode', data: 'ctrl' }, { type: 'qcode', data: 'alt' }, { type: 'qcode', data: 'delete' }], 'hold-time': 100 } },
    ]);
    fake.assertDone();
  });

  it('types query-blockstats, query-block, query-commands, query-machines and query-kvm', async () => {
    const { fake, monitor } = await attached();
    fake.expect('query-blockstats', loadQmpFixture('query-blockstats-virtio-blk'));
    fake.expect('query-block', loadQmpFixture('query-block-virtio-blk'));
    fake.expect('query-commands', loadQmpFixture('query-commands-truncated'));
    fake.expect('query-machines', loadQmpFixture('query-machines-truncated'));
    fake.expect('query-kvm', loadQmpFixture('query-kvm-tcg'));
    expect(await monitor.queryBlockstats()).toEqual([{
      device: 'drive0', qdev: '/machine/peripheral/vblk0/virtio-backend', nodeName: '#block152',
      rdBytes: 0, wrBytes: 0, rdOperations: 0, wrOperations: 0, flushOperations: 0,
      rdTotalTimeNs: 0, wrTotalTimeNs: 0, flushTotalTimeNs: 0, failedRdOperations: 0, failedWrOperations: 0,
    }]);
    expect(await monitor.queryBlock()).toEqual([{
      device: 'drive0', qdev: '/machine/peripheral/vblk0/virtio-backend', nodeName: '#block152', file: '/tmp/qrec/d.img',
      driver: 'raw', readOnly: false, removable: false, locked: false, ioStatus: 'ok',
    }]);
    const commands = await monitor.queryCommands();
    expect(commands).toHaveLength(12);
    expect(commands[0]).toBe('device_add');
    const machines = await monitor.queryMachines();
    expect(machines[0]).toEqual({ name: 'pc-q35-5.2', alias: undefined, isDefault: false, cpuMax: 288, deprecated: false });
    await expect(monitor.queryKvm()).resolves.toEqual({ enabled: false, present: true });
  });

  it('reports a blockdev disk without a drive id as device undefined', async () => {
    const { fake, monitor } = await attached();
    const entry = { device: '', 'node-name': 'disk0', qdev: '/machine/peripheral/vd0/virtio-backend', stats: { rd_bytes: 4096, wr_bytes: 512, rd_operations: 8, wr_operations: 1 } };
    fake.expect('query-blockstats', { return: [entry] });
    expect(await monitor.queryBlockstats()).toMatchObject([{ device: undefined, nodeName: 'disk0', rdBytes: 4096, wrBytes: 512, rdOperations: 8, wrOperations: 1 }]);
  });

  it('fails with INTERNAL naming the command when a reply has the wrong shape', async () => {
    const { fake, monitor } = await attached();
    fake.expect('query-status', { return: [] });
    await expect(monitor.queryStatus()).rejects.toMatchObject({ code: 'INTERNAL', details: { command: 'query-status' } });
  });

  it('maps error replies to QMP_ERROR with the QMP class', async () => {
    const { fake, monitor } = await attached();
    fake.expect('device_del', loadQmpFixture('device_del-unknown-id'));
    fake.expect('device_add', loadQmpFixture('device_add-bad-driver'));
    fake.expect('blockdev-add', loadQmpFixture('blockdev-add-duplicate-node'));
    await expect(monitor.deviceDel('nope')).rejects.toMatchObject({ code: 'QMP_ERROR', details: { class: 'DeviceNotFound' } });
    await expect(monitor.deviceAdd({ driver: 'nonexistent-dev', id: 'x' })).rejects.toMatchObject({ code: 'QMP_ERROR', details: { class: 'GenericError' } });
    await expect(monitor.blockdevAdd({ driver: 'null-co', 'node-name': 'n1' })).rejects.toMatchObject({ details: { desc: "Duplicate nodes with node-name='n1'" } });
  });

  it('times a command out with TIMEOUT on the injected clock', async () => {
    const { fake, monitor, clock } = await attached();
    const step = fake.expect('query-status', loadQmpFixture('query-status-running'), { mode: 'never' });
    const pending = monitor.queryStatus();
    await step.received;
    await clock.advance(1000);
    await expect(pending).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('runs raw passthrough and humanMonitorCommand', async () => {
    const { fake, monitor } = await attached();
    fake.expect('query-kvm', loadQmpFixture('query-kvm-tcg'));
    fake.expect('human-monitor-command', loadQmpFixture('human-monitor-command-info-status'));
    await expect(monitor.raw({ execute: 'query-kvm' })).resolves.toEqual({ enabled: false, present: true });
    await expect(monitor.humanMonitorCommand('info status')).resolves.toBe('VM status: paused\r\n');
    await expect(monitor.raw([1, 2])).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });

  it('delivers events to the callbacks, including unknown ones to onOther', async () => {
    const seen: string[] = [];
    const { fake, monitor } = await attached({
      onResume: () => seen.push('resume'),
      onShutdown: (e) => seen.push(`shutdown:${e.reason}`),
      onOther: (name) => seen.push(`other:${name}`),
    });
    fake.expect('cont', loadQmpFixture('cont-ok'), { eventsBefore: [loadQmpFixture('event-RESUME')] });
    await monitor.cont();
    expect(seen).toEqual(['resume']);
    fake.send(loadQmpFixture('event-SHUTDOWN-quit'));
    fake.emitEvent('RTC_CHANGE', { offset: 1 });
    fake.expect('query-kvm', loadQmpFixture('query-kvm-tcg'));
    await monitor.queryKvm(); // the reply follows the events on the stream, so they have been dispatched
    expect(seen).toEqual(['resume', 'shutdown:host-qmp-quit', 'other:RTC_CHANGE']);
  });

  it('parses replies split across writes and several messages in one write', async () => {
    const { fake, monitor } = await attached({ onStop: () => undefined });
    const a = fake.expect('query-status', () => ({}), { mode: 'never' });
    const b = fake.expect('query-kvm', () => ({}), { mode: 'never' });
    const pa = monitor.queryStatus();
    const pb = monitor.queryKvm();
    await Promise.all([a.received, b.received]);
    const ra = JSON.stringify({ return: { status: 'running', running: true }, id: 'virtq-1' });
    fake.sendRaw(ra.slice(0, 10));
    fake.sendRaw(ra.slice(10, 25));
    fake.sendRaw(`${ra.slice(25)}\r\n{"event": "STOP"}\r\n{"return": {"enabled": true, "present": true}, "id": "virtq-2"}\r\n`);
    await expect(pa).resolves.toEqual({ status: 'running', running: true });
    await expect(pb).resolves.toEqual({ enabled: true, present: true });
  });

  it('closes with FRAME_TOO_LARGE and fails pending commands when a line is over-long', async () => {
    const onClose = vi.fn();
    const { fake, monitor } = await attached({}, { maxLineBytes: 1024, onClose });
    const step = fake.expect('query-status', () => ({}), { mode: 'never' });
    const pending = monitor.queryStatus();
    await step.received;
    fake.sendRaw(`{"return": "${'x'.repeat(2048)}`);
    await expect(pending).rejects.toMatchObject({ code: 'CONNECTION_CLOSED', cause: { code: 'FRAME_TOO_LARGE' } });
    await monitor.closed;
    expect(monitor.closeReason?.code).toBe('FRAME_TOO_LARGE');
    expect(onClose).toHaveBeenCalledTimes(1);
    await fake.peerClosed;
  });

  it('closes with MALFORMED_FRAME when QEMU sends garbage', async () => {
    const { fake, monitor } = await attached();
    fake.sendRaw('\u0000garbage{{\r\n');
    await monitor.closed;
    expect(monitor.closeReason?.code).toBe('MALFORMED_FRAME');
  });

  it('fails pending commands with CONNECTION_CLOSED and calls onClose once when QEMU hangs up', async () => {
    const onClose = vi.fn();
    const { fake, monitor } = await attached({}, { onClose });
    const step = fake.expect('device_del', {}, { mode: 'never' });
    const pending = monitor.deviceDel('vd1');
    await step.received;
    fake.hangUp();
    await expect(pending).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await monitor.closed;
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(onClose.mock.calls[0]?.[0]).toMatchObject({ code: 'CONNECTION_CLOSED' });
    await expect(monitor.queryStatus()).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('treats quit as done when QEMU hangs up before replying', async () => {
    const { fake, monitor } = await attached();
    const step = fake.expect('quit', {}, { mode: 'never' });
    const quitting = monitor.quit();
    await step.received;
    fake.send(loadQmpFixture('event-SHUTDOWN-quit'));
    fake.hangUp();
    await expect(quitting).resolves.toBeUndefined();
    await monitor.closed;
  });

  it('fails quit with CONNECTION_CLOSED when the connection was already gone', async () => {
    const { monitor } = await attached();
    monitor.close();
    await expect(monitor.quit()).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('dials a QMP server socket with connect', async () => {
    const server = await FakeQmpServer.listening();
    const monitor = await QmpMonitor.connect(server.path, { clock: new FakeClock(), callbacks: {} });
    const fake = await server.fake;
    fake.expect('query-status', loadQmpFixture('query-status-prelaunch'));
    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'prelaunch', running: false });
    monitor.close();
    await fake.dispose();
    await server.dispose();
  });

  it('accepts a pino logger as its log', async () => {
    const log: QmpLogger = pino({ enabled: false }).child({ module: 'qemu.qmp' });
    const { fake, monitor } = await attached({}, { log });
    fake.expect('query-kvm', loadQmpFixture('query-kvm-tcg'));
    await expect(monitor.queryKvm()).resolves.toBeDefined();
  });
});
