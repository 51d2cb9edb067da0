// NIC hot-plug over QMP against the fake QMP server with replies recorded from QEMU 7.2: the tap
// backend then the device, the backend removed when the device fails; unplug finds the NIC by
// MAC through QOM (cold- or hot-plugged) and removes its backend once the guest let go.
import { afterEach, describe, expect, it } from 'vitest';
import { normalizeDefinition, pathsOnly } from '../../../../../protocol/definition.js';
import { QmpMonitor } from '../../../../../drivers/hypervisor/qemu/qmp/monitor.js';
import { findNic, hotNicIds, plugNic, unplugNic } from '../../../../../drivers/hypervisor/qemu/hotplug-nic.js';
import { FakeClock } from '../../../../helpers/fake-clock.js';
import { FakeQmpServer, loadQmpFixture } from '../../../../helpers/fake-qmp-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => { for (const c of cleanups.splice(0)) await c(); });

async function attached(): Promise<{ fake: FakeQmpServer; monitor: QmpMonitor }> {
  const { fake, socket } = await FakeQmpServer.accepted();
  const monitor = await QmpMonitor.attach(socket, { clock: new FakeClock(), callbacks: {}, commandTimeoutMs: 1000 });
  cleanups.push(async () => { monitor.close(); await fake.dispose(); });
  return { fake, monitor };
}

const def = (machine: string) => pathsOnly(normalizeDefinition({ name: 'web1', uuid: '6f1c1f0e-3b0a-4d55-9d2e-0c4b8f6a7e21', memoryMiB: 128, machine }, () => 'x'));
const commands = (fake: FakeQmpServer) => fake.received.slice(1).map(({ id: _id, ...rest }) => rest);

describe('plugNic', () => {
  it('adds the tap backend, then a virtio-net-pci with the MAC, named after the MAC', async () => {
    const { fake, monitor } = await attached();
    fake.expect('netdev_add', loadQmpFixture('netdev_add-ok'));
    fake.expect('device_add', loadQmpFixture('netdev_add-ok'));
    await plugNic(monitor, def('pc'), { mac: '52:54:00:AA:BB:01', tap: 'vq-0123456789ab' });
    expect(hotNicIds('52:54:00:aa:bb:01')).toEqual({ device: 'nic-525400aabb01', netdev: 'net-525400aabb01' });
    expect(commands(fake)).toEqual([
      { execute: 'netdev_add', arguments: { type: 'tap', id: 'net-525400aabb01', ifname: 'vq-0123456789ab', script: 'no', downscript: 'no' } },
      { execute: 'device_add', arguments: { driver: 'virtio-net-pci', id: 'nic-525400aabb01', netdev: 'net-525400aabb01', mac: '52:54:00:aa:bb:01' } },
    ]);
  });

  it('removes the backend again when the device is refused, and reports QEMU\'s error', async () => {
    const { fake, monitor } = await attached();
    fake.expect('netdev_add', loadQmpFixture('netdev_add-ok'));
    fake.expect('device_add', loadQmpFixture('device_add-bad-driver'));
    fake.expect('netdev_del', loadQmpFixture('netdev_del-ok'));
    await expect(plugNic(monitor, def('pc'), { mac: '52:54:00:aa:bb:01', tap: 'vq-0123456789ab' })).rejects.toMatchObject({ code: 'QMP_ERROR' });
    expect(commands(fake).map((c) => c['execute'])).toEqual(['netdev_add', 'device_add', 'netdev_del']);
  });

  it('tries the spare root ports of a q35 VM until one takes the NIC', async () => {
    const { fake, monitor } = await attached();
    fake.expect('netdev_add', loadQmpFixture('netdev_add-ok'));
    fake.expect('device_add', loadQmpFixture('device_add-bad-driver'));
    fake.expect('device_add', loadQmpFixture('netdev_add-ok'));
    await plugNic(monitor, def('q35'), { mac: '52:54:00:aa:bb:01', tap: 'vq-0123456789ab' });
    expect(commands(fake).slice(1).map((c) => (c['arguments'] as { bus?: string }).bus)).toEqual(['rp1', 'rp2']);
  });

  it('fails without touching a device when the backend cannot be added', async () => {
    const { fake, monitor } = await attached();
    fake.expect('netdev_add', loadQmpFixture('netdev_add-duplicate-id'));
    await expect(plugNic(monitor, def('pc'), { mac: '52:54:00:aa:bb:01', tap: 'vq-x' })).rejects.toMatchObject({ code: 'QMP_ERROR', message: expect.stringContaining('Duplicate ID') });
    expect(commands(fake).map((c) => c['execute'])).toEqual(['netdev_add']);
  });
});

describe('unplugNic', () => {
  it('finds a cold-plugged NIC by its MAC, unplugs it, waits for the guest, then removes its backend', async () => {
    const { fake, monitor } = await attached();
    fake.expect('qom-list', loadQmpFixture('qom-list-peripheral-nics'));
    fake.expect('qom-get', { return: '52:54:00:e1:11:77' });
    fake.expect('qom-get', loadQmpFixture('qom-get-mac'));
    fake.expect('qom-get', loadQmpFixture('qom-get-netdev'));
    fake.expect('device_del', loadQmpFixture('device_del-ok'));
    fake.expect('netdev_del', loadQmpFixture('netdev_del-ok'));
    const waited: string[] = [];
    await unplugNic(monitor, '52:54:00:AA:BB:CC', (id) => { waited.push(id); return { promise: Promise.resolve(), cancel: () => undefined }; });
    expect(waited).toEqual(['nic0']);
    expect(commands(fake).slice(4)).toEqual([
      { execute: 'device_del', arguments: { id: 'nic0' } },
      { execute: 'netdev_del', arguments: { id: 'net0' } },
    ]);
  });

  it('is INVALID_ARG naming the MAC when QEMU has no such NIC', async () => {
    const { fake, monitor } = await attached();
    fake.expect('qom-list', loadQmpFixture('qom-list-peripheral-nics'));
    fake.expect('qom-get', loadQmpFixture('qom-get-not-found'));
    fake.expect('qom-get', loadQmpFixture('qom-get-mac'));
    await expect(findNic(monitor, '52:54:00:00:00:09')).resolves.toBeUndefined();
    fake.expect('qom-list', { return: [] });
    await expect(unplugNic(monitor, '52:54:00:00:00:09', () => ({ promise: Promise.resolve(), cancel: () => undefined }))).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('52:54:00:00:00:09') });
  });
});
