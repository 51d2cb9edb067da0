// Hostile frames on virtnetworkd's three sockets (rw, ro, admin), the daemon in a network
// namespace of the test's own: random bytes, mutated valid frames, wrong types in every header
// field, unknown programs and procedures, random bodies to every procedure, deep nesting, a
// 16 MiB frame. Property-based with a fixed seed. Throughout, a well-behaved client keeps seeing
// the running network and its port; afterwards the daemon, its dnsmasq, the port's tap and the
// definition file are as they were, and no client slot leaked.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcClient, networkProgram, systemClock, type PortRow } from '../../protocol/index.js';
import type { NetworkClient } from '../../client/network-client.js';
import { NetworkdWorld } from '../helpers/networkd-world.js';
import { alive, call, errorCode, exchange, frame, isWellFormedReply, rawFrame, rssMiB, waitFor } from './hostile-client.js';
import { LivenessProbe } from '../helpers/liveness-probe.js';

const SEED = 0x7e7d;
const RUNS = 150;
const VM = '11111111-2222-4333-8444-555555555555';
/** Names for calls that would change something if they matched: far from "default", so no mutation reaches it. */
const DECOY = 'zz-nothing-here';
const DECOY_ID = '00000000-0000-4000-8000-00000000dead';
const SAFE_ADMIN = ['serverInfo', 'listClients', 'getLimits', 'getLogFilters', 'getLogOutputs', 'getMetrics'];

type Target = { label: string; path: () => string; access: 'rw' | 'ro' | 'admin' };

describe('hostile frames on virtnetworkd\'s sockets', () => {
  let w: NetworkdWorld;
  let client: NetworkClient;
  let admin: RpcClient;
  let daemonPid: number;
  let dnsmasqPid: number;
  let port: PortRow;
  let defFile: string;
  let defBytes: string;
  let baseline: number;
  const probe = new LivenessProbe();
  const sockets = () => w.services.sockets('virtnetworkd');
  const targets: Target[] = [
    { label: 'rw', path: () => sockets().rw, access: 'rw' },
    { label: 'ro', path: () => sockets().ro, access: 'ro' },
    { label: 'admin', path: () => sockets().admin, access: 'admin' },
  ];

  const check = async (): Promise<void> => {
    const net = await client.api.getNetwork({ name: 'default' });
    if (net.state !== 'active' || net.ports !== 1 || net.dnsmasqPid !== dnsmasqPid) throw new Error(`default is ${JSON.stringify(net)}`);
    const ports = (await client.api.listPorts({ network: 'default' })).ports;
    if (ports.length !== 1 || ports[0]?.id !== port.id) throw new Error(`ports are ${JSON.stringify(ports)}`);
  };

  beforeAll(async () => {
    w = new NetworkdWorld('vq-ndf-');
    // The port's VM is "alive" for the whole test: a long grace.
    daemonPid = (await w.start(['--port-grace-ms', '3600000'])).pid;
    client = await w.client();
    dnsmasqPid = (await client.api.startNetwork({ name: 'default' })).dnsmasqPid as number;
    port = await client.api.createPort({ network: 'default', vmUuid: VM, vmName: 'vm1', mac: '52:54:00:00:00:01' });
    defFile = join(w.root.dir, 'etc', 'network', 'default.json');
    defBytes = readFileSync(defFile, 'utf8');
    admin = await RpcClient.connect(sockets().admin, { clock: systemClock() });
    baseline = ((await admin.call('admin', 'listClients', {})) as { clients: unknown[] }).clients.length;
    await check();
    probe.start(check);
  });

  afterAll(async () => {
    await probe.stop();
    admin?.close();
    await w?.cleanup();
  });

  const seeds = (t: Target): unknown[] => {
    const m = (prog: string, proc: string, body: unknown, serial = 7) => ({ prog, proc, type: 'call', serial, status: 'ok', body });
    if (t.access === 'admin') return [...SAFE_ADMIN.map((p) => m('admin', p, {})), m('network', 'listNetworks', {})];
    return [
      m('network', 'listNetworks', {}), m('network', 'getNetwork', { name: 'default' }), m('network', 'listPorts', { network: 'default' }),
      m('network', 'listLeases', { network: 'default' }), m('network', 'subscribeEvents', {}), m('admin', 'serverInfo', {}),
      m('network', 'stopNetwork', { name: DECOY, force: true }), m('network', 'undefineNetwork', { name: DECOY }),
      m('network', 'deletePort', { network: DECOY, id: DECOY_ID }), m('network', 'createPort', { network: DECOY, vmUuid: VM, vmName: 'vm1' }),
      m('network', 'defineNetwork', { definition: { name: DECOY, type: 'nat', bridge: 'x'.repeat(20), ipv4: { address: '10.1.0.1', prefix: 24 } } }),
      m('virtq', 'listDomains', {}), m('storage', 'listPools', {}),
    ];
  };

  const procNames = (t: Target): Array<[string, string]> => (t.access === 'admin'
    ? SAFE_ADMIN.map((p) => ['admin', p])
    : Object.keys(networkProgram.procs).map((p): [string, string] => ['network', p]));

  const hostileFrames = (t: Target): fc.Arbitrary<Uint8Array> => {
    const anything = fc.anything({ maxDepth: 4, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true, withMap: true, withSet: true });
    const seedFrame = fc.constantFrom(...seeds(t)).map(frame);
    const flip = fc.tuple(seedFrame, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }))
      .map(([f, flips]) => { const b = Buffer.from(f); for (const [at, x] of flips) b[at % b.length] = (b[at % b.length] as number) ^ x; return b; });
    const truncated = fc.tuple(seedFrame, fc.nat()).map(([f, n]) => f.subarray(0, n % f.length));
    const wrongLength = fc.tuple(seedFrame, fc.oneof(fc.nat({ max: 4096 }), fc.constantFrom(0, 1, 0x7fff_ffff, 0xffff_ffff, 16 * 1024 * 1024 + 1)))
      .map(([f, n]) => { const b = Buffer.from(f); b.writeUInt32BE(n >>> 0, 0); return b; });
    const headerTypes = fc.record({
      prog: fc.oneof(fc.constantFrom('network', 'admin', 'virtq'), anything),
      proc: fc.oneof(fc.constantFrom(...procNames(t).map(([, p]) => p)), anything),
      type: fc.oneof(fc.constantFrom('call', 'reply', 'event', 'stream'), anything),
      serial: fc.oneof(fc.nat(), fc.constantFrom(-1, 0, 2 ** 32, 2 ** 53, 1.5, Number.NaN), anything),
      status: fc.oneof(fc.constantFrom('ok', 'error'), anything),
      body: anything,
    }, { requiredKeys: [] }).map(frame);
    const unknownNames = fc.tuple(
      fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('__proto__', 'constructor', 'network', 'admin')),
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('__proto__', 'constructor', 'toString', '')),
    ).map(([prog, proc]) => call(prog, proc, {}));
    const randomBody = fc.tuple(fc.constantFrom(...procNames(t)), anything, fc.nat()).map(([[prog, proc], body, serial]) => call(prog, proc, body, serial));
    const nested = fc.tuple(fc.constantFrom(...procNames(t)), fc.integer({ min: 1, max: 100_000 })).map(([[prog, proc], depth]) => {
      const head = Buffer.from(frame({ prog, proc, type: 'call', serial: 3, status: 'ok' }).subarray(4));
      if (head[0] === 0xb9) head.writeUInt16BE(head.readUInt16BE(1) + 1, 1);
      else head[0] = (head[0] as number) + 1;
      const body = Buffer.from([0x64, ...Buffer.from('body'), ...Array.from({ length: depth }, () => 0x81), 0x00]);
      const payload = Buffer.concat([head, body]);
      return rawFrame(payload.length, payload);
    });
    return fc.oneof(
      { arbitrary: flip, weight: 6 }, { arbitrary: truncated, weight: 2 }, { arbitrary: wrongLength, weight: 2 }, { arbitrary: headerTypes, weight: 4 },
      { arbitrary: unknownNames, weight: 2 }, { arbitrary: randomBody, weight: 5 }, { arbitrary: nested, weight: 1 }, { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 2 },
    );
  };

  for (const t of targets) {
    it(`answers hostile frames on the ${t.label} socket with well-formed replies or a close, and keeps serving`, async () => {
      await fc.assert(fc.asyncProperty(hostileFrames(t), async (bytes) => {
        const out = await exchange(t.path(), bytes, { timeoutMs: 5000 });
        expect(out.closedByServer).toBe(true);
        for (const r of out.replies) expect(isWellFormedReply(r), JSON.stringify(r)?.slice(0, 300)).toBe(true);
      }), { seed: SEED, numRuns: RUNS });
      expect(probe.failures).toEqual([]);
      expect(alive(daemonPid) && alive(dnsmasqPid)).toBe(true);
    });
  }

  it('refuses a 16 MiB frame on every socket at once, without decoding it', async () => {
    const n = 16 * 1024 * 1024 - 16;
    const body = Buffer.concat([Buffer.from([0x9a, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), Buffer.alloc(n, 0xa0)]);
    const before = rssMiB(daemonPid);
    const outs = await Promise.all(targets.map((t) => exchange(t.path(), rawFrame(body.length, body), { keepOpen: true, timeoutMs: 10_000 })));
    for (const out of outs) expect(out.replies.map(errorCode)).toEqual(['FRAME_TOO_LARGE']);
    expect(rssMiB(daemonPid) - before).toBeLessThan(200);
    await check();
  });

  it('keeps its network, port, definition and client slots once the fuzzing is over', async () => {
    await probe.stop();
    expect(probe.failures).toEqual([]);
    expect(probe.rounds).toBeGreaterThan(20);
    await check();
    expect(readFileSync(defFile, 'utf8')).toBe(defBytes);
    expect((await client.api.listNetworks({})).networks.map((n) => n.name)).toEqual(['default']);
    expect(w.taps()).toEqual([port.tap]);
    expect(alive(daemonPid) && alive(dnsmasqPid)).toBe(true);
    const count = async () => ((await admin.call('admin', 'listClients', {})) as { clients: unknown[] }).clients.length;
    expect(await waitFor(async () => (await count()) === baseline, 5000)).toBe(true);
    await client.api.stopNetwork({ name: 'default', force: true });
    expect(w.leftovers()).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  });
});
