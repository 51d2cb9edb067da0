// VMs on virtstoraged's volumes, with real QEMU and the three daemons of one root: a guest boots
// with a thin clone of a base volume, writes to it, and the write is in the clone (not the base);
// a volume in use is not deleted; a LUKS volume boots with its secret and refuses a wrong one;
// the daemons start in any order.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, connectSecret, connectStorage, type Connection, type StorageClient } from '../../client/index.js';
import type { Definition } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { guestConsole } from '../helpers/guest-console.js';
import { testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const MiB = 1024 * 1024;

function vmOn(name: string, volume: string, more: string[] = []): Definition {
  const g = testGuest();
  return {
    name, memoryMiB: 128, accel: testAccel(),
    kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' },
    disks: [volume, ...more].map((v, i) => ({ source: { pool: 'default', volume: v }, target: `vd${String.fromCharCode(97 + i)}` })),
  };
}

/** `qemu-img check` of an image: true when it has no errors and no leaks. */
const checkClean = (path: string): boolean => JSON.parse(execFileSync('qemu-img', ['check', '--output=json', path], { encoding: 'utf8' })).leaks === undefined;

/** The first bytes of a volume's guest-visible contents (qemu-img converts qcow2 chains and LUKS). */
function headOf(h: ServiceHarness, path: string, n: number, secret?: string): string {
  const out = h.root.path(`head-${Date.now()}.raw`);
  if (secret === undefined) {
    execFileSync('qemu-img', ['convert', '-O', 'raw', path, out]);
  } else {
    const key = h.root.path('key.bin');
    writeFileSync(key, secret, { mode: 0o600 });
    execFileSync('qemu-img', ['convert', '--object', `secret,id=s0,file=${key}`, '--image-opts', `driver=qcow2,file.filename=${path},encrypt.key-secret=s0`, '-O', 'raw', out]);
  }
  return readFileSync(out).subarray(0, n).toString('latin1');
}

async function uploadText(storage: StorageClient, name: string, text: string, size: number): Promise<void> {
  const bytes = Buffer.alloc(size);
  bytes.write(text);
  await storage.upload('default', name, (async function* () { yield bytes; })(), size);
}

describe('VMs on volumes', () => {
  let h: ServiceHarness;
  let conns: Array<{ close(): void }>;
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); conns = []; });
  afterEach(async () => {
    for (const c of conns) c.close();
    await h.cleanup();
  });
  const keep = <C extends { close(): void }>(c: C): C => { conns.push(c); return c; };

  // Both qcow2 images here are written by virtstoraged itself (drivers/storage/qcow2-create.ts),
  // not by qemu-img: QEMU must boot from, write to, and leave consistent what that code makes.
  it('boots a thin clone of a base volume, writes to it, and keeps the write in the clone', async () => {
    await h.start('virtstoraged');
    await h.start('virtsecretd');
    await h.start('virtqemud');
    const storage = keep(await connectStorage(h.uri('qemu')));
    await storage.api.createVolume({ pool: 'default', name: 'base.raw', capacity: 16 * MiB });
    await uploadText(storage, 'base.raw', 'BASE-CONTENT', 16 * MiB);
    const clone = await storage.cloneVolume({ pool: 'default', source: 'base.raw', name: 'web1.qcow2', thin: true });
    expect(clone).toMatchObject({ format: 'qcow2', backingChain: [{ format: 'raw' }] });
    const data = await storage.api.createVolume({ pool: 'default', name: 'data.qcow2', format: 'qcow2', capacity: 8 * MiB + 512 });
    expect(data).toMatchObject({ format: 'qcow2', capacity: 8 * MiB + 512, backingChain: [] });

    const vq: Connection = keep(await connect(h.uri('qemu')));
    await vq.virtq.define({ definition: vmOn('web1', 'web1.qcow2', ['data.qcow2']) });
    await vq.virtq.start({ name: 'web1' });
    const con = await guestConsole(vq, 'web1');
    conns.push(con);
    await con.serial.waitFor('GUEST-READY', 60_000);
    expect(con.serial.output).toContain('TG-BLOCK-ADD vda');
    expect(con.serial.output).toContain('TG-BLOCK-ADD vdb');
    await con.run('printf VQMARK-web1 > /dev/vda; printf VQMARK-data > /dev/vdb; sync; echo WROTE-OK', 'WROTE-OK');

    // In use: the volume is not deleted, its pool not stopped; the error names the VM.
    await expect(storage.api.deleteVolume({ pool: 'default', name: 'web1.qcow2' })).rejects.toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringContaining('VM "web1"') });
    await expect(storage.api.stopPool({ name: 'default' })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('VM "web1"') });
    // The definition keeps the volume, not the path virtstoraged found for it.
    expect((await vq.virtq.getDefinition({ name: 'web1' })).disks).toEqual([expect.objectContaining({ source: { pool: 'default', volume: 'web1.qcow2' } }), expect.objectContaining({ source: { pool: 'default', volume: 'data.qcow2' } })]);
    expect((await vq.virtq.getDefinition({ name: 'web1' })).disks?.[0]).not.toHaveProperty('path');

    await vq.virtq.destroy({ name: 'web1' });
    expect(headOf(h, clone.path, 11)).toBe('VQMARK-web1');
    expect(headOf(h, data.path, 11)).toBe('VQMARK-data');
    expect(checkClean(clone.path)).toBe(true);
    expect(checkClean(data.path)).toBe(true);
    expect(headOf(h, (await storage.api.getVolume({ pool: 'default', name: 'base.raw' })).path, 12)).toBe('BASE-CONTENT');
    await storage.api.deleteVolume({ pool: 'default', name: 'web1.qcow2' });
  });

  it('boots a LUKS volume with its secret, and refuses a wrong one with an error naming both', async () => {
    await h.start('virtsecretd');
    // A short PBKDF time: QEMU's 2 s per key slot is paid at create and at every open.
    await h.start('virtstoraged', ['--luks-iter-time-ms', '100']);
    await h.start('virtqemud');
    const secrets = keep(await connectSecret(h.uri('secret')));
    const s = await secrets.api.defineSecret({ definition: { usage: { type: 'volume', volume: 'default/enc.qcow2' }, private: true } });
    await secrets.api.setValue({ uuid: s.uuid, value: Buffer.from('right passphrase') });
    const storage = keep(await connectStorage(h.uri('storage')));
    const vol = await storage.api.createVolume({ pool: 'default', name: 'enc.qcow2', capacity: 16 * MiB, encryption: { secret: s.uuid } });
    expect(vol).toMatchObject({ format: 'qcow2', encrypted: true, secret: s.uuid });

    const vq = keep(await connect(h.uri('qemu')));
    await vq.virtq.create({ definition: vmOn('enc1', 'enc.qcow2') });
    const con = await guestConsole(vq, 'enc1');
    conns.push(con);
    await con.serial.waitFor('GUEST-READY', 60_000);
    await con.run('printf SECRET-DATA > /dev/vda; sync; echo WROTE-OK', 'WROTE-OK');
    await vq.virtq.destroy({ name: 'enc1' });
    expect(headOf(h, vol.path, 11, 'right passphrase')).toBe('SECRET-DATA');
    expect(readFileSync(vol.path).includes('SECRET-DATA')).toBe(false);

    await secrets.api.setValue({ uuid: s.uuid, value: Buffer.from('wrong passphrase') });
    await expect(vq.virtq.create({ definition: vmOn('enc2', 'enc.qcow2') })).rejects.toMatchObject({
      code: 'OPERATION_FAILED', message: expect.stringMatching(new RegExp(`disk vda.*secret ${s.uuid}`)),
    });
    await secrets.api.undefineSecret({ uuid: s.uuid });
    await expect(vq.virtq.create({ definition: vmOn('enc3', 'enc.qcow2') })).rejects.toMatchObject({ code: 'NO_SECRET', message: expect.stringContaining(`disk vda of VM "enc3" needs secret ${s.uuid}`) });
    // No QEMU was left behind by the refused starts.
    const qemus = execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((l) => l.includes('qemu-system') && l.includes(h.root.dir));
    expect(qemus).toEqual([]);
  }, 120_000);

  it('starts a VM whose storage daemon comes up after virtqemud or restarts meanwhile, and fails clearly when it never does', async () => {
    await h.start('virtqemud', ['--daemon-wait', '6']);
    // A volume already in the default pool's directory: virtstoraged lists it once it is up.
    mkdirSync(h.root.path('lib', 'images'), { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', h.root.path('lib', 'images', 'late.raw'), '8M']);
    const vq = keep(await connect(h.uri('qemu')));
    await vq.virtq.define({ definition: vmOn('late1', 'late.raw') });
    const startWhileDown = async (): Promise<string> => {
      const starting = vq.virtq.start({ name: 'late1' });
      await expect.poll(async () => (await vq.virtq.lookupByName({ name: 'late1' })).state, { timeout: 10_000 }).toBe('starting');
      const storaged = await h.start('virtstoraged');
      expect((await starting).state).toBe('running');
      await vq.virtq.destroy({ name: 'late1' });
      await h.kill(storaged);
      return 'converged';
    };
    expect(await startWhileDown()).toBe('converged'); // virtstoraged after virtqemud
    expect(await startWhileDown()).toBe('converged'); // virtstoraged killed, and back while a start waits

    const t0 = Date.now();
    await expect(vq.virtq.start({ name: 'late1' })).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining('virtstoraged') });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5_500);
    expect((await vq.virtq.lookupByName({ name: 'late1' })).state).toBe('shutoff');
  }, 90_000);
});
