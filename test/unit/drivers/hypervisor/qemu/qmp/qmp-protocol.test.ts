// QmpProtocol against the fake QMP server: id matching (also out of order), QMP errors, timeouts
// on a FakeClock, close with commands in flight, raw passthrough and event hand-off.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QmpProtocol } from '../../../../../../drivers/hypervisor/qemu/qmp/qmp-protocol.js';
import type { QmpLogger } from '../../../../../../drivers/hypervisor/qemu/qmp/qmp-protocol.js';
import { QmpTransport } from '../../../../../../drivers/hypervisor/qemu/qmp/transport.js';
import type { QmpMessage } from '../../../../../../drivers/hypervisor/qemu/qmp/transport.js';
import { FakeClock } from '../../../../../helpers/fake-clock.js';
import { FakeQmpServer, loadQmpFixture } from '../../../../../helpers/fake-qmp-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(): Promise<{ fake: FakeQmpServer; protocol: QmpProtocol; clock: FakeClock; events: QmpMessage[]; log: QmpLogger }> {
  const { fake, socket } = await FakeQmpServer.accepted();
  const clock = new FakeClock();
  const transport = new QmpTransport(socket);
  await transport.handshake(clock, 1000);
  const events: QmpMessage[] = [];
  const log: QmpLogger = { debug: vi.fn(), warn: vi.fn() };
  const protocol = new QmpProtocol(transport, { clock, defaultTimeoutMs: 5000, onEvent: (m) => events.push(m), log });
  cleanups.push(async () => { protocol.close(); await fake.dispose(); });
  return { fake, protocol, clock, events, log };
}

describe('QmpProtocol', () => {
  it('resolves with the return value when the reply arrives', async () => {
    const { fake, protocol } = await setup();
    fake.expect('query-status', loadQmpFixture('query-status-running'));
    await expect(protocol.execute('query-status')).resolves.toEqual({ status: 'running', singlestep: false, running: true });
    expect(fake.received[1]).toEqual({ execute: 'query-status', id: 'virtq-1' });
    fake.assertDone();
  });

  it('sends arguments under "arguments"', async () => {
    const { fake, protocol } = await setup();
    fake.expect('blockdev-del', loadQmpFixture('blockdev-del-ok'));
    await protocol.execute('blockdev-del', { 'node-name': 'n1' });
    expect(fake.received[1]).toEqual({ execute: 'blockdev-del', arguments: { 'node-name': 'n1' }, id: 'virtq-1' });
  });

  it('matches replies by id when they come back out of order', async () => {
    const { fake, protocol } = await setup();
    const first = fake.expect('query-status', loadQmpFixture('query-status-paused'), { mode: 'manual' });
    fake.expect('query-kvm', loadQmpFixture('query-kvm-tcg'));
    const a = protocol.execute('query-status');
    const b = protocol.execute('query-kvm');
    await expect(b).resolves.toEqual({ enabled: false, present: true });
    await first.received;
    first.release();
    await expect(a).resolves.toMatchObject({ status: 'paused' });
    fake.assertDone();
  });

  it('rejects with QMP_ERROR carrying class, desc and command when QEMU answers an error', async () => {
    const { fake, protocol } = await setup();
    fake.expect('device_del', loadQmpFixture('device_del-unknown-id'));
    const err = await protocol.execute('device_del', { id: 'nope' }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'VirtqError',
      code: 'QMP_ERROR',
      message: "device_del: Device 'nope' not found",
      details: { class: 'DeviceNotFound', desc: "Device 'nope' not found", command: 'device_del' },
    });
  });

  it('rejects with TIMEOUT when no reply comes before the deadline', async () => {
    const { fake, protocol, clock } = await setup();
    const step = fake.expect('query-status', loadQmpFixture('query-status-running'), { mode: 'never' });
    const pending = protocol.execute('query-status', undefined, { timeoutMs: 250 });
    const settled = vi.fn();
    pending.catch(settled);
    await step.received;
    await clock.advance(249);
    expect(settled).not.toHaveBeenCalled();
    await clock.advance(1);
    await expect(pending).rejects.toMatchObject({ code: 'TIMEOUT', details: { command: 'query-status', timeoutMs: 250 } });
    expect(protocol.inFlight).toBe(0);
  });

  it('uses the default deadline when the call gives none', async () => {
    const { fake, protocol, clock } = await setup();
    fake.expect('stop', {}, { mode: 'never' });
    const pending = protocol.execute('stop');
    await clock.advance(5000);
    await expect(pending).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('drops a late reply after a timeout and keeps matching later replies', async () => {
    const { fake, protocol, clock, log } = await setup();
    const slow = fake.expect('query-status', loadQmpFixture('query-status-running'), { mode: 'manual' });
    const timedOut = protocol.execute('query-status', undefined, { timeoutMs: 100 });
    await slow.received;
    await clock.advance(100);
    await expect(timedOut).rejects.toMatchObject({ code: 'TIMEOUT' });
    const next = fake.expect('query-status', loadQmpFixture('query-status-paused'));
    slow.release();
    // The late query-status reply (id virtq-1) must not satisfy the new command.
    const later = protocol.execute('query-status');
    await next.received;
    await expect(later).resolves.toMatchObject({ status: 'paused' });
    expect(log.warn).toHaveBeenCalledWith({ id: 'virtq-1' }, 'qmp reply matches no pending command; dropped');
  });

  it('rejects every pending command with CONNECTION_CLOSED when the peer hangs up', async () => {
    const { fake, protocol } = await setup();
    const s1 = fake.expect('query-status', {}, { mode: 'never' });
    fake.expect('cont', {}, { mode: 'never' });
    const a = protocol.execute('query-status');
    const b = protocol.execute('cont');
    await s1.received;
    fake.hangUp();
    await expect(a).rejects.toMatchObject({ code: 'CONNECTION_CLOSED', details: { command: 'query-status' } });
    await expect(b).rejects.toMatchObject({ code: 'CONNECTION_CLOSED', details: { command: 'cont' } });
    expect(protocol.inFlight).toBe(0);
  });

  it('rejects at once with CONNECTION_CLOSED when executing after close', async () => {
    const { protocol } = await setup();
    protocol.close();
    await expect(protocol.execute('query-status')).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('hands events to onEvent and never to a pending command', async () => {
    const { fake, protocol, events } = await setup();
    fake.expect('cont', loadQmpFixture('cont-ok'), { eventsBefore: [loadQmpFixture('event-RESUME')] });
    await expect(protocol.execute('cont')).resolves.toEqual({});
    expect(events.map((e) => e['event'])).toEqual(['RESUME']);
  });

  it('runs a raw command object with its own id replaced and returns the raw return', async () => {
    const { fake, protocol } = await setup();
    fake.expect('human-monitor-command', loadQmpFixture('human-monitor-command-info-status'));
    const out = await protocol.executeRaw({ execute: 'human-monitor-command', arguments: { 'command-line': 'info status' }, id: 42 });
    expect(out).toBe('VM status: paused\r\n');
    expect(fake.received[1]).toEqual({ execute: 'human-monitor-command', arguments: { 'command-line': 'info status' }, id: 'virtq-1' });
  });

  it('rejects a raw command without "execute" with INVALID_ARG and sends nothing', async () => {
    const { fake, protocol } = await setup();
    await expect(protocol.executeRaw({ arguments: {} })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    expect(fake.received).toHaveLength(1);
  });

  it('maps a raw command error reply to QMP_ERROR', async () => {
    const { fake, protocol } = await setup();
    fake.expect('no-such-command', loadQmpFixture('no-such-command-not-found'));
    await expect(protocol.executeRaw({ execute: 'no-such-command' })).rejects.toMatchObject({ code: 'QMP_ERROR', details: { class: 'CommandNotFound' } });
  });
});
