// virtnodedevd as a user meets it, the built binary under a temporary root: on a fixture sysfs
// (built as the driver's unit tests build it) listings, records, typed errors, the read-only
// socket, other programs refused, device events as fixture devices appear and go, metrics, and a
// kill -9 with a restart; on this machine's real /sys, structural checks only.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectAdmin, connectNodeDev, connectStorage, type NodeDevClient } from '../../client/index.js';
import { parseDeviceName } from '../../drivers/nodedev/names.js';
import { RpcClient, systemClock, type NodeDeviceEvent } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from '../unit/drivers/nodedev/sysfs-fixture.js';

const POLL_MS = 50;

/** The next event, or a failure naming what was awaited once `ms` pass. */
async function nextEvent(events: AsyncIterator<NodeDeviceEvent>, what: string, ms = 5000): Promise<NodeDeviceEvent> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no event within ${ms} ms: ${what}`)), ms); });
  try {
    const r = await Promise.race([events.next(), deadline]);
    if (r.done === true) throw new Error(`the event stream ended while waiting for ${what}`);
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

async function metricValues(uri: string, name: string): Promise<Array<[Record<string, string | number>, number]>> {
  const adm = await connectAdmin(uri);
  try {
    const { families } = await adm.admin.getMetrics({});
    return (families.find((f) => f.name === name)?.values ?? []).map((v) => [v.labels, v.value]);
  } finally {
    adm.close();
  }
}

describe('virtnodedevd on a fixture sysfs', () => {
  let h: ServiceHarness;
  let sys: TmpRoot;
  let fx: SysfsFixture;
  const clients: Array<{ close(): void }> = [];
  const open = async (ro = false): Promise<NodeDevClient> => {
    const c = await connectNodeDev(h.uri('nodedev', ro));
    clients.push(c);
    return c;
  };

  beforeEach(() => {
    h = new ServiceHarness(tmpRoot());
    sys = tmpRoot();
    fx = new SysfsFixture(sys.path('sys'));
    buildHost(fx);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await h.cleanup();
    sys.remove();
  });

  it('lists, describes and refuses as the catalogue says, on every socket, and keeps serving', async () => {
    const d = await h.start('virtnodedevd', ['--sysfs', fx.root, '--poll-ms', String(POLL_MS)]);
    expect(d.reply).toMatchObject({ ok: true, socket: h.sockets('virtnodedevd').rw, sysfs: fx.root });
    for (const c of [await open(), await open(true)]) {
      const all = (await c.api.listDevices({})).devices;
      expect(all).toHaveLength(20);
      expect(all.map((r) => r.name)).toEqual([...all.map((r) => r.name)].sort());
      expect((await c.api.listDevices({ cap: 'usb' })).devices.map((r) => r.name)).toEqual(['usb_1_1', 'usb_usb1']);
      expect((await c.api.listDevices({ cap: 'block' })).devices.every((r) => r.cap === 'block')).toBe(true);
      expect(await c.api.getDevice({ name: 'block_vda' })).toMatchObject({
        cap: 'block', parent: 'pci_0000_00_04_0', devPath: '/dev/vda', majorMinor: '254:0', partitions: ['block_vda1', 'block_vda2', 'block_vda10'],
      });
      expect(await c.api.getDevice({ name: 'pci_0000_01_10_0' })).toMatchObject({ physicalFunction: 'pci_0000_01_00_0', driver: 'vfio-pci', iommuGroup: 5 });
      await expect(c.api.getDevice({ name: 'block_vdz' })).rejects.toMatchObject({ code: 'NO_NODE_DEVICE', message: expect.stringContaining('nodedev-list') });
      await expect(c.api.getDevice({ name: 'pci_0000_00_1F_2' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('lower-case hex') });
      await expect(c.api.getDevice({ name: 'vda' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('pci_, usb_, net_ or block_') });
      await expect(c.api.getDevice({ name: 'x'.repeat(300) })).rejects.toMatchObject({ code: 'INVALID_ARG' });
      await expect(c.api.getDevice({ name: 42 } as never)).rejects.toMatchObject({ code: 'INVALID_ARG' });
      await expect(c.api.listDevices({ cap: 'scsi' } as never)).rejects.toMatchObject({ code: 'INVALID_ARG' });
      await expect(c.api.listDevices({ cap: 'net', extra: 1 } as never)).rejects.toMatchObject({ code: 'INVALID_ARG' });
      await expect(c.api.subscribeEvents({})).resolves.toEqual({});
    }

    // Other daemons' programs are refused, naming the daemon that serves them.
    const raw = await RpcClient.connect(h.sockets('virtnodedevd').ro, { clock: systemClock() });
    await expect(raw.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'WRONG_DAEMON', message: expect.stringContaining('virtqemud') });
    await expect(raw.call('storage', 'listPools', {})).rejects.toMatchObject({ code: 'WRONG_DAEMON', message: expect.stringContaining('virtstoraged') });
    await expect(raw.call('secret', 'listSecrets', {})).rejects.toMatchObject({ code: 'WRONG_DAEMON', message: expect.stringContaining('virtsecretd') });
    raw.close();
    await expect(connectStorage(h.uri('nodedev'))).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining('virtstoraged') });

    const c = await open();
    expect((await c.api.listDevices({})).devices).toHaveLength(20);
    const devices = await metricValues(h.uri('nodedev'), 'virtq_nodedev_devices');
    expect(Object.fromEntries(devices.map(([l, v]) => [l['cap'], v]))).toEqual({ pci: 8, usb: 2, net: 4, block: 6 });
    const adm = await connectAdmin(h.uri('nodedev'));
    expect(await adm.admin.serverInfo({})).toMatchObject({ daemon: 'virtnodedevd', details: { sysfs: fx.root, pollMs: POLL_MS } });
    adm.close();
  });

  it('pushes an event when a device appears or goes, to read-only subscribers too, and counts them', async () => {
    await h.start('virtnodedevd', ['--sysfs', fx.root, '--poll-ms', String(POLL_MS)]);
    const rw = await (await open()).events();
    const ro = await (await open(true)).events();
    const t0 = Date.now();
    fx.net('tap0', { address: 'fe:54:00:01:02:03', operstate: 'up' });
    for (const events of [rw, ro]) {
      const ev = await nextEvent(events, 'tap0 added');
      expect(ev).toMatchObject({ event: 'added', name: 'net_tap0_fe_54_00_01_02_03', cap: 'net' });
      expect(ev.timestamp).toBeGreaterThanOrEqual(t0 - 1000);
    }
    const c = await open();
    expect(await c.api.getDevice({ name: 'net_tap0_fe_54_00_01_02_03' })).toMatchObject({ interface: 'tap0', virtual: true });

    const stick = fx.usb('1-2', 'devices/pci0000:00/0000:00:1d.0/usb1', { busnum: 1, devnum: 3, idVendor: '0781', idProduct: '5567' });
    expect(await nextEvent(rw, 'usb 1-2 added')).toMatchObject({ event: 'added', name: 'usb_1_2', cap: 'usb' });
    fx.unplug('bus/usb/devices/1-2', stick);
    fx.unplug('class/net/tap0', 'devices/virtual/net/tap0');
    expect([await nextEvent(rw, 'removals'), await nextEvent(rw, 'removals')].map((e) => [e.event, e.name])).toEqual([
      ['removed', 'net_tap0_fe_54_00_01_02_03'], ['removed', 'usb_1_2'],
    ]);
    await expect(c.api.getDevice({ name: 'usb_1_2' })).rejects.toMatchObject({ code: 'NO_NODE_DEVICE' });
    const counted = Object.fromEntries((await metricValues(h.uri('nodedev'), 'virtq_nodedev_events_total')).map(([l, v]) => [l['event'], v]));
    expect(counted).toEqual({ added: 2, removed: 2 });
  });

  it('comes back after kill -9 serving the same devices, and sees what changed meanwhile', async () => {
    const args = ['--sysfs', fx.root, '--poll-ms', String(POLL_MS)];
    const first = await h.start('virtnodedevd', args);
    const c = await open();
    const before = (await c.api.listDevices({})).devices;
    expect(await h.kill(first)).toBe(null);
    await expect(c.api.listDevices({})).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    fx.unplug('class/block/loop0', 'devices/virtual/block/loop0');

    const second = await h.start('virtnodedevd', args);
    expect(second.reply).toMatchObject({ ok: true });
    const again = await open();
    expect((await again.api.listDevices({})).devices).toEqual(before.filter((r) => r.name !== 'block_loop0'));
    const events = await again.events();
    fx.block('loop1', { size: 0, dev: '7:1' });
    expect(await nextEvent(events, 'loop1 added')).toMatchObject({ event: 'added', name: 'block_loop1', cap: 'block' });
  });

  it('does not start on a sysfs root it cannot read, and says which', async () => {
    const d = await h.start('virtnodedevd', ['--sysfs', sys.path('nowhere')]);
    expect(d.reply).toMatchObject({ ok: false, error: { code: 'OPERATION_FAILED', message: expect.stringContaining(sys.path('nowhere')) } });
    expect(await d.exited).toBe(1);
    const bad = await h.start('virtnodedevd', ['--poll-ms', '0']).catch((err: Error) => err);
    expect(String(bad)).toMatch(/--poll-ms must be a whole number ≥ 10/);
  });
});

describe('virtnodedevd on the real /sys', () => {
  let h: ServiceHarness;
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); });
  afterEach(() => h.cleanup());

  it('serves well-formed, unique names, filters by kind, and describes lo', async () => {
    await h.start('virtnodedevd');
    const c = await connectNodeDev(h.uri('nodedev', true));
    try {
      const all = (await c.api.listDevices({})).devices;
      const names = all.map((r) => r.name);
      expect(new Set(names).size).toBe(names.length);
      for (const row of all) expect(parseDeviceName(row.name).cap, row.name).toBe(row.cap);
      const net = (await c.api.listDevices({ cap: 'net' })).devices;
      expect(net.length).toBeGreaterThan(0);
      expect(net.every((r) => r.cap === 'net')).toBe(true);
      const lo = net.find((r) => r.cap === 'net' && r.interface === 'lo');
      expect(lo).toMatchObject({ virtual: true, name: 'net_lo_00_00_00_00_00_00' });
      expect(await c.api.getDevice({ name: 'net_lo_00_00_00_00_00_00' })).toMatchObject({ cap: 'net', interface: 'lo', path: '/sys/devices/virtual/net/lo', linkType: 772 });
      const pci = (await c.api.listDevices({ cap: 'pci' })).devices;
      for (const row of pci.slice(0, 3)) expect(await c.api.getDevice({ name: row.name })).toMatchObject(row);
    } finally {
      c.close();
    }
  });
});
