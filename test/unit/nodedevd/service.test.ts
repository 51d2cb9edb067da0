// virtnodedevd in process, on a fixture sysfs and a fake clock: its options, what it serves on
// its sockets, device events pushed to the connections that subscribed (and no other) at the
// next poll, and its metrics. The built binary is exercised in test/integration/nodedevd.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectNodeDev, type NodeDevClient } from '../../../client/index.js';
import { startService, type RunningService } from '../../../daemon/run-service.js';
import { MIN_POLL_MS, nodedevdService, parseNodedevdOptions } from '../../../nodedevd/service.js';
import type { NodeDeviceEvent } from '../../../protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from '../drivers/nodedev/sysfs-fixture.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('virtnodedevd options', () => {
  it('defaults to /sys polled every 2 s', () => {
    expect(parseNodedevdOptions({})).toEqual({ sysfs: '/sys', pollMs: 2000 });
    expect(parseNodedevdOptions({ sysfs: '/tmp/sys', 'poll-ms': '50' })).toEqual({ sysfs: '/tmp/sys', pollMs: 50 });
  });

  it('refuses a relative sysfs root and a poll interval that is not a whole number of at least 10 ms', () => {
    expect(codeOf(() => parseNodedevdOptions({ sysfs: 'sys' }))).toBe('INVALID_ARG');
    for (const bad of ['0', String(MIN_POLL_MS - 1), '1.5', 'fast', '-100']) expect(codeOf(() => parseNodedevdOptions({ 'poll-ms': bad })), bad).toBe('INVALID_ARG');
  });
});

describe('virtnodedevd in process', () => {
  let tmp: TmpRoot;
  let fx: SysfsFixture;
  let clock: FakeClock;
  let running: RunningService | undefined;
  const clients: NodeDevClient[] = [];

  const start = async (sysfs = fx.root): Promise<RunningService> => {
    running = await startService(nodedevdService('test'), {
      root: tmp.path('root'), mode: 'system', logFilters: 'warn', logStderr: false, httpAddress: undefined, partialFrameTimeoutMs: 30_000,
    }, { sysfs, pollMs: 500 }, {}, clock);
    return running;
  };
  const client = async (ro = false): Promise<NodeDevClient> => {
    const c = await connectNodeDev(`nodedev:///system?root=${tmp.path('root')}${ro ? '&mode=ro' : ''}`);
    clients.push(c);
    return c;
  };

  beforeEach(() => {
    tmp = tmpRoot();
    fx = new SysfsFixture(tmp.path('sys'));
    buildHost(fx);
    clock = new FakeClock();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await running?.close();
    running = undefined;
    tmp.remove();
  });

  it('fails to start, naming the root, when there is no sysfs there', async () => {
    await expect(start(tmp.path('nowhere'))).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining(tmp.path('nowhere')) });
  });

  it('pushes added and removed events at the next poll to subscribed connections only', async () => {
    await start();
    const watcher = await client(true);
    const events = await watcher.events();
    const bystander = await client();
    const bystanderEvents: unknown[] = [];
    void (async () => { for await (const ev of bystander.conn.events()) bystanderEvents.push(ev); })();

    fx.net('tap0', { address: 'fe:54:00:01:02:03' });
    fx.unplug('class/block/vda2', 'devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda2');
    const counted = async (): Promise<number> => (await (running as RunningService).service.metrics.getSingleMetric('virtq_nodedev_events_total')?.get())?.values.reduce((a, v) => a + v.value, 0) ?? -1;
    await clock.advance(499);
    expect(await counted()).toBe(0);
    await clock.advance(1);
    expect(await counted()).toBe(2);
    const got: NodeDeviceEvent[] = [];
    for (let i = 0; i < 2; i++) got.push((await events.next()).value as NodeDeviceEvent);
    expect(got).toEqual([
      { event: 'removed', name: 'block_vda2', cap: 'block', timestamp: clock.now() },
      { event: 'added', name: 'net_tap0_fe_54_00_01_02_03', cap: 'net', timestamp: clock.now() },
    ]);
    // Anything pushed to the bystander would have arrived before the reply to a later call.
    await bystander.api.listDevices({ cap: 'usb' });
    expect(bystanderEvents).toEqual([]);

    const metrics = await (running as RunningService).service.metrics.getMetricsAsJSON();
    const values = (name: string) => (metrics.find((m) => m.name === name)?.values ?? []).map((v) => [v.labels, v.value]);
    const daemon = 'virtnodedevd';
    expect(values('virtq_nodedev_events_total')).toEqual([[{ daemon, event: 'added' }, 1], [{ daemon, event: 'removed' }, 1]]);
    expect(values('virtq_nodedev_devices')).toEqual([[{ daemon, cap: 'pci' }, 8], [{ daemon, cap: 'usb' }, 2], [{ daemon, cap: 'net' }, 5], [{ daemon, cap: 'block' }, 5]]);
    await events.return?.();
  });

  it('stops polling when it closes', async () => {
    const r = await start();
    expect(clock.pending()).toBeGreaterThan(0);
    await r.close();
    running = undefined;
    expect(clock.pending()).toBe(0);
  });
});
