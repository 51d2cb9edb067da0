// QmpEventDispatcher: recorded QEMU 7.2 events become typed callback calls; unknown events go to
// onOther; a throwing callback is logged and contained.
import { describe, expect, it, vi } from 'vitest';
import { QmpEventDispatcher } from '../../../../../../drivers/hypervisor/qemu/qmp/events.js';
import type { QmpEventCallbacks } from '../../../../../../drivers/hypervisor/qemu/qmp/events.js';
import type { QmpLogger } from '../../../../../../drivers/hypervisor/qemu/qmp/qmp-protocol.js';
import { loadQmpFixture } from '../../../../../helpers/fake-qmp-server.js';
import type { QmpObject } from '../../../../../helpers/fake-qmp-server.js';

function logger(): QmpLogger & { warn: ReturnType<typeof vi.fn<QmpLogger['warn']>> } {
  return { debug: vi.fn<QmpLogger['debug']>(), warn: vi.fn<QmpLogger['warn']>() };
}

describe('QmpEventDispatcher', () => {
  it('calls onShutdown with guest and reason when SHUTDOWN arrives', () => {
    const onShutdown = vi.fn();
    new QmpEventDispatcher({ onShutdown }, logger()).dispatch(loadQmpFixture('event-SHUTDOWN-quit'));
    expect(onShutdown).toHaveBeenCalledWith(
      { guest: false, reason: 'host-qmp-quit' },
      { name: 'SHUTDOWN', timestampMs: 1795243778985 },
    );
  });

  it('calls onReset with guest and reason when RESET arrives', () => {
    const onReset = vi.fn();
    new QmpEventDispatcher({ onReset }, logger()).dispatch(loadQmpFixture('event-RESET-host'));
    expect(onReset).toHaveBeenCalledWith({ guest: false, reason: 'host-qmp-system-reset' }, expect.objectContaining({ name: 'RESET' }));
  });

  it('calls the payload-less callbacks when STOP, RESUME and POWERDOWN arrive', () => {
    const calls: string[] = [];
    const cb: QmpEventCallbacks = {
      onStop: () => calls.push('stop'),
      onResume: () => calls.push('resume'),
      onPowerdown: () => calls.push('powerdown'),
    };
    const d = new QmpEventDispatcher(cb, logger());
    for (const f of ['event-STOP', 'event-RESUME', 'event-POWERDOWN']) d.dispatch(loadQmpFixture(f));
    expect(calls).toEqual(['stop', 'resume', 'powerdown']);
  });

  it('calls onDeviceDeleted with id and path when DEVICE_DELETED arrives', () => {
    const onDeviceDeleted = vi.fn();
    const [event] = loadQmpFixture<QmpObject[]>('event-DEVICE_DELETED-usb');
    new QmpEventDispatcher({ onDeviceDeleted }, logger()).dispatch(event ?? {});
    expect(onDeviceDeleted).toHaveBeenCalledWith({ device: 'tab0', path: '/machine/peripheral/tab0' }, expect.anything());
  });

  it('reports an undefined device when DEVICE_DELETED names only a path', () => {
    const onDeviceDeleted = vi.fn();
    new QmpEventDispatcher({ onDeviceDeleted }, logger()).dispatch({ event: 'DEVICE_DELETED', data: { path: '/machine/peripheral-anon/device[0]' } });
    expect(onDeviceDeleted).toHaveBeenCalledWith({ device: undefined, path: '/machine/peripheral-anon/device[0]' }, { name: 'DEVICE_DELETED', timestampMs: undefined });
  });

  it('calls onGuestPanicked and onBlockIoError with parsed payloads', () => {
    const onGuestPanicked = vi.fn();
    const onBlockIoError = vi.fn();
    const d = new QmpEventDispatcher({ onGuestPanicked, onBlockIoError }, logger());
    d.dispatch({ event: 'GUEST_PANICKED', data: { action: 'pause', info: { type: 'hyper-v', arg1: 1 } } });
    d.dispatch({ event: 'BLOCK_IO_ERROR', data: { device: '', 'node-name': 'disk0', operation: 'write', action: 'stop', nospace: true, reason: 'No space left on device' } });
    expect(onGuestPanicked).toHaveBeenCalledWith({ action: 'pause', info: { type: 'hyper-v', arg1: 1 } }, expect.anything());
    expect(onBlockIoError).toHaveBeenCalledWith(
      { device: undefined, nodeName: 'disk0', operation: 'write', action: 'stop', nospace: true, reason: 'No space left on device' },
      expect.anything(),
    );
  });

  it('passes unknown events to onOther with their raw data', () => {
    const onOther = vi.fn();
    new QmpEventDispatcher({ onOther }, logger()).dispatch({ event: 'RTC_CHANGE', data: { offset: 3, 'qom-path': '/machine/unattached/device[8]' } });
    expect(onOther).toHaveBeenCalledWith('RTC_CHANGE', { offset: 3, 'qom-path': '/machine/unattached/device[8]' }, expect.objectContaining({ name: 'RTC_CHANGE' }));
  });

  it('does nothing when a known event has no callback', () => {
    const onOther = vi.fn();
    new QmpEventDispatcher({ onOther }, logger()).dispatch(loadQmpFixture('event-STOP'));
    expect(onOther).not.toHaveBeenCalled();
  });

  it('does not treat inherited property names as table entries', () => {
    const onOther = vi.fn();
    new QmpEventDispatcher({ onOther }, logger()).dispatch({ event: 'toString' });
    expect(onOther).toHaveBeenCalledWith('toString', undefined, expect.anything());
  });

  it('logs and contains a callback that throws', () => {
    const log = logger();
    const d = new QmpEventDispatcher({ onStop: () => { throw new Error('boom'); } }, log);
    expect(() => d.dispatch(loadQmpFixture('event-STOP'))).not.toThrow();
    expect(log.warn).toHaveBeenCalledWith(expect.objectContaining({ event: 'STOP' }), 'qmp event callback threw');
  });
});
