// Bad input to virtstoraged and virtsecretd, as built daemons under a tmp root: hostile volume
// names, pools that are not directories, volumes that leave their pool, operations over what
// exists or from what does not, shrinking without saying so, hostile secrets. Each is a typed
// error, the daemons keep serving, and nothing else is lost (StorageWorld.intact(), asserted
// after every test). Transfers, hang-ups, a full disk and cancels: storaged-bad-transfers.test.ts.
import { mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectSecret } from '../../client/index.js';
import { KEEP, MiB, SECRET_VALUE, StorageWorld, chunks, refusal, sha256 } from '../helpers/storage-world.js';
import { call, exchange } from '../security/hostile-client.js';

const HOSTILE_NAMES = ['a/b', '../keep.raw', '..', '.', 'x\0y', 'keep.raw\0', '/etc/passwd', '', '.hidden', '-rf', 'a'.repeat(256), 'vol\n', 'v\u00e9'];
const BAD_UUIDS = ['not-a-uuid', '', '../../etc/passwd', '6f0a4e53-1c2b-4d5e-8f90-a1b2c3d4e5fz', '6f0a4e53-1c2b-4d5e-8f90-a1b2c3d4e5f6\n', '6f0a4e53-1c2b-4d5e-8f90-a1b2c3d4e5f6\0', '{6f0a4e53-1c2b-4d5e-8f90-a1b2c3d4e5f6}', 'x'.repeat(36)];

describe('virtstoraged and virtsecretd meet bad input', () => {
  let w: StorageWorld;
  beforeAll(async () => { w = await StorageWorld.start(); });
  afterAll(async () => { await w.stop(); });
  afterEach(async () => { expect(await w.intact()).toEqual([]); });

  it('refuses volume names with "/", "..", NUL and the like at the schema, in every procedure', async () => {
    const { api } = w.storage;
    for (const name of HOSTILE_NAMES) {
      const calls: Array<[string, string, () => Promise<unknown>]> = [
        ['getVolume', '/name', () => w.storageRo.api.getVolume({ pool: 'default', name })],
        ['createVolume', '/name', () => api.createVolume({ pool: 'default', name, capacity: MiB })],
        ['cloneVolume', '/name', () => api.cloneVolume({ pool: 'default', source: KEEP, name })],
        ['cloneVolume', '/source', () => api.cloneVolume({ pool: 'default', source: name, name: 'x.raw' })],
        ['resizeVolume', '/name', () => api.resizeVolume({ pool: 'default', name, capacity: MiB })],
        ['deleteVolume', '/name', () => api.deleteVolume({ pool: 'default', name })],
        ['createVolume', '/backing/name', () => api.createVolume({ pool: 'default', name: 'x.qcow2', capacity: MiB, backing: { pool: 'default', name } })],
        ['uploadVolume', '/name', () => w.storage.conn.openStream('uploadVolume', { pool: 'default', name, length: 1 })],
        ['downloadVolume', '/name', () => w.storage.conn.openStream('downloadVolume', { pool: 'default', name })],
      ];
      for (const [what, path, call] of calls) {
        const e = await refusal(call);
        expect(e.code, `${what} ${JSON.stringify(name)}`).toBe('INVALID_ARG');
        expect(e.details?.['path'], `${what} ${JSON.stringify(name)}`).toBe(path);
      }
    }
  });

  it('refuses to start a pool whose path is a file, a device, a symlink or under a file, and keeps serving', async () => {
    const { api } = w.storage;
    const file = w.h.root.path('a-file');
    writeFileSync(file, 'not a directory\n');
    const elsewhere = w.h.root.path('elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'victim.raw'), 'victim\n');
    symlinkSync(elsewhere, w.h.root.path('link-pool'));
    for (const [name, path] of [['file', file], ['device', '/dev/null'], ['symlink', w.h.root.path('link-pool')], ['under-file', join(file, 'sub')]] as const) {
      await api.definePool({ definition: { name, type: 'dir', path } });
      for (const build of [false, true]) {
        const e = await refusal(() => api.startPool({ name, build }));
        expect(e.code, `${name} build=${build}: ${e.message}`).toBe('INVALID_ARG');
        expect(e.message).toContain(path);
        expect((await w.storageRo.api.listPools({})).pools.find((p) => p.name === name)?.state).toBe('inactive');
      }
      await api.undefinePool({ name });
    }
    expect(readFileSync(join(elsewhere, 'victim.raw'), 'utf8')).toBe('victim\n');
    expect(readFileSync(file, 'utf8')).toBe('not a directory\n');
  });

  it('keeps listing every pool when an active pool\'s directory is replaced by a file, and lets it be stopped', async () => {
    // Before: listPools failed as a whole (INVALID_ARG of the one broken pool), and stopPool too,
    // so the broken pool could be neither listed around nor removed.
    const { api } = w.storage;
    const dir = w.h.root.path('doomed');
    await api.definePool({ definition: { name: 'doomed', type: 'dir', path: dir } });
    await api.startPool({ name: 'doomed', build: true });
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'now a file\n');
    const rows = (await w.storageRo.api.listPools({})).pools;
    expect(rows.map((p) => [p.name, p.state, p.volumes])).toEqual([['default', 'active', 1], ['doomed', 'active', 0]]);
    expect((await refusal(() => api.getPool({ name: 'doomed' }))).code).toBe('INVALID_ARG');
    expect((await refusal(() => api.listVolumes({ pool: 'doomed' }))).code).toBe('INVALID_ARG');
    expect((await api.stopPool({ name: 'doomed' })).state).toBe('inactive');
    await api.undefinePool({ name: 'doomed' });
    expect(readFileSync(dir, 'utf8')).toBe('now a file\n');
  });

  it('refuses a volume that is a symlink out of the pool, for a VM and for every operation', async () => {
    const outside = w.h.root.path('outside.raw');
    writeFileSync(outside, 'outside the pool\n');
    symlinkSync(outside, join(w.poolDir, 'escape.raw'));
    symlinkSync('/dev/zero', join(w.poolDir, 'zero.raw'));
    try {
      for (const name of ['escape.raw', 'zero.raw']) {
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['getVolume', () => w.storageRo.api.getVolume({ pool: 'default', name })],
          ['downloadVolume', () => w.storage.conn.openStream('downloadVolume', { pool: 'default', name })],
          ['deleteVolume', () => w.storage.api.deleteVolume({ pool: 'default', name })],
          ['resizeVolume', () => w.storage.api.resizeVolume({ pool: 'default', name, capacity: 2 * MiB })],
          ['cloneVolume', () => w.storage.api.cloneVolume({ pool: 'default', source: name, name: 'copy.raw' })],
          ['uploadVolume', () => w.storage.upload('default', name, chunks(Buffer.from('x')), 1)],
          ['backing', () => w.storage.api.createVolume({ pool: 'default', name: 'over.qcow2', capacity: MiB, backing: { pool: 'default', name } })],
        ];
        for (const [what, call] of calls) {
          const e = await refusal(call);
          expect(e.code, `${what} ${name}: ${e.message}`).toBe('INVALID_ARG');
          expect(e.message, what).toContain('outside the pool');
        }
      }
      expect(readFileSync(outside, 'utf8')).toBe('outside the pool\n');
    } finally {
      for (const n of ['escape.raw', 'zero.raw']) unlinkSync(join(w.poolDir, n));
    }
  });

  it('refuses to create or clone over anything that has the name: ALREADY_EXISTS, the old file untouched', async () => {
    const { api } = w.storage;
    mkdirSync(join(w.poolDir, 'adir'));
    symlinkSync(w.h.root.path('nowhere'), join(w.poolDir, 'dangling.raw'));
    try {
      for (const name of [KEEP, 'adir', 'dangling.raw']) {
        expect((await refusal(() => api.createVolume({ pool: 'default', name, capacity: 2 * MiB }))).code, name).toBe('ALREADY_EXISTS');
        expect((await refusal(() => api.createVolume({ pool: 'default', name, format: 'qcow2', capacity: 2 * MiB }))).code, name).toBe('ALREADY_EXISTS');
        expect((await refusal(() => w.storage.cloneVolume({ pool: 'default', source: KEEP, name }))).code, name).toBe('ALREADY_EXISTS');
        expect((await refusal(() => w.storage.cloneVolume({ pool: 'default', source: KEEP, name, thin: true }))).code, name).toBe('ALREADY_EXISTS');
      }
    } finally {
      rmSync(join(w.poolDir, 'adir'), { recursive: true });
      unlinkSync(join(w.poolDir, 'dangling.raw'));
    }
  });

  it('refuses a backing volume from a pool that does not exist or is not active, or that does not exist', async () => {
    const { api } = w.storage;
    const backed = (pool: string, name = KEEP) => () => api.createVolume({ pool: 'default', name: 'backed.qcow2', capacity: MiB, backing: { pool, name } });
    expect(await refusal(backed('nosuchpool'))).toMatchObject({ code: 'NO_STORAGE_POOL', message: expect.stringContaining('nosuchpool') });
    await api.definePool({ definition: { name: 'idle', type: 'dir', path: w.h.root.path('idle') } });
    expect(await refusal(backed('idle'))).toMatchObject({ code: 'NO_STORAGE_POOL', message: expect.stringContaining('not active') });
    await api.undefinePool({ name: 'idle' });
    expect(await refusal(backed('default', 'nosuch.raw'))).toMatchObject({ code: 'NO_STORAGE_VOL', message: expect.stringContaining('nosuch.raw') });
    expect(await refusal(() => api.createVolume({ pool: 'default', name: 'backed.raw', format: 'raw', capacity: MiB, backing: { pool: 'default', name: KEEP } }))).toMatchObject({ code: 'INVALID_ARG' });
    expect(await refusal(() => api.createVolume({ pool: 'nosuchpool', name: 'x.raw', capacity: MiB }))).toMatchObject({ code: 'NO_STORAGE_POOL' });
  });

  it('refuses to resize below the current size without shrink, and a size that is not a byte count', async () => {
    const { api } = w.storage;
    expect(await refusal(() => api.resizeVolume({ pool: 'default', name: KEEP, capacity: MiB / 2 }))).toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('shrink') });
    expect(await refusal(() => api.resizeVolume({ pool: 'default', name: KEEP, capacity: MiB - 1, shrink: false }))).toMatchObject({ code: 'INVALID_ARG' });
    for (const capacity of [0, -1, 1.5, 2 ** 53, Number.NaN, '1G']) {
      expect(await refusal(() => api.resizeVolume({ pool: 'default', name: KEEP, capacity } as never)), String(capacity)).toMatchObject({ code: 'INVALID_ARG' });
      expect(await refusal(() => api.createVolume({ pool: 'default', name: 'sized.raw', capacity } as never)), String(capacity)).toMatchObject({ code: 'INVALID_ARG' });
    }
    expect(await refusal(() => api.resizeVolume({ pool: 'default', name: 'nosuch.raw', capacity: MiB }))).toMatchObject({ code: 'NO_STORAGE_VOL' });
    expect((await api.resizeVolume({ pool: 'default', name: KEEP, capacity: MiB })).capacity).toBe(MiB);
  });

  it('refuses hostile secrets with typed errors, never echoing a value, and withholds values where it must', async () => {
    const { api } = w.secret;
    for (const uuid of BAD_UUIDS) {
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['getSecret', () => w.secretRo.api.getSecret({ uuid })], ['undefineSecret', () => api.undefineSecret({ uuid })],
        ['setValue', () => api.setValue({ uuid, value: SECRET_VALUE })], ['getValue', () => api.getValue({ uuid })],
        ['useValue', () => api.useValue({ uuid, consumer: { purpose: 'test' } })], ['defineSecret', () => api.defineSecret({ definition: { uuid } })],
        ['createVolume', () => w.storage.api.createVolume({ pool: 'default', name: 'enc.qcow2', capacity: MiB, encryption: { secret: uuid } })],
      ];
      for (const [what, call] of calls) expect((await refusal(call)).code, `${what} ${JSON.stringify(uuid)}`).toBe('INVALID_ARG');
    }
    const s = await api.defineSecret({ definition: { usage: { type: 'text', text: 'hostile' } } });
    const huge = Buffer.alloc(10 * MiB);
    for (let i = 0; i < huge.length; i += SECRET_VALUE.length) SECRET_VALUE.copy(huge, i);
    for (const value of [huge, huge.subarray(0, 65537), Buffer.alloc(0)]) {
      expect(await refusal(() => api.setValue({ uuid: s.uuid, value })), `${value.length} bytes`).toMatchObject({ code: 'INVALID_ARG' });
    }
    expect((await api.getSecret({ uuid: s.uuid })).hasValue).toBe(false);
    // Not UTF-8: any bytes are a value; a usage or description that is not valid Unicode is refused.
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80, 0x80, 0x80]);
    await api.setValue({ uuid: s.uuid, value: binary });
    expect(Buffer.from((await api.getValue({ uuid: s.uuid })).value)).toEqual(binary);
    for (const definition of [{ usage: { type: 'volume' as const, volume: 'a\0b' } }, { description: 'd\0' }, { description: 'd'.repeat(1025) }, { usage: { type: 'text' as const, text: '' } }]) {
      expect(await refusal(() => api.defineSecret({ definition })), JSON.stringify(definition).slice(0, 60)).toMatchObject({ code: 'INVALID_ARG' });
    }
    // A usage whose text is not UTF-8 on the wire: decoded with U+FFFD for each bad byte, as CBOR decoders may.
    const marker = 'NOT-UTF8-MARKER';
    const frame = call('secret', 'defineSecret', { definition: { usage: { type: 'text', text: marker } } }, 5);
    const at = frame.indexOf(marker);
    frame.fill(0xff, at, at + marker.length);
    const out = await exchange(w.h.sockets('virtsecretd').rw, frame, { keepOpen: true, expectReplies: 1 });
    expect(out.replies).toEqual([expect.objectContaining({ serial: 5, status: 'ok', body: expect.objectContaining({ usage: { type: 'text', text: '\ufffd'.repeat(marker.length) } }) })]);
    await api.undefineSecret({ uuid: (out.replies[0] as { body: { uuid: string } }).body.uuid });
    // A usage already taken, by UUID in another case too.
    expect(await refusal(() => api.defineSecret({ definition: { usage: { type: 'text', text: 'keep' } } }))).toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining(w.keepSecret) });
    expect(await refusal(() => api.defineSecret({ definition: { uuid: s.uuid.toUpperCase(), usage: { type: 'text', text: 'keep' } } }))).toMatchObject({ code: 'ALREADY_EXISTS' });
    // Values: never to a read-only client, never through getValue for a private secret.
    const priv = await api.defineSecret({ definition: { private: true, usage: { type: 'volume', volume: 'default/p.qcow2' } } });
    await api.setValue({ uuid: priv.uuid, value: SECRET_VALUE });
    expect(await refusal(() => api.getValue({ uuid: priv.uuid }))).toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('private') });
    expect(await refusal(() => api.defineSecret({ definition: { uuid: priv.uuid, private: false } }))).toMatchObject({ code: 'OPERATION_INVALID' });
    for (const uuid of [priv.uuid, s.uuid, w.keepSecret]) {
      expect(await refusal(() => w.secretRo.api.getValue({ uuid }))).toMatchObject({ code: 'PERMISSION_DENIED' });
      expect(await refusal(() => w.secretRo.api.useValue({ uuid, consumer: { purpose: 'x' } }))).toMatchObject({ code: 'PERMISSION_DENIED' });
      expect(await refusal(() => w.secretRo.api.setValue({ uuid, value: Buffer.from('x') }))).toMatchObject({ code: 'PERMISSION_DENIED' });
    }
    // 10 MiB on the read-only socket is over its 1 MiB frame bound: refused from the length header, the connection dropped.
    expect(await refusal(() => w.secretRo.api.setValue({ uuid: s.uuid, value: huge }))).toMatchObject({ code: 'FRAME_TOO_LARGE' });
    w.secretRo.close();
    w.secretRo = await connectSecret(w.h.uri('secret', true));
    for (const uuid of [priv.uuid, s.uuid]) await api.undefineSecret({ uuid });
    expect((await w.secretRo.api.listSecrets({})).secrets.map((r) => r.uuid)).toEqual([w.keepSecret]);
    expect(sha256(join(w.poolDir, KEEP))).toBe(w.keepSum);
  });
  it('refuses a LUKS volume whose secret is missing, has no value or is not UTF-8, leaving nothing and logging no value', async () => {
    const { api } = w.storage;
    const s = await w.secret.api.defineSecret({ definition: { private: true, usage: { type: 'volume', volume: 'default/luks.qcow2' } } });
    const luks = () => api.createVolume({ pool: 'default', name: 'luks.qcow2', capacity: MiB, encryption: { secret: s.uuid } });
    expect(await refusal(luks)).toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining(s.uuid) });
    const missing = '0000aaaa-0000-4000-8000-00000000aaaa';
    expect(await refusal(() => api.createVolume({ pool: 'default', name: 'luks.qcow2', capacity: MiB, encryption: { secret: missing } }))).toMatchObject({ code: 'NO_SECRET' });
    expect(await w.volumes()).not.toContain('luks.qcow2');
    // A value of non-UTF-8 bytes is a secret QEMU cannot take as a LUKS passphrase: INVALID_ARG
    // saying so (before: OPERATION_FAILED quoting qemu-img's name for the secret).
    await w.secret.api.setValue({ uuid: s.uuid, value: Buffer.concat([Buffer.from([0xff, 0x00, 0xfe]), SECRET_VALUE, Buffer.from([0xc3, 0x28])]) });
    expect(await refusal(luks)).toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('not valid UTF-8') });
    expect(await w.volumes()).not.toContain('luks.qcow2');
    await w.secret.api.undefineSecret({ uuid: s.uuid });
  });
});
