// Hostile frames on every socket of virtqemud and of a shim (rw, ro, admin): random bytes,
// mutated valid frames, wrong types in every header field, unknown programs and procedures,
// random bodies, deep nesting and big arrays within the frame limit. Property-based with a fixed
// seed. Throughout, well-behaved clients keep getting right answers; afterwards both daemons
// still run, no client slot leaked, the defined VM's file is byte-identical and the running VM
// runs on the same QEMU.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  RpcClient, registryProgram, shimSockets, virtqProgram,
  type TypedClient, type VirtqProgram,
} from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { alive, call, errorCode, exchange, frame, isWellFormedReply, open, rawFrame, rssMiB, waitFor } from './hostile-client.js';
import { LivenessProbe } from '../helpers/liveness-probe.js';

const SEED = 0xf022ed;
const RUNS = 600;
const KEEP = 'keep-vm';
const RUN = 'run-vm';
/** Names for calls that would change something if they matched: far from KEEP and RUN, so no mutation reaches them. */
const DECOY = 'zz-nothing-here';
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const SAFE_ADMIN = ['serverInfo', 'listClients', 'getLimits', 'getLogFilters', 'getLogOutputs', 'getMetrics'];

type Target = { label: string; path: () => string; access: 'rw' | 'ro' | 'admin' };

describe('hostile frames on every daemon socket', () => {
  let h: DaemonHarness;
  let daemonPid: number;
  let shimPid: number;
  let qemuPid: number;
  let keepFile: string;
  let keepBytes: string;
  let daemonApi: TypedClient<VirtqProgram>;
  let shimApi: TypedClient<VirtqProgram>;
  let admin: { daemon: RpcClient; shim: RpcClient };
  let baseline: { daemon: number; shim: number };
  const probe = new LivenessProbe();

  const shimPaths = () => shimSockets(h.layout, RUN);
  const targets: Target[] = [
    { label: 'virtqemud rw', path: () => h.sockets.rw, access: 'rw' },
    { label: 'virtqemud ro', path: () => h.sockets.ro, access: 'ro' },
    { label: 'virtqemud admin', path: () => h.sockets.admin, access: 'admin' },
    { label: 'shim rw', path: () => shimPaths().rw, access: 'rw' },
    { label: 'shim ro', path: () => shimPaths().ro, access: 'ro' },
    { label: 'shim admin', path: () => shimPaths().admin, access: 'admin' },
  ];

  // The well-behaved clients' view, checked again and again while the fuzzing runs.
  const check = async (): Promise<void> => {
    const rows = (await daemonApi.listDomains({})).domains;
    const keep = rows.find((r) => r.name === KEEP);
    const run = rows.find((r) => r.name === RUN);
    if (keep?.state !== 'shutoff' || keep.persistent !== true) throw new Error(`keep-vm listed as ${JSON.stringify(keep)}`);
    if (run?.state !== 'running' || run.shimUp !== true || run.qemuPid !== qemuPid) throw new Error(`run-vm listed as ${JSON.stringify(run)}`);
    const viaDaemon = await daemonApi.getState({ name: RUN });
    const direct = await shimApi.getInfo({ name: RUN });
    if (viaDaemon.state !== 'running' || direct.state !== 'running' || direct.qemuPid !== qemuPid) throw new Error('run-vm is not running');
  };

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot());
    daemonPid = (await h.startDaemon()).proc.pid as number;
    daemonApi = (await h.client()).api;
    await daemonApi.define({ definition: idleDef(KEEP) });
    const row = await daemonApi.create({ definition: idleDef(RUN) });
    shimPid = row.shimPid as number;
    qemuPid = row.qemuPid as number;
    keepFile = join(h.layout.config, 'domains', `${KEEP}.json`);
    keepBytes = readFileSync(keepFile, 'utf8');
    shimApi = (await h.connect(row.shimSocket as string)).api;
    admin = { daemon: (await h.connect(h.sockets.admin)).rpc, shim: (await h.connect(shimPaths().admin)).rpc };
    await check();
    // virtqemud's pooled connection to the shim (opened by the first forwarded call; getState and
    // getInfo are answered from its registry) belongs in the baseline.
    await daemonApi.blockStats({ name: RUN });
    const count = async (c: RpcClient) => ((await c.call('admin', 'listClients', {})) as { clients: unknown[] }).clients.length;
    baseline = { daemon: await count(admin.daemon), shim: await count(admin.shim) };
    probe.start(check);
  });

  afterAll(async () => {
    await probe.stop();
    await h.cleanup();
  });

  // Valid messages for a socket: the seeds that mutations start from.
  const seeds = (t: Target): unknown[] => {
    const m = (prog: string, proc: string, body: unknown, serial = 7) => ({ prog, proc, type: 'call', serial, status: 'ok', body });
    if (t.access === 'admin') return [...SAFE_ADMIN.map((p) => m('admin', p, {})), m('virtq', 'getState', { name: RUN })];
    const common = [
      m('virtq', 'getState', { name: RUN }), m('virtq', 'getInfo', { name: RUN }), m('virtq', 'getDefinition', { name: RUN }),
      m('virtq', 'memoryStats', { name: RUN }), m('virtq', 'subscribeEvents', {}),
      m('virtq', 'suspend', { name: DECOY }), m('virtq', 'qemuMonitorCommand', { name: DECOY, command: { execute: 'quit' } }),
      m('admin', 'serverInfo', {}),
    ];
    if (t.label.startsWith('shim')) return [...common, m('virtq', 'openConsole', { name: RUN }), m('virtq', 'blockStats', { name: RUN })];
    return [
      ...common, m('virtq', 'listDomains', {}), m('virtq', 'lookupByName', { name: KEEP }), m('virtq', 'undefine', { name: DECOY }),
      m('virtq', 'define', { definition: idleDef('zz-fuzz-defined') }),
      m('registry', 'register', {
        name: KEEP, uuid: '00000000-0000-4000-8000-000000000000', shimPid: 1, socket: h.root.path('nope.sock'), roSocket: h.root.path('nope-ro.sock'),
        adminSocket: h.root.path('nope-admin.sock'), stateFile: h.root.path('nope.json'), state: 'shutoff', reason: 'fuzz', reattach: false,
      }),
    ];
  };

  // Procedures a random body may be sent to: all but the admin ones that change the server.
  const procNames = (t: Target): Array<[string, string]> => {
    if (t.access === 'admin') return SAFE_ADMIN.map((p) => ['admin', p]);
    return [...Object.keys(virtqProgram.procs).map((p): [string, string] => ['virtq', p]), ...Object.keys(registryProgram.procs).map((p): [string, string] => ['registry', p])];
  };

  const hostileFrames = (t: Target): fc.Arbitrary<Uint8Array> => {
    const anything = fc.anything({ maxDepth: 4, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true, withMap: true, withSet: true });
    const seedFrame = fc.constantFrom(...seeds(t)).map(frame);
    const flip = fc.tuple(seedFrame, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }))
      .map(([f, flips]) => { const b = Buffer.from(f); for (const [at, x] of flips) b[at % b.length] = (b[at % b.length] as number) ^ x; return b; });
    const truncated = fc.tuple(seedFrame, fc.nat()).map(([f, n]) => f.subarray(0, n % f.length));
    const wrongLength = fc.tuple(seedFrame, fc.oneof(fc.nat({ max: 4096 }), fc.constantFrom(0, 1, 0x7fff_ffff, 0xffff_ffff, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1)))
      .map(([f, n]) => { const b = Buffer.from(f); b.writeUInt32BE(n >>> 0, 0); return b; });
    const appended = fc.tuple(seedFrame, fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([f, tail]) => Buffer.concat([f, tail]));
    const headerTypes = fc.record({
      prog: fc.oneof(fc.constantFrom('virtq', 'admin', 'registry'), anything),
      proc: fc.oneof(fc.constantFrom(...procNames(t).map(([, p]) => p)), anything),
      type: fc.oneof(fc.constantFrom('call', 'reply', 'event', 'stream'), anything),
      serial: fc.oneof(fc.nat(), fc.constantFrom(-1, 0, 2 ** 32, 2 ** 53, 1.5, Number.NaN), anything),
      status: fc.oneof(fc.constantFrom('ok', 'error'), anything),
      body: anything,
    }, { requiredKeys: [] }).map(frame);
    const notAMap = anything.map(frame);
    const unknownNames = fc.tuple(
      fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', 'virtq', 'admin', 'registry')),
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'valueOf', 'prototype', '')),
    ).map(([prog, proc]) => call(prog, proc, {}));
    const randomBody = fc.tuple(fc.constantFrom(...procNames(t)), anything, fc.nat()).map(([[prog, proc], body, serial]) => call(prog, proc, body, serial));
    const nested = fc.tuple(fc.constantFrom(...procNames(t)), fc.integer({ min: 1, max: 120_000 }), fc.constantFrom(0x81, 0x9f, 0xa1)).map(([[prog, proc], depth, open]) => {
      // The message map with `body` set to `depth` nested arrays (or maps, through key 0).
      const head = Buffer.from(frame({ prog, proc, type: 'call', serial: 3, status: 'ok' }).subarray(4));
      // One more pair in the map, for body (cbor-x writes map sizes as 0xb9 + u16).
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
    const randomBytes = fc.uint8Array({ maxLength: 300 });
    return fc.oneof(
      { arbitrary: flip, weight: 6 }, { arbitrary: truncated, weight: 2 }, { arbitrary: wrongLength, weight: 2 }, { arbitrary: appended, weight: 1 },
      { arbitrary: headerTypes, weight: 4 }, { arbitrary: notAMap, weight: 1 }, { arbitrary: unknownNames, weight: 2 },
      { arbitrary: randomBody, weight: 4 }, { arbitrary: nested, weight: 1 }, { arbitrary: bigArray, weight: 1 }, { arbitrary: randomBytes, weight: 2 },
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
      expect(alive(daemonPid) && alive(shimPid) && alive(qemuPid)).toBe(true);
    });
  }

  it('survives hostile stream frames on an open console, directly and through virtqemud', async () => {
    const anything = fc.anything({ maxDepth: 3, withBigInt: true, withTypedArray: true, withNullPrototype: true });
    const chunk = fc.oneof(fc.uint8Array({ maxLength: 512 }), fc.constant(null), anything);
    await fc.assert(fc.asyncProperty(fc.constantFrom(targets[0] as Target, targets[3] as Target), fc.array(fc.tuple(fc.constantFrom(9, 9, 9, 0, 10, 2 ** 32 - 1), chunk), { maxLength: 12 }), async (t, chunks) => {
      const s = await open(t.path());
      const replied = new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.write(call('virtq', 'openConsole', { name: RUN }, 9));
      await replied;
      for (const [serial, body] of chunks) s.write(frame({ prog: 'virtq', proc: 'openConsole', type: 'stream', serial, status: 'ok', body }));
      const closed = new Promise((resolve) => s.once('close', resolve));
      s.end();
      await closed;
    }), { seed: SEED, numRuns: 60 });
    expect(probe.failures).toEqual([]);
    expect(alive(daemonPid) && alive(shimPid) && alive(qemuPid)).toBe(true);
  });

  it('refuses a 16 MiB frame of empty maps on every socket at once, without decoding it', async () => {
    // Before: decoded into ~16 million objects, which killed a shim (64 MiB heap) and took
    // virtqemud past 2 GiB with four such frames.
    const n = 16 * 1024 * 1024 - 16;
    const body = Buffer.concat([Buffer.from([0x9a, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), Buffer.alloc(n, 0xa0)]);
    const bomb = rawFrame(body.length, body);
    const before = { daemon: rssMiB(daemonPid), shim: rssMiB(shimPid) };
    const outs = await Promise.all([...targets, ...targets].map((t) => exchange(t.path(), bomb, { keepOpen: true, timeoutMs: 10_000 })));
    for (const out of outs) {
      expect(out.closedByServer).toBe(true);
      expect(out.replies.map(errorCode)).toEqual(['FRAME_TOO_LARGE']);
    }
    expect(alive(shimPid) && alive(daemonPid)).toBe(true);
    expect(rssMiB(daemonPid) - before.daemon).toBeLessThan(200);
    expect(rssMiB(shimPid) - before.shim).toBeLessThan(200);
    await check();
  });

  it('keeps every VM, definition and client slot once the fuzzing is over', async () => {
    await probe.stop();
    expect(probe.failures).toEqual([]);
    expect(probe.rounds).toBeGreaterThan(20);
    await check();
    expect(readFileSync(keepFile, 'utf8')).toBe(keepBytes);
    expect(alive(daemonPid) && alive(shimPid) && alive(qemuPid)).toBe(true);
    const count = async (c: RpcClient) => ((await c.call('admin', 'listClients', {})) as { clients: unknown[] }).clients.length;
    expect(await waitFor(async () => (await count(admin.daemon)) === baseline.daemon && (await count(admin.shim)) === baseline.shim, 5000)).toBe(true);
    // A fresh client of each kind is served as before.
    for (const t of targets) {
      const { rpc, api } = await h.connect(t.path());
      if (t.access === 'admin') await expect(rpc.call('admin', 'getLimits', {})).resolves.toMatchObject({ maxClients: 5000 });
      else await expect(api.getState({ name: RUN })).resolves.toEqual({ state: 'running', reason: 'booted' });
    }
  });
});
