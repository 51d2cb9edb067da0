// Change detection: after the fixture tree changes, advancing the fake clock by one interval
// reports exactly what appeared and went; nothing is reported before the poll or after dispose.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeDevices } from '../../../../drivers/nodedev/node-devices.js';
import { nodeSysfsIo, type SysfsIo } from '../../../../drivers/nodedev/sysfs.js';
import type { NodeDeviceEvent } from '../../../../drivers/nodedev/types.js';
import type { VirtqError } from '../../../../protocol/errors.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from './sysfs-fixture.js';

let tmp: TmpRoot;
let fx: SysfsFixture;
let clock: FakeClock;

beforeEach(() => {
  tmp = tmpRoot();
  fx = new SysfsFixture(tmp.path('sys'));
  buildHost(fx);
  clock = new FakeClock();
});
afterEach(() => tmp.remove());

describe('NodeDevices.watch', () => {
  it('reports devices added and removed at the next poll, removals first', async () => {
    const devices = new NodeDevices({ root: fx.root });
    const events: NodeDeviceEvent[] = [];
    const watch = devices.watch((ev) => events.push(ev), { clock, intervalMs: 1000 });

    fx.net('tap0', { address: 'fe:54:00:01:02:03' });
    fx.usb('1-2', 'devices/pci0000:00/0000:00:1d.0/usb1', { busnum: 1, devnum: 3 });
    fx.unplug('class/block/vda2', 'devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda2');
    await clock.advance(999);
    expect(events).toEqual([]);
    await clock.advance(1);
    expect(events).toEqual([
      { kind: 'removed', name: 'block_vda2', cap: 'block' },
      { kind: 'added', name: 'net_tap0_fe_54_00_01_02_03', cap: 'net' },
      { kind: 'added', name: 'usb_1_2', cap: 'usb' },
    ]);

    events.length = 0;
    fx.unplug('class/net/tap0', 'devices/virtual/net/tap0');
    await clock.advance(1000);
    expect(events).toEqual([{ kind: 'removed', name: 'net_tap0_fe_54_00_01_02_03', cap: 'net' }]);
    await clock.advance(5000);
    expect(events).toHaveLength(1);
    watch.dispose();
  });

  it('ignores USB interfaces appearing beside their device', async () => {
    const devices = new NodeDevices({ root: fx.root });
    const events: NodeDeviceEvent[] = [];
    const watch = devices.watch((ev) => events.push(ev), { clock, intervalMs: 1000 });
    const dev = fx.usb('1-3', 'devices/pci0000:00/0000:00:1d.0/usb1', {});
    fx.link('bus/usb/devices/1-3:1.0', fx.device(`${dev}/1-3:1.0`));
    await clock.advance(1000);
    expect(events).toEqual([{ kind: 'added', name: 'usb_1_3', cap: 'usb' }]);
    watch.dispose();
  });

  it('reports a removed interface under the name it had, without reading it again', async () => {
    const devices = new NodeDevices({ root: fx.root });
    const events: NodeDeviceEvent[] = [];
    const watch = devices.watch((ev) => events.push(ev), { clock, intervalMs: 500 });
    fx.unplug('class/net/br-lan', 'devices/virtual/net/br-lan');
    await clock.advance(500);
    expect(events).toEqual([{ kind: 'removed', name: 'net_br_lan_52_54_00_aa_bb_cc', cap: 'net' }]);
    watch.dispose();
  });

  it('reads only directory listings on a poll where nothing changed', async () => {
    const real = nodeSysfsIo();
    const reads: string[] = [];
    const counting: SysfsIo = { ...real, readFile: (p) => (reads.push(p), real.readFile(p)), readLink: (p) => (reads.push(p), real.readLink(p)), realPath: (p) => (reads.push(p), real.realPath(p)) };
    const devices = new NodeDevices({ root: fx.root, io: counting });
    const watch = devices.watch(() => undefined, { clock, intervalMs: 1000 });
    reads.length = 0;
    await clock.advance(3000);
    expect(reads).toEqual([]);
    watch.dispose();
  });

  it('stops polling when disposed', async () => {
    const devices = new NodeDevices({ root: fx.root });
    const events: NodeDeviceEvent[] = [];
    const watch = devices.watch((ev) => events.push(ev), { clock, intervalMs: 1000 });
    expect(clock.pending()).toBe(1);
    watch.dispose();
    expect(clock.pending()).toBe(0);
    fx.net('tap1', {});
    await clock.advance(5000);
    expect(events).toEqual([]);
  });

  it('delivers the whole batch and keeps polling when a listener throws', async () => {
    const devices = new NodeDevices({ root: fx.root });
    const seen: string[] = [];
    const watch = devices.watch((ev) => {
      seen.push(ev.name);
      if (ev.name === 'net_tap1') throw new Error('listener bug');
    }, { clock, intervalMs: 1000 });
    fx.net('tap1', {});
    fx.net('tap2', {});
    await expect(clock.advance(1000)).rejects.toThrow('listener bug');
    expect(seen).toEqual(['net_tap1', 'net_tap2']);
    fx.net('tap3', {});
    await clock.advance(1000);
    expect(seen).toEqual(['net_tap1', 'net_tap2', 'net_tap3']);
    watch.dispose();
  });

  it('passes a failed poll to onError and catches up at the next one', async () => {
    const real = nodeSysfsIo();
    let failNext = false;
    const flaky: SysfsIo = {
      ...real,
      readDir: (path) => {
        if (failNext) {
          failNext = false;
          throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
        }
        return real.readDir(path);
      },
    };
    const devices = new NodeDevices({ root: fx.root, io: flaky });
    const events: NodeDeviceEvent[] = [];
    const errors: VirtqError[] = [];
    const watch = devices.watch((ev) => events.push(ev), { clock, intervalMs: 1000, onError: (err) => errors.push(err) });
    fx.net('tap4', {});
    failNext = true;
    await clock.advance(1000);
    expect(errors.map((e) => e.code)).toEqual(['OPERATION_FAILED']);
    expect(events).toEqual([]);
    await clock.advance(1000);
    expect(events).toEqual([{ kind: 'added', name: 'net_tap4', cap: 'net' }]);
    watch.dispose();
  });

  it('refuses an interval that is not a positive number', () => {
    const devices = new NodeDevices({ root: fx.root });
    for (const intervalMs of [0, -5, Number.NaN]) {
      expect(() => devices.watch(() => undefined, { clock, intervalMs })).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    }
  });
});
