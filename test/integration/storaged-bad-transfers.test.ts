// Bad transfers and long operations on virtstoraged, as a built daemon under a tmp root: uploads
// too long or too short, uploaders that hang up or end their stream with an error, stream frames
// for serials never opened or after the end, clones whose client goes away or that are
// cancelled, a full disk. Each: a typed error, the daemon keeps serving, the volume is as it was
// (never half a volume under its name), no temp file, nothing else lost (StorageWorld.intact()).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VirtqError, type RpcClient } from '../../protocol/index.js';
import { KEEP, MiB, StorageWorld, chunks, refusal, sha256, until } from '../helpers/storage-world.js';
import { createCodec } from '../../protocol/codec.js';
import { frame, open, splitFrames } from '../security/hostile-client.js';

/** Child processes of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return Number(readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]) === pid;
    } catch {
      return false;
    }
  }).map(Number);
}

/** A raw connection: frames written as given, every frame received decoded and kept. */
async function rawSession(path: string) {
  const s = await open(path);
  const codec = createCodec();
  const got: Array<{ type: string; serial: number; status: string; body: unknown }> = [];
  let buf = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    const frames = splitFrames(buf);
    for (const f of frames) got.push(codec.decode(f) as never);
    buf = buf.subarray(frames.reduce((n, f) => n + f.length + 4, 0));
  });
  const msg = (type: string, serial: number, body: unknown, status = 'ok') => s.write(frame({ prog: 'storage', proc: 'uploadVolume', type, serial, status, body }));
  return {
    got, socket: s,
    call: (proc: string, serial: number, body: unknown) => s.write(frame({ prog: 'storage', proc, type: 'call', serial, status: 'ok', body })),
    data: (serial: number, body: unknown, status = 'ok') => msg('stream', serial, body, status),
    /** The first frame of `type` for `serial` that satisfies `pick`. */
    async next(type: string, serial: number, pick: (m: { status: string; body: unknown }) => boolean = () => true) {
      expect(await until(() => got.some((m) => m.type === type && m.serial === serial && pick(m)), 10_000), `${type} ${serial}`).toBe(true);
      return got.find((m) => m.type === type && m.serial === serial && pick(m)) as { status: string; body: unknown };
    },
  };
}

describe('virtstoraged meets bad transfers', () => {
  let w: StorageWorld;
  let admin: RpcClient;
  const clients = async () => ((await admin.call('admin', 'listClients', {})) as { clients: unknown[] }).clients.length;
  const uploads = async (name: string) => (await w.storage.api.listJobs({})).jobs.filter((j) => j.volume === name);
  beforeAll(async () => {
    w = await StorageWorld.start();
    admin = await w.raw('virtstoraged', 'admin');
  });
  afterAll(async () => { admin.close(); await w.stop(); });
  afterEach(async () => { expect(await w.intact()).toEqual([]); });

  it('refuses an upload longer than the volume or than announced, and one that ends short, the volume unchanged', async () => {
    const path = w.plant('scratch.raw', randomBytes(2 * MiB));
    const sum = sha256(path);
    const e1 = await refusal(() => w.storage.upload('default', 'scratch.raw', chunks(randomBytes(3 * MiB)), 3 * MiB));
    expect(e1).toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('longer than the volume') });
    const e2 = await refusal(() => w.storage.upload('default', 'scratch.raw', chunks(randomBytes(MiB + 1)), MiB));
    expect(e2).toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining(`more than the ${MiB} bytes announced`) });
    const e3 = await refusal(() => w.storage.upload('default', 'scratch.raw', chunks(randomBytes(MiB)), 2 * MiB));
    expect(e3).toMatchObject({ code: 'OPERATION_ABORTED', message: expect.stringContaining(`after ${MiB} of ${2 * MiB} bytes`) });
    expect(await refusal(() => w.storageRo.upload('default', KEEP, chunks(randomBytes(16)), 16))).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await refusal(() => w.storage.upload('default', 'nosuch.raw', chunks(randomBytes(16)), 16))).toMatchObject({ code: 'NO_STORAGE_VOL' });
    expect(sha256(path)).toBe(sum);
  });

  it('keeps the volume and leaves no temp file when an uploader or a downloader hangs up midway', async () => {
    const path = w.plant('hangup.raw', randomBytes(16 * MiB));
    const sum = sha256(path);
    const before = await clients();
    const rpc = await w.raw('virtstoraged');
    const stream = await rpc.openStream('storage', 'uploadVolume', { pool: 'default', name: 'hangup.raw', length: 16 * MiB });
    for await (const chunk of chunks(randomBytes(10 * MiB))) { stream.write(chunk); await stream.drain(); }
    // The daemon has taken 10 MiB into a temp file (8 MiB of it written) when the client goes.
    expect(await until(async () => (await uploads('hangup.raw'))[0]?.doneBytes === 10 * MiB && w.temps().length === 1)).toBe(true);
    rpc.close();
    expect(await until(async () => (await uploads('hangup.raw')).length === 0 && w.temps().length === 0)).toBe(true);
    expect(sha256(path)).toBe(sum);
    // A volume's bytes are its VM's data: never to a read-only client (before: any local user could
    // download every disk through the 0666 socket), whole to a read-write one.
    expect(await refusal(() => w.storageRo.download('default', 'hangup.raw', async () => undefined))).toMatchObject({ code: 'PERMISSION_DENIED' });
    const whole: Buffer[] = [];
    expect(await w.storage.download('default', 'hangup.raw', async (c) => { whole.push(Buffer.from(c)); })).toBe(16 * MiB);
    expect(Buffer.concat(whole).equals(readFileSync(path))).toBe(true);
    // A downloader that reads one chunk and goes: the download stops, its job with it.
    const reader = await w.raw('virtstoraged');
    const down = await reader.openStream('storage', 'downloadVolume', { pool: 'default', name: 'hangup.raw' });
    let first = 0;
    for await (const chunk of down) { first = chunk.length; break; }
    expect(first).toBeGreaterThan(0);
    reader.close();
    expect(await until(async () => (await clients()) === before && (await w.storage.api.listJobs({})).jobs.length === 0)).toBe(true);
    expect(childrenOf(w.storaged.pid)).toEqual([]);
  });

  it('keeps the volume when the uploader ends its stream with an error, midway or after every byte', async () => {
    const path = w.plant('failed.raw', randomBytes(2 * MiB));
    const sum = sha256(path);
    for (const bytes of [MiB, 2 * MiB]) {
      const rpc = await w.raw('virtstoraged');
      const stream = await rpc.openStream('storage', 'uploadVolume', { pool: 'default', name: 'failed.raw', length: 2 * MiB });
      for await (const chunk of chunks(randomBytes(bytes))) stream.write(chunk);
      // Before: an error after the last byte ended the upload like a clean end, and the volume was replaced.
      stream.fail(new VirtqError('OPERATION_ABORTED', 'the uploader gave up'));
      expect(await until(async () => (await uploads('failed.raw')).length === 0)).toBe(true);
      rpc.close();
      expect(sha256(path), `${bytes} bytes then an error`).toBe(sum);
    }
    // An error frame whose body is not an error at all.
    const raw = await rawSession(w.h.sockets('virtstoraged').rw);
    raw.call('uploadVolume', 3, { pool: 'default', name: 'failed.raw', length: 4 });
    expect((await raw.next('reply', 3)).status).toBe('ok');
    raw.data(3, Buffer.from('abcd'));
    raw.data(3, 42, 'error');
    expect(await until(async () => (await uploads('failed.raw')).length === 0)).toBe(true);
    raw.socket.destroy();
    expect(sha256(path)).toBe(sum);
  });

  it('ignores stream frames for a serial never opened and after its stream ended, and serves the connection on', async () => {
    const path = w.plant('late.raw', randomBytes(64 * 1024));
    const raw = await rawSession(w.h.sockets('virtstoraged').rw);
    for (const [body, status] of [[Buffer.from('stray'), 'ok'], [null, 'ok'], [{ code: 'INTERNAL', message: 'x' }, 'error'], ['text', 'ok'], [[1, 2], 'ok']] as const) raw.data(77, body, status);
    raw.call('listPools', 1, {});
    expect((await raw.next('reply', 1)).status).toBe('ok');
    const fresh = randomBytes(64 * 1024);
    raw.call('uploadVolume', 2, { pool: 'default', name: 'late.raw', length: fresh.length });
    expect((await raw.next('reply', 2)).status).toBe('ok');
    raw.data(2, fresh);
    raw.data(2, null);
    expect((await raw.next('stream', 2, (m) => m.body === null)).status).toBe('ok');
    expect(readFileSync(path).equals(fresh)).toBe(true);
    // After the end: more bytes, another end, an error; then a call on the same connection.
    raw.data(2, randomBytes(1024));
    raw.data(2, null);
    raw.data(2, { code: 'OPERATION_ABORTED', message: 'late' }, 'error');
    raw.call('getVolume', 3, { pool: 'default', name: 'late.raw' });
    expect(await raw.next('reply', 3)).toMatchObject({ status: 'ok', body: { name: 'late.raw', capacity: fresh.length } });
    expect(readFileSync(path).equals(fresh)).toBe(true);
    // A second upload, a delete, a resize or a pool stop while an upload is open: refused, naming
    // the upload (before: LOCK_CONFLICT blaming "a VM"), and the first upload still completes.
    raw.call('uploadVolume', 4, { pool: 'default', name: 'late.raw', length: 16 });
    expect((await raw.next('reply', 4)).status).toBe('ok');
    raw.call('uploadVolume', 5, { pool: 'default', name: 'late.raw', length: 16 });
    const busy = { status: 'error', body: { code: 'IN_USE', message: expect.stringContaining('still working on it (upload into volume default/late.raw)') } };
    expect(await raw.next('reply', 5)).toMatchObject(busy);
    for (const call of [() => w.storage.api.deleteVolume({ pool: 'default', name: 'late.raw' }), () => w.storage.api.resizeVolume({ pool: 'default', name: 'late.raw', capacity: MiB }), () => w.storage.api.stopPool({ name: 'default' })]) {
      expect(await refusal(call)).toMatchObject(busy.body);
    }
    raw.data(4, Buffer.alloc(16, 7));
    raw.data(4, null);
    expect((await raw.next('stream', 4, (m) => m.body === null)).status).toBe('ok');
    expect(readFileSync(path)).toEqual(Buffer.alloc(16, 7));
    raw.socket.destroy();
  });
  describe('a clone that stays under way (the qemu-img wrapper hangs once it has copied)', () => {
    beforeAll(() => writeFileSync(w.slowMarker, ''));
    afterAll(() => rmSync(w.slowMarker));
    afterEach(() => rmSync(w.copiedMarker, { force: true }));
    /** Waits until the clone has copied into its temp file, and checks nothing is listed meanwhile. */
    const copied = async (name: string) => {
      expect(await until(() => existsSync(w.copiedMarker) && w.temps().length === 1)).toBe(true);
      expect(await w.volumes()).not.toContain(name);
      expect((await w.storage.api.listJobs({})).jobs).toEqual([expect.objectContaining({ operation: 'clone', volume: name })]);
    };

    it('aborts a clone whose client hangs up: no half volume listed, no temp file, no qemu-img left', async () => {
      const before = await clients();
      const rpc = await w.raw('virtstoraged');
      const cloning = rpc.call('storage', 'cloneVolume', { pool: 'default', source: KEEP, name: 'half.raw', job: 'hangup-job' }, { timeoutMs: 0 }).catch((e: unknown) => e);
      await copied('half.raw');
      expect(childrenOf(w.storaged.pid)).toHaveLength(1);
      rpc.close();
      expect(await cloning).toMatchObject({ code: 'CONNECTION_CLOSED' });
      expect(await until(async () => (await w.storage.api.listJobs({})).jobs.length === 0 && w.temps().length === 0 && childrenOf(w.storaged.pid).length === 0)).toBe(true);
      expect(existsSync(join(w.poolDir, 'half.raw'))).toBe(false);
      expect(await until(async () => (await clients()) === before)).toBe(true);
    });

    it('cancels a running clone: OPERATION_ABORTED to the cloning client, nothing left; refuses bad cancels and a job id in use', async () => {
      const cloning = w.storage.cloneVolume({ pool: 'default', source: KEEP, name: 'cancelled.raw' }).catch((e: unknown) => e);
      await copied('cancelled.raw');
      const [job] = (await w.storage.api.listJobs({})).jobs;
      const other = await w.raw('virtstoraged');
      expect(await other.call('storage', 'cloneVolume', { pool: 'default', source: KEEP, name: 'second.raw', job: job?.job }).catch((e: unknown) => e)).toMatchObject({ code: 'ALREADY_EXISTS' });
      other.close();
      expect(await refusal(() => w.storageRo.api.cancelJob({ job: job?.job as string }))).toMatchObject({ code: 'PERMISSION_DENIED' });
      expect(await refusal(() => w.storage.api.cancelJob({ job: 'no-such-job' }))).toMatchObject({ code: 'OPERATION_INVALID' });
      expect(await refusal(() => w.storage.api.cancelJob({ job: '../x' }))).toMatchObject({ code: 'INVALID_ARG' });
      expect((await w.storage.api.listJobs({})).jobs).toHaveLength(1);
      await w.storage.api.cancelJob({ job: job?.job as string });
      expect(await cloning).toMatchObject({ code: 'OPERATION_ABORTED', message: expect.stringContaining('cancelled') });
      expect(existsSync(join(w.poolDir, 'cancelled.raw'))).toBe(false);
      expect(await until(() => childrenOf(w.storaged.pid).length === 0)).toBe(true);
    });
  });

  it('answers a full disk with NO_SPACE during create, clone and upload, leaving nothing half-made', async () => {
    const dir = w.h.root.path('tiny');
    mkdirSync(dir);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0711', 'tmpfs', dir]).status).toBe(0);
    try {
      await w.storage.api.definePool({ definition: { name: 'tiny', type: 'dir', path: dir } });
      await w.storage.api.startPool({ name: 'tiny' });
      await w.storage.api.createVolume({ pool: 'tiny', name: 'src.raw', capacity: MiB });
      await w.storage.upload('tiny', 'src.raw', chunks(randomBytes(MiB)), MiB);
      const sum = sha256(join(dir, 'src.raw'));
      // Fill the filesystem to within 32 KiB (a dot-file is never a volume).
      const free = (): number => { const st = statfsSync(dir); return st.bavail * st.bsize; };
      writeFileSync(join(dir, '.filler'), Buffer.alloc(free() - 32 * 1024, 1));
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['create qcow2', () => w.storage.api.createVolume({ pool: 'tiny', name: 'new.qcow2', format: 'qcow2', capacity: 64 * MiB })],
        ['full clone', () => w.storage.cloneVolume({ pool: 'tiny', source: 'src.raw', name: 'copy.raw' })],
        ['thin clone', () => w.storage.cloneVolume({ pool: 'tiny', source: 'src.raw', name: 'thin.qcow2', thin: true })],
        ['upload', () => w.storage.upload('tiny', 'src.raw', chunks(randomBytes(MiB)), MiB)],
      ];
      for (const [what, call] of calls) {
        const e = await refusal(call);
        expect(e.code, `${what}: ${e.message}`).toBe('NO_SPACE');
        expect(e.message, what).toContain('tiny');
        expect((await w.storage.api.listVolumes({ pool: 'tiny' })).volumes.map((v) => v.name), what).toEqual(['src.raw']);
        expect(readdirSync(dir).sort(), what).toEqual(['.filler', 'src.raw']);
        expect(sha256(join(dir, 'src.raw')), what).toBe(sum);
      }
      expect((await w.storage.api.getPool({ name: 'tiny' })).state).toBe('active');
    } finally {
      await w.storage.api.stopPool({ name: 'tiny' }).catch(() => undefined);
      await w.storage.api.undefinePool({ name: 'tiny' }).catch(() => undefined);
      if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
    }
  });
});
