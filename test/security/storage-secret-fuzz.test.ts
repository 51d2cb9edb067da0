// Hostile frames on every socket of virtstoraged and virtsecretd (rw, ro, admin): random bytes,
// mutated valid frames, wrong types in every header field, unknown programs and procedures,
// random bodies for every procedure, deep nesting, and hostile stream frames on open uploads and
// downloads. Property-based with a fixed seed. Throughout, well-behaved clients keep getting right
// answers (the pool listing, a volume's info, a secret's metadata and value); afterwards both
// daemons run, no client slot leaked, the pool definition and the secret's metadata are
// byte-identical, the volumes' bytes unchanged, and no secret value is in either daemon's log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { secretProgram, storageProgram, type RpcClient } from '../../protocol/index.js';
import { KEEP, MiB, SECRET_VALUE, StorageWorld, alive, sha256, until } from '../helpers/storage-world.js';
import { call, exchange, frame, isWellFormedReply, open, splitFrames } from './hostile-client.js';
import { createCodec } from '../../protocol/codec.js';
import { anything, hostileFrames } from './hostile-frames.js';
import { LivenessProbe } from '../helpers/liveness-probe.js';

const SEED = 0x5707ed;
const RUNS = 200;
/** Names for calls that would change something if they matched: lengths no mutation turns into "default" or KEEP. */
const DECOY = 'zz-nothing-here';
const DECOY_UUID = '0000dec0-0000-4000-8000-00000000dec0';
const SCRATCH = 'fuzz-scratch.raw';
const SAFE_ADMIN = ['serverInfo', 'listClients', 'getLimits', 'getLogFilters', 'getLogOutputs', 'getMetrics'];

type Daemon = 'virtstoraged' | 'virtsecretd';
type Target = { label: string; daemon: Daemon; access: 'rw' | 'ro' | 'admin' };
const m = (prog: string, proc: string, body: unknown, serial = 7) => ({ prog, proc, type: 'call', serial, status: 'ok', body });

describe('hostile frames on every socket of virtstoraged and virtsecretd', () => {
  let w: StorageWorld;
  let admin: Record<Daemon, RpcClient>;
  let baseline: Record<Daemon, number>;
  let keepMeta: unknown;
  const probe = new LivenessProbe();
  const targets: Target[] = (['virtstoraged', 'virtsecretd'] as const).flatMap((daemon) => (['rw', 'ro', 'admin'] as const).map((access) => ({ label: `${daemon} ${access}`, daemon, access })));
  const path = (t: Target) => w.h.sockets(t.daemon)[t.access];
  const count = async (d: Daemon) => ((await admin[d].call('admin', 'listClients', {})) as { clients: unknown[] }).clients.length;

  // The well-behaved clients' view, checked again and again while the fuzzing runs.
  const check = async (): Promise<void> => {
    const pools = (await w.storageRo.api.listPools({})).pools;
    if (!pools.some((p) => p.name === 'default' && p.state === 'active' && p.volumes >= 2)) throw new Error(`pools listed as ${JSON.stringify(pools)}`);
    const vol = await w.storage.api.getVolume({ pool: 'default', name: KEEP });
    if (vol.capacity !== MiB || vol.format !== 'raw') throw new Error(`keep volume as ${JSON.stringify(vol)}`);
    const meta = await w.secretRo.api.getSecret({ uuid: w.keepSecret });
    if (JSON.stringify(meta) !== JSON.stringify(keepMeta)) throw new Error(`secret as ${JSON.stringify(meta)}`);
    if (!Buffer.from((await w.secret.api.getValue({ uuid: w.keepSecret })).value).equals(SECRET_VALUE)) throw new Error('secret value changed');
    if (!Buffer.from((await w.secret.api.useValue({ uuid: w.keepSecret, consumer: { purpose: 'fuzz probe' } })).value).equals(SECRET_VALUE)) throw new Error('secret value changed');
  };

  beforeAll(async () => {
    w = await StorageWorld.start();
    await w.storage.api.createVolume({ pool: 'default', name: SCRATCH, capacity: 1024 });
    w.expected.add(SCRATCH);
    keepMeta = await w.secretRo.api.getSecret({ uuid: w.keepSecret });
    admin = { virtstoraged: await w.raw('virtstoraged', 'admin'), virtsecretd: await w.raw('virtsecretd', 'admin') };
    await check();
    baseline = { virtstoraged: await count('virtstoraged'), virtsecretd: await count('virtsecretd') };
    probe.start(check, 25);
  });

  afterAll(async () => {
    await probe.stop();
    for (const c of Object.values(admin ?? {})) c.close();
    await w.stop();
  });

  // Valid messages for a socket: the seeds that mutations start from.
  const seeds = (t: Target): unknown[] => {
    if (t.access === 'admin') return [...SAFE_ADMIN.map((p) => m('admin', p, {})), m(t.daemon === 'virtstoraged' ? 'storage' : 'secret', 'listPools', {})];
    if (t.daemon === 'virtsecretd') {
      return [
        m('secret', 'listSecrets', {}), m('secret', 'getSecret', { uuid: w.keepSecret }), m('secret', 'lookupSecretByUsage', { usage: { type: 'text', text: 'keep' } }),
        m('secret', 'getValue', { uuid: w.keepSecret }), m('secret', 'useValue', { uuid: w.keepSecret, consumer: { purpose: 'fuzz' } }),
        m('secret', 'defineSecret', { definition: { usage: { type: 'text', text: 'zz-fuzz-usage' }, description: 'fuzz' } }),
        m('secret', 'setValue', { uuid: DECOY_UUID, value: Buffer.from('fuzz value') }), m('secret', 'undefineSecret', { uuid: DECOY_UUID }),
        m('admin', 'serverInfo', {}), m('storage', 'listPools', {}),
      ];
    }
    return [
      m('storage', 'listPools', {}), m('storage', 'getPool', { name: 'default' }), m('storage', 'listVolumes', { pool: 'default' }),
      m('storage', 'getVolume', { pool: 'default', name: KEEP }), m('storage', 'listJobs', {}), m('storage', 'downloadVolume', { pool: 'default', name: KEEP }),
      m('storage', 'refreshPool', { name: 'default' }), m('storage', 'cancelJob', { job: DECOY }), m('storage', 'deleteVolume', { pool: 'default', name: DECOY }),
      m('storage', 'createVolume', { pool: DECOY, name: DECOY, format: 'qcow2', capacity: MiB, backing: { pool: 'default', name: KEEP } }),
      m('storage', 'cloneVolume', { pool: 'default', source: DECOY, name: 'zz-nothing-there', thin: true, job: 'zz-job' }),
      m('storage', 'resizeVolume', { pool: 'default', name: DECOY, capacity: 2 * MiB, shrink: true }),
      m('storage', 'uploadVolume', { pool: 'default', name: SCRATCH, length: 16 }),
      m('storage', 'definePool', { definition: { name: 'zz-fuzz-pool', type: 'dir', path: w.h.root.path('zz-fuzz-pool') } }),
      m('storage', 'startPool', { name: DECOY, build: true }), m('storage', 'stopPool', { name: DECOY }), m('storage', 'undefinePool', { name: DECOY }),
      m('storage', 'setPoolAutostart', { name: DECOY, autostart: true }), m('admin', 'serverInfo', {}), m('secret', 'getValue', { uuid: w.keepSecret }),
    ];
  };

  // Procedures a random body may be sent to: every one of the daemon's program, and the admin ones that change nothing.
  const procNames = (t: Target): Array<[string, string]> => {
    const safeAdmin = SAFE_ADMIN.map((p): [string, string] => ['admin', p]);
    if (t.access === 'admin') return safeAdmin;
    const program = t.daemon === 'virtstoraged' ? storageProgram : secretProgram;
    return [...Object.keys(program.procs).map((p): [string, string] => [program.name, p]), ...safeAdmin];
  };

  for (const t of targets) {
    it(`answers hostile frames on the ${t.label} socket with well-formed replies or a close, and keeps serving`, async () => {
      const programs = ['storage', 'secret', 'admin', 'virtq', 'network'];
      await fc.assert(fc.asyncProperty(hostileFrames(seeds(t), procNames(t), programs), async (bytes) => {
        const out = await exchange(path(t), bytes, { timeoutMs: 5000 });
        expect(out.closedByServer).toBe(true);
        for (const r of out.replies) expect(isWellFormedReply(r), JSON.stringify(r)?.slice(0, 300)).toBe(true);
      }), { seed: SEED, numRuns: RUNS });
      expect(probe.failures).toEqual([]);
      expect(alive(w.storaged.pid) && alive(w.secretd.pid)).toBe(true);
    });
  }

  it('survives hostile stream frames on open uploads and downloads: an upload commits exactly when it ends cleanly after every byte', async () => {
    const codec = createCodec();
    const bytes = fc.constantFrom(256, 512, 1024).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
    const chunk = fc.oneof({ arbitrary: bytes, weight: 5 }, { arbitrary: fc.constant(null), weight: 1 }, { arbitrary: anything(3), weight: 1 });
    type Sent = Array<[number, unknown, string]>;
    const junk: fc.Arbitrary<Sent> = fc.array(fc.tuple(fc.constantFrom(9, 9, 9, 9, 0, 10, 2 ** 32 - 1), chunk, fc.constantFrom('ok', 'ok', 'ok', 'ok', 'ok', 'error')), { maxLength: 8 });
    // Every byte, then a clean end, an error or a non-bytes body (also an end), then more junk.
    const fill = fc.constantFrom([1024], [512, 512], [256, 256, 512], [768, 256]).chain((sizes) => fc.tuple(...sizes.map((n) => fc.uint8Array({ minLength: n, maxLength: n }))));
    const ends = fc.constantFrom<[unknown, string]>([null, 'ok'], [null, 'ok'], [{ code: 'OPERATION_ABORTED', message: 'gave up' }, 'error'], ['not bytes', 'ok']);
    const whole: fc.Arbitrary<Sent> = fc.tuple(fill, ends, junk).map(([data, [end, status], after]) => [...data.map((c): [number, unknown, string] => [9, c, 'ok']), [9, end, status], ...after]);
    const frames = fc.oneof({ arbitrary: junk, weight: 2 }, { arbitrary: whole, weight: 1 });
    const scratch = join(w.poolDir, SCRATCH);
    /** What the daemon must make of the frames: the new bytes when they end cleanly after exactly 1 KiB, else nothing. */
    const outcome = (sent: Sent): Buffer | undefined => {
      const got: Buffer[] = [];
      for (const [serial, body, status] of sent) {
        if (serial !== 9) continue;
        if (status === 'error') return undefined;
        const wire = codec.decode(codec.encode(body));
        if (!(wire instanceof Uint8Array)) return Buffer.concat(got).length === 1024 ? Buffer.concat(got) : undefined;
        got.push(Buffer.from(wire));
        if (Buffer.concat(got).length > 1024) return undefined;
      }
      return undefined;
    };
    let commits = 0;
    await fc.assert(fc.asyncProperty(fc.constantFrom(true, true, true, false), frames, async (upload, sent) => {
      const t = targets[0] as Target;
      const before = readFileSync(scratch);
      const socket = await open(path(t));
      const got: Buffer[] = [];
      socket.on('data', (d: Buffer) => got.push(d));
      socket.write(frame(upload ? m('storage', 'uploadVolume', { pool: 'default', name: SCRATCH, length: 1024 }, 9) : m('storage', 'downloadVolume', { pool: 'default', name: KEEP }, 9)));
      expect(await until(() => got.length > 0, 5000, 2)).toBe(true);
      for (const [serial, body, status] of sent) socket.write(frame({ prog: 'storage', proc: 'uploadVolume', type: 'stream', serial, status, body }));
      const after = upload ? outcome(sent) : undefined;
      // A clean upload: the daemon ends the stream (done) once the volume holds the new bytes.
      if (after !== undefined) expect(await until(() => splitFrames(Buffer.concat(got)).some((f) => { const r = codec.decode(f) as { type: string; body: unknown }; return r.type === 'stream' && r.body === null; }), 5000, 2)).toBe(true);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.end();
      await closed;
      expect(await until(async () => (await w.storage.api.listJobs({})).jobs.length === 0, 10_000, 2)).toBe(true);
      expect(readFileSync(scratch).equals(after ?? before), JSON.stringify(sent.map(([serial, body, status]) => [serial, body instanceof Uint8Array ? body.length : body === null ? null : typeof body, status]))).toBe(true);
      if (after !== undefined) commits++;
    }), { seed: SEED, numRuns: 80 });
    expect(commits).toBeGreaterThan(8);
    expect(probe.failures).toEqual([]);
    expect(statSync(scratch).size).toBe(1024);
    expect(w.temps()).toEqual([]);
    expect(alive(w.storaged.pid) && alive(w.secretd.pid)).toBe(true);
  });

  it('keeps every definition, volume, secret and client slot once the fuzzing is over, and logs no secret value', async () => {
    await probe.stop();
    expect(probe.failures).toEqual([]);
    expect(probe.rounds).toBeGreaterThan(20);
    await check();
    expect(alive(w.storaged.pid) && alive(w.secretd.pid)).toBe(true);
    expect(await until(async () => (await count('virtstoraged')) === baseline.virtstoraged && (await count('virtsecretd')) === baseline.virtsecretd, 5000)).toBe(true);
    expect(readFileSync(w.poolFile, 'utf8')).toBe(w.poolBytes);
    expect(readFileSync(w.secretMetaFile, 'utf8')).toBe(w.secretMetaBytes);
    expect(sha256(join(w.poolDir, KEEP))).toBe(w.keepSum);
    expect(w.temps()).toEqual([]);
    expect(w.leakedSecret()).toEqual([]);
    // The probe used the secret value all along: logged as used each time, never the value.
    expect(readFileSync(join(w.h.layout.log, 'virtsecretd.log'), 'utf8').split('"SECRET_USED"').length).toBeGreaterThan(probe.rounds);
    // A fresh client of each kind is served as before.
    for (const t of targets) {
      const out = await exchange(path(t), call(t.access === 'admin' ? 'admin' : t.daemon === 'virtstoraged' ? 'storage' : 'secret', t.access === 'admin' ? 'getLimits' : t.daemon === 'virtstoraged' ? 'listPools' : 'listSecrets', {}, 1), { keepOpen: true, expectReplies: 1 });
      expect(out.replies, t.label).toEqual([expect.objectContaining({ serial: 1, status: 'ok' })]);
    }
  });
});
