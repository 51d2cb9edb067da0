// The built CLI against a built virtnodedevd on a fixture sysfs under a temporary root:
// nodedev-list (a table, --cap, --json matching its schema and the client's answer), nodedev-info
// as JSON, one-line typed errors, nodedev-event waiting for a device to appear, and -c with a
// virtqemud URI reaching virtnodedevd of the same root.
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNodeDev } from '../../client/index.js';
import { NodeDevice, NodeDeviceEvent, NodeDeviceRow } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from '../unit/drivers/nodedev/sysfs-fixture.js';
import { clientIds, expectFailure, expectSchema, startVirtq, virtq, virtqJson, virtqOk, waitForSubscribers } from './virtq-cli.js';

const ListOutput = Type.Object({ devices: Type.Array(NodeDeviceRow) });

describe('virtq nodedev-* against virtnodedevd', () => {
  let h: ServiceHarness;
  let sys: TmpRoot;
  let fx: SysfsFixture;
  let uri: string;

  beforeAll(async () => {
    h = new ServiceHarness(tmpRoot());
    sys = tmpRoot();
    fx = new SysfsFixture(sys.path('sys'));
    buildHost(fx);
    expect((await h.start('virtnodedevd', ['--sysfs', fx.root, '--poll-ms', '50'])).reply.ok).toBe(true);
    uri = h.uri('nodedev');
  });
  afterAll(async () => {
    await h.cleanup();
    sys.remove();
  });

  it('lists devices as JSON, as the client sees them, and as a table', async () => {
    const listed = await virtqJson<{ devices: NodeDeviceRow[] }>(['-c', uri, 'nodedev-list'], ListOutput);
    const c = await connectNodeDev(uri);
    expect(listed).toEqual(await c.api.listDevices({}));
    c.close();
    expect(listed.devices).toHaveLength(20);
    const usb = await virtqJson<{ devices: NodeDeviceRow[] }>(['-c', `${uri}&mode=ro`, 'nodedev-list', '--cap', 'usb'], ListOutput);
    expect(usb.devices.map((r) => r.name)).toEqual(['usb_1_1', 'usb_usb1']);
    const text = await virtqOk(['-c', uri, 'nodedev-list', '--cap', 'net']);
    expect(text).toMatch(/^ NAME +CAP +PARENT +DESCRIPTION\n-+\n/);
    expect(text).toMatch(/\n net_eth0_52_54_00_12_34_56 +net +pci_0000_00_03_0 +eth0 52:54:00:12:34:56 up\n/);
    expect(text.trimEnd().split('\n')).toHaveLength(2 + 4);
  });

  it('prints one device in full as JSON, with or without --json', async () => {
    const plain = JSON.parse(await virtqOk(['-c', uri, 'nodedev-info', 'usb_1_1'])) as unknown;
    expectSchema(plain, NodeDevice);
    expect(plain).toMatchObject({ name: 'usb_1_1', cap: 'usb', parent: 'usb_usb1', manufacturer: 'ASIX', hub: false });
    expect(await virtqJson(['-c', uri, 'nodedev-info', 'usb_1_1'], NodeDevice)).toEqual(plain);
  });

  it('fails with one typed line for an unknown or malformed name, an unknown kind, or no daemon', async () => {
    expectFailure(await virtq(['-c', uri, 'nodedev-info', 'block_vdz']), 'NO_NODE_DEVICE', /block_vdz/);
    expectFailure(await virtq(['-c', uri, 'nodedev-info', 'sda']), 'INVALID_ARG', /starts with pci_, usb_, net_ or block_/);
    const usage = await virtq(['-c', uri, 'nodedev-list', '--cap', 'scsi']);
    expect(usage.code).toBe(2);
    expectFailure(await virtq(['-c', `nodedev:///system?root=${sys.dir}`, 'nodedev-list']), 'NO_CONNECT', /virtnodedevd/);
  });

  it('reaches virtnodedevd from a virtqemud URI of the same root', async () => {
    const listed = await virtqJson<{ devices: NodeDeviceRow[] }>(['-c', `qemu:///system?root=${h.root.dir}`, 'nodedev-list', '--cap', 'block'], ListOutput);
    expect(listed.devices.map((r) => r.name)).toEqual(['block_loop0', 'block_sda', 'block_vda', 'block_vda1', 'block_vda10', 'block_vda2']);
  });

  it('waits for a device event and prints it, as a line or as JSON', async () => {
    const admin = h.sockets('virtnodedevd').admin;
    const before = await clientIds(admin);
    const plain = startVirtq(['-c', uri, 'nodedev-event', '--timeout', '60']);
    const json = startVirtq(['-c', uri, 'nodedev-event', '--json', '--loop', '--timeout', '60']);
    try {
      await waitForSubscribers(admin, before, 2);
      fx.net('tap7', { address: 'fe:54:00:00:00:07' });
      expect(await plain.result).toMatchObject({ code: 0, stderr: '', stdout: "event 'device' for node device 'net_tap7_fe_54_00_00_00_07': added (net)\n" });
      const [line] = await json.lines(1);
      const ev = JSON.parse(line as string) as unknown;
      expectSchema(ev, NodeDeviceEvent);
      expect(ev).toMatchObject({ event: 'added', name: 'net_tap7_fe_54_00_00_00_07', cap: 'net' });
    } finally {
      for (const p of [plain, json]) p.proc.kill('SIGKILL');
      await Promise.all([plain.result, json.result]);
    }
  });
});
