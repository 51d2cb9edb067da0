// Hostile frames on virtnodedevd's three sockets (rw, ro, admin): random bytes, mutated valid
// frames, wrong types in every header field, unknown programs and procedures, random bodies to
// every procedure, deep nesting and big arrays within the frame limit. Property-based with a fixed
// seed. Throughout, well-behaved clients keep getting the same answers; afterwards the daemon
// still runs, no client slot leaked, and a subscriber from before the fuzzing still gets events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { connectAdmin, connectNodeDev, type NodeDevClient } from '../../client/index.js';
import { nodedevProgram, type AdminConnection, type NodeDeviceEvent } from '../../client/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from '../unit/drivers/nodedev/sysfs-fixture.js';
import { alive, call, exchange, frame, isWellFormedReply, rawFrame, rssMiB, waitFor } from './hostile-client.js';
import { LivenessProbe } from '../helpers/liveness-probe.js';

const SEED = 0x0de7ce;
const RUNS = 400;
const SAFE_ADMIN = ['serverInfo', 'listClients', 'getLimits', 'getLogFilters', 'getLogOutputs', 'getMetrics'];

type Target = { label: string; path: () => string; access: 'rw' | 'ro' | 'admin' };

describe('hostile frames on virtnodedevd\'s sockets', () => {
  let h: ServiceHarness;
  let sys: TmpRoot;
  let fx: SysfsFixture;
  let pid: number;
  let rw: NodeDevClient;
  let ro: NodeDevClient;
  let admin: AdminConnection;
  let baseline: { listing: string; vda: string; clients: number };
  let subscribed: AsyncIterableIterator<NodeDeviceEvent>;
  const probe = new LivenessProbe();
  const sockets = () => h.sockets('virtnodedevd');
  const targets: Target[] = [
    { label: 'rw', path: () => sockets().rw, access: 'rw' },
    { label: 'ro', path: () => sockets().ro, access: 'ro' },
    { label: 'admin', path: () => sockets().admin, access: 'admin' },
  ];

  // The well-behaved clients' view, checked again and again while the fuzzing runs.
  const check = async (): Promise<void> => {
    const listing = JSON.stringify(await rw.api.listDevices({}));
    if (listing !== baseline.listing) throw new Error(`listing changed: ${listing.slice(0, 200)}`);
    const vda = JSON.stringify(await ro.api.getDevice({ name: 'block_vda' }));
    if (vda !== baseline.vda) throw new Error(`block_vda changed: ${vda}`);
    await admin.admin.serverInfo({});
  };

  beforeAll(async () => {
    h = new ServiceHarness(tmpRoot());
    sys = tmpRoot();
    fx = new SysfsFixture(sys.path('sys'));
    buildHost(fx);
    pid = (await h.start('virtnodedevd', ['--sysfs', fx.root, '--poll-ms', '100'])).pid;
    rw = await connectNodeDev(h.uri('nodedev'));
    ro = await connectNodeDev(h.uri('nodedev', true));
    admin = await connectAdmin(h.uri('nodedev'));
    subscribed = await (await connectNodeDev(h.uri('nodedev', true))).events();
    baseline = {
      listing: JSON.stringify(await rw.api.listDevices({})),
      vda: JSON.stringify(await ro.api.getDevice({ name: 'block_vda' })),
      clients: (await admin.admin.listClients({})).clients.length,
    };
    probe.start(check);
  });

  afterAll(async () => {
    await probe.stop();
    await h.cleanup();
    sys.remove();
  });

  // Valid messages for a socket: the seeds that mutations start from.
  const seeds = (t: Target): unknown[] => {
    const m = (prog: string, proc: string, body: unknown, serial = 7) => ({ prog, proc, type: 'call', serial, status: 'ok', body });
    const nodedev = [
      m('nodedev', 'listDevices', {}), m('nodedev', 'listDevices', { cap: 'net' }), m('nodedev', 'getDevice', { name: 'block_vda' }),
      m('nodedev', 'getDevice', { name: 'usb_1_1' }), m('nodedev', 'getDevice', { name: 'net_eth0_52_54_00_12_34_56' }), m('nodedev', 'subscribeEvents', {}),
    ];
    const others = [m('virtq', 'listDomains', {}), m('storage', 'listPools', {}), m('secret', 'getValue', { uuid: '6f0a4e53-1c2b-4d5e-8f90-a1b2c3d4e5f6' })];
    if (t.access === 'admin') return [...SAFE_ADMIN.map((p) => m('admin', p, {})), ...nodedev.slice(0, 2)];
    return [...nodedev, ...others, m('admin', 'serverInfo', {})];
  };

  // Procedures a random body may be sent to: all but the admin ones that change the server.
  const procNames = (t: Target): Array<[string, string]> => {
    if (t.access === 'admin') return SAFE_ADMIN.map((p) => ['admin', p]);
    return [...Object.keys(nodedevProgram.procs).map((p): [string, string] => ['nodedev', p]), ['virtq', 'listDomains'], ['storage', 'deleteVolume'], ['secret', 'setValue']];
  };

  const hostileFrames = (t: Target): fc.Arbitrary<Uint8Array> => {
    const anything = fc.anything({ maxDepth: 4, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true, withMap: true, withSet: true });
    const seedFrame = fc.constantFrom(...seeds(t)).map(frame);
    const flip = fc.tuple(seedFrame, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }))
      .map(([f, flips]) => { const b = Buffer.from(f); for (const [at, x] of flips) b[at % b.length] = (b[at % b.length] as number) ^ x; return b; });
    const truncated = fc.tuple(seedFrame, fc.nat()).map(([f, n]) => f.subarray(0, n % f.length));
    const wrongLength = fc.tuple(seedFrame, fc.oneof(fc.nat({ max: 4096 }), fc.constantFrom(0, 1, 0x7fff_ffff, 0xffff_ffff, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1)))
      .map(([f, n]) => { const b = Buffer.from(f); b.writeUInt32BE(n >>> 0, 0); return b; });
    const headerTypes = fc.record({
      prog: fc.oneof(fc.constantFrom('nodedev', 'admin', 'virtq'), anything),
      proc: fc.oneof(fc.constantFrom(...procNames(t).map(([, p]) => p)), anything),
      type: fc.oneof(fc.constantFrom('call', 'reply', 'event', 'stream'), anything),
      serial: fc.oneof(fc.nat(), fc.constantFrom(-1, 0, 2 ** 32, 2 ** 53, 1.5, Number.NaN), anything),
      status: fc.oneof(fc.constantFrom('ok', 'error'), anything),
      body: anything,
    }, { requiredKeys: [] }).map(frame);
    const unknownNames = fc.tuple(
      fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('__proto__', 'constructor', 'nodedev', 'admin', 'network')),
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'prototype', '')),
    ).map(([prog, proc]) => call(prog, proc, {}));
    // Names as a hostile client would write them: traversal, NUL, huge, other kinds, look-alikes.
    const hostileName = fc.oneof(
      fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 64 }),
      fc.constantFrom('../../etc/passwd', 'block_../../etc', 'net_\u0000', 'pci_0000_00_1f_2\n', 'usb_1_1:1.0', 'block_vda/..', 'x'.repeat(100_000), 'block_vda1'),
      fc.stringMatching(/^(pci|usb|net|block)_[a-z0-9_]{0,40}$/),
    );
    const badGets = fc.tuple(hostileName, fc.nat()).map(([name, serial]) => call('nodedev', 'getDevice', { name }, serial));
    const randomBody = fc.tuple(fc.constantFrom(...procNames(t)), anything, fc.nat()).map(([[prog, proc], body, serial]) => call(prog, proc, body, serial));
    const nested = fc.tuple(fc.constantFrom(...procNames(t)), fc.integer({ min: 1, max: 120_000 }), fc.constantFrom(0x81, 0x9f, 0xa1)).map(([[prog, proc], depth, open]) => {
      const head = Buffer.from(frame({ prog, proc, type: 'call', serial: 3, status: 'ok' }).subarray(4));
      if (head[0] === 0xb9) head.writeUInt16BE(head.readUInt16BE(1) + 1, 1);
      else head[0] = (head[0] as number) + 1;
      const unit = open === 0xa1 ? [0xa1, 0x00] : [open];
      const body = Buffer.from([0x64, ...Buffer.from('body'), ...Array.from({ length: depth }, () => unit).flat(), 0x00]);
      const payload = Buffer.concat([head, body]);
      return rawFrame(payload.length, payload);
    });
    const bigArray = fc.tuple(fc.integer({ min: 1000, max: 400_000 }), fc.constantFrom(0x00, 0x60, 0x80, 0xa0, 0xf6)).map(([n, item]) => {
      const body = Buffer.concat([Buffer.from([0x9a, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), Buffer.alloc(n, item)]);
      return rawFrame(body.length, body);
    });
    return fc.oneof(
      { arbitrary: flip, weight: 6 }, { arbitrary: truncated, weight: 2 }, { arbitrary: wrongLength, weight: 2 },
      { arbitrary: headerTypes, weight: 4 }, { arbitrary: unknownNames, weight: 2 }, { arbitrary: badGets, weight: t.access === 'admin' ? 1 : 4 },
      { arbitrary: randomBody, weight: 4 }, { arbitrary: nested, weight: 1 }, { arbitrary: bigArray, weight: 1 }, { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 2 },
    );
  };

  for (const t of targets) {
    it(`answers hostile frames on the ${t.label} socket with well-formed replies or a close, and keeps serving`, async () => {
      await fc.assert(fc.asyncProperty(hostileFrames(t), async (bytes) => {
        const out = await exchange(t.path(), bytes, { timeoutMs: 5000 });
        expect(out.closedByServer).toBe(true);
        for (const r of out.replies) {
          expect(isWellFormedReply(r), JSON.stringify(r)?.slice(0, 300)).toBe(true);
          // Nothing outside the fixture tree is ever described.
          const m = r as { prog?: unknown; status?: unknown; body?: unknown };
          if (m.prog !== 'nodedev' || m.status !== 'ok') continue;
          for (const [, path] of JSON.stringify(m.body).matchAll(/"path":"([^"]*)"/g)) expect(path?.startsWith(`${fx.root}/`), path).toBe(true);
        }
      }), { seed: SEED, numRuns: RUNS });
      expect(probe.failures).toEqual([]);
      expect(alive(pid)).toBe(true);
    });
  }

  it('keeps every answer, client slot and subscription once the fuzzing is over', async () => {
    await probe.stop();
    expect(probe.failures).toEqual([]);
    expect(probe.rounds).toBeGreaterThan(20);
    await check();
    expect(alive(pid)).toBe(true);
    expect(rssMiB(pid)).toBeLessThan(300);
    expect(await waitFor(async () => (await admin.admin.listClients({})).clients.length === baseline.clients, 5000)).toBe(true);
    fx.net('tap9', {});
    expect(await subscribed.next()).toMatchObject({ done: false, value: { event: 'added', name: 'net_tap9', cap: 'net' } });
  });
});
