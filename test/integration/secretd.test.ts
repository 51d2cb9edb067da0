// virtsecretd as a user meets it: secrets defined, valued, listed and read over its sockets;
// values withheld from read-only clients and for private secrets; encrypted at rest, kept across
// a kill -9, never in a log line; bad input answered with typed errors while it keeps serving.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectDaemon, connectSecret, connectStorage } from '../../client/index.js';
import { RpcClient, storageProgram, systemClock } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const VALUE = Buffer.from('correct horse battery staple 7f3a');

describe('virtsecretd', () => {
  let h: ServiceHarness;
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); });
  afterEach(() => h.cleanup());

  it('keeps secrets, withholds values where it must, and survives kill -9 with them', async () => {
    const d = await h.start('virtsecretd');
    expect(d.reply).toMatchObject({ ok: true, socket: h.sockets('virtsecretd').rw });
    const rw = await connectSecret(h.uri('secret'));
    const open = await rw.api.defineSecret({ definition: { usage: { type: 'text', text: 'open one' }, description: 'readable' } });
    const priv = await rw.api.defineSecret({ definition: { uuid: '6F0A4E53-1C2B-4D5E-8F90-A1B2C3D4E5F6', usage: { type: 'volume', volume: 'default/db.qcow2' }, private: true } });
    const eph = await rw.api.defineSecret({ definition: { ephemeral: true } });
    expect(priv.uuid).toBe('6f0a4e53-1c2b-4d5e-8f90-a1b2c3d4e5f6');
    for (const s of [open, priv, eph]) await rw.api.setValue({ uuid: s.uuid, value: VALUE });

    expect(Buffer.from((await rw.api.getValue({ uuid: open.uuid })).value)).toEqual(VALUE);
    await expect(rw.api.getValue({ uuid: priv.uuid })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('private') });
    expect(Buffer.from((await rw.api.useValue({ uuid: priv.uuid, consumer: { vm: 'db1', purpose: 'disk vda' } })).value)).toEqual(VALUE);
    expect((await rw.api.lookupSecretByUsage({ usage: { type: 'volume', volume: 'default/db.qcow2' } })).uuid).toBe(priv.uuid);

    const ro = await connectSecret(h.uri('secret', true));
    expect((await ro.api.listSecrets({})).secrets.map((s) => s.uuid).sort()).toEqual([open.uuid, priv.uuid, eph.uuid].sort());
    await expect(ro.api.getValue({ uuid: open.uuid })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(ro.api.useValue({ uuid: open.uuid, consumer: { purpose: 'x' } })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });

    // Encrypted at rest: no file under the root holds the value.
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
    for (const f of files(h.root.dir)) expect(readFileSync(f).includes(VALUE), f).toBe(false);

    rw.close();
    ro.close();
    await h.kill(d);
    await h.start('virtsecretd');
    const again = await connectSecret(h.uri('secret'));
    const rows = (await again.api.listSecrets({})).secrets;
    expect(rows.map((s) => s.uuid).sort()).toEqual([open.uuid, priv.uuid].sort());
    expect(Buffer.from((await again.api.getValue({ uuid: open.uuid })).value)).toEqual(VALUE);
    again.close();
  });

  it('answers bad input with typed errors, never echoing a value, and keeps serving', async () => {
    await h.start('virtsecretd', ['--log-filters', 'trace']);
    const rw = await connectSecret(h.uri('secret'));
    const s = await rw.api.defineSecret({ definition: { usage: { type: 'text', text: 'a' } } });
    await expect(rw.api.setValue({ uuid: s.uuid, value: Buffer.alloc(10 * 1024 * 1024, 0x41) })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(rw.api.getValue({ uuid: 'not-a-uuid' } as never)).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(rw.api.getValue({ uuid: '00000000-0000-0000-0000-000000000000' })).rejects.toMatchObject({ code: 'NO_SECRET' });
    await expect(rw.api.defineSecret({ definition: { usage: { type: 'text', text: 'a' } } })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(rw.api.getValue({ uuid: s.uuid })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80]);
    await rw.api.setValue({ uuid: s.uuid, value: binary });
    expect(Buffer.from((await rw.api.getValue({ uuid: s.uuid })).value)).toEqual(binary);
    await rw.api.setValue({ uuid: s.uuid, value: VALUE });
    await rw.api.getValue({ uuid: s.uuid });

    // Another daemon's program is refused, naming the daemon that serves it.
    const raw = await RpcClient.connect(h.sockets('virtsecretd').rw, { clock: systemClock() });
    await expect(raw.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'WRONG_DAEMON', message: expect.stringContaining('virtqemud') });
    await expect(raw.call('storage', 'listPools', {})).rejects.toMatchObject({ code: 'WRONG_DAEMON', message: expect.stringContaining('virtstoraged') });
    raw.close();
    // A client of one program given another daemon's URI goes to its own daemon on that host.
    await expect(connectStorage(h.uri('secret'))).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining('virtstoraged') });
    await expect(connectDaemon(storageProgram, h.uri('secret'))).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('storage:///system') });
    expect((await rw.api.listSecrets({})).secrets).toHaveLength(1);
    rw.close();

    const log = readFileSync(join(h.layout.log, 'virtsecretd.log'), 'utf8');
    expect(log).toContain('SECRET_VALUE_SET');
    expect(log.includes(VALUE.toString('utf8'))).toBe(false);
    expect(log.includes(VALUE.toString('base64'))).toBe(false);
  });
});
