// save / restore / managedsave with real QEMU and virtqemud: the guest's uptime continues across
// a save and a restore (read on its console), --paused restores paused, a managed save image is
// resumed by start and removed, and bad images (truncated, foreign, unfinished, another VM's
// name) are refused with INVALID_SAVE_IMAGE or NAME_IN_USE before any QEMU runs.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../client/index.js';
import type { Definition } from '../../protocol/index.js';
import { managedSaveFile, readSaveImage } from '../../drivers/hypervisor/qemu/save-image-header.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { guestConsole, type GuestConsole } from '../helpers/guest-console.js';
import { guestUptime } from '../helpers/guest-uptime.js';
import { testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

function guestDef(name: string, uuid?: string): Definition {
  const g = testGuest();
  return { name, ...(uuid === undefined ? {} : { uuid }), memoryMiB: 128, accel: testAccel(), kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' } };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('save and restore', () => {
  let h: ServiceHarness;
  let vq: Connection;
  let cons: GuestConsole[];
  beforeEach(async () => {
    h = new ServiceHarness(tmpRoot());
    cons = [];
    await h.start('virtqemud');
    vq = await connect(h.uri('qemu'));
  });
  afterEach(async () => {
    for (const c of cons) c.close();
    vq.close();
    await h.cleanup();
  });
  const consoleOf = async (name: string) => { const c = await guestConsole(vq, name); cons.push(c); return c; };
  const qemus = () => execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((l) => l.includes('qemu-system') && l.includes(h.root.dir));

  it('saves a running guest to a file and restores it running, its uptime continuing; --paused restores it paused', async () => {
    await vq.virtq.create({ definition: guestDef('sv1') });
    const con = await consoleOf('sv1');
    await con.serial.waitFor('GUEST-READY', 60_000);
    await sleep(1500);
    const before = await guestUptime(con);
    const file = h.root.path('sv1.save');
    expect(await vq.virtq.save({ name: 'sv1', file })).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(qemus()).toEqual([]);
    const image = readFileSync(file);
    expect(image.subarray(0, 16).toString('latin1')).toBe('VIRTQ-SAVEIMAGE\n');
    expect(statSync(file).size).toBeGreaterThan(1024 * 1024);
    // Wall time passes while the VM is saved; its own clock does not.
    await sleep(4000);
    const row = await vq.virtq.restore({ file });
    expect(row).toMatchObject({ name: 'sv1', state: 'running', reason: 'restored' });
    // QEMU was spawned reading the image from an inherited descriptor (loading from its start),
    // not waiting for a migrate-incoming after the monitor's greeting.
    expect(qemus().join('\n')).toMatch(/ -incoming fd:\d+ /);
    const con2 = await consoleOf('sv1');
    const after = await guestUptime(con2);
    expect(after).toBeGreaterThan(before);
    expect(after).toBeLessThan(before + 4);
    expect(con2.serial.output).not.toContain('GUEST-READY');

    // The same image again, paused: the vCPUs wait for resume.
    await vq.virtq.destroy({ name: 'sv1' });
    expect(await vq.virtq.restore({ file, paused: true })).toMatchObject({ state: 'paused', reason: 'restored' });
    await vq.virtq.resume({ name: 'sv1' });
    const con3 = await consoleOf('sv1');
    expect(await guestUptime(con3)).toBeGreaterThan(before);

    // Saved again over the same file: the old image is replaced and, once the save is answered,
    // its hidden second name is gone too (session 15: freed after the reply, not in the rename).
    const first = statSync(file);
    expect(await vq.virtq.save({ name: 'sv1', file })).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(statSync(file).ino).not.toBe(first.ino);
    expect((await readSaveImage(file)).definition).toMatchObject({ name: 'sv1' });
    const strays = () => readdirSync(dirname(file)).filter((f) => f.startsWith('.sv1.save'));
    for (let i = 0; i < 100 && strays().length > 0; i++) await sleep(20);
    expect(strays()).toEqual([]);
  }, 180_000);

  it('refuses truncated, foreign, unfinished and corrupt images and another VM\'s name before any QEMU runs', async () => {
    await vq.virtq.create({ definition: guestDef('sv2') });
    const con = await consoleOf('sv2');
    await con.serial.waitFor('GUEST-READY', 60_000);
    const file = h.root.path('sv2.save');
    await vq.virtq.save({ name: 'sv2', file });
    const good = readFileSync(file);

    const variants: Array<[string, Buffer, string]> = [
      ['empty', Buffer.alloc(0), 'truncated'],
      ['short', good.subarray(0, 40), 'truncated'],
      ['cut', good.subarray(0, good.length - 4096), 'truncated'],
      ['foreign', readFileSync(testGuest().initrd).subarray(0, 70_000), 'foreign'],
      ['trailing', Buffer.concat([good, Buffer.from('x')]), 'corrupt'],
      ['header-flip', Buffer.from(good.map((b, i) => (i === 80 ? b ^ 1 : b))), 'corrupt'],
      ['unfinished', Buffer.from(good.map((b, i) => (i >= 24 && i < 32 ? 0 : b))), 'incomplete'],
      ['version', Buffer.from(good.map((b, i) => (i === 19 ? 9 : b))), 'version'],
    ];
    for (const [what, bytes, reason] of variants) {
      const bad = h.root.path(`bad-${what}.save`);
      writeFileSync(bad, bytes);
      await expect(vq.virtq.restore({ file: bad }), what).rejects.toMatchObject({ code: 'INVALID_SAVE_IMAGE', details: { reason } });
    }
    await expect(vq.virtq.restore({ file: h.root.path('missing.save') })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(vq.virtq.restore({ file: h.root.dir })).rejects.toMatchObject({ code: 'INVALID_SAVE_IMAGE' });
    await expect(vq.virtq.restore({ file: 'relative.save' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    expect(qemus()).toEqual([]);

    // The name now belongs to another VM (another UUID): the image is not restored over it.
    await vq.virtq.define({ definition: guestDef('sv2', '6f1b3c1e-0000-4000-8000-000000000002') });
    await expect(vq.virtq.restore({ file })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    expect(qemus()).toEqual([]);
    // The good image still restores once the name is free.
    await vq.virtq.undefine({ name: 'sv2' });
    expect(await vq.virtq.restore({ file })).toMatchObject({ state: 'running', reason: 'restored' });
    await vq.virtq.destroy({ name: 'sv2' });
  }, 180_000);

  it('managedsave keeps the image under the root, start resumes from it and removes it; a bad one refuses start until managedsave-remove', async () => {
    await vq.virtq.define({ definition: guestDef('ms1') });
    await vq.virtq.start({ name: 'ms1' });
    const con = await consoleOf('ms1');
    await con.serial.waitFor('GUEST-READY', 60_000);
    await sleep(1500);
    const before = await guestUptime(con);
    expect(await vq.virtq.managedSave({ name: 'ms1' })).toEqual({ state: 'shutoff', reason: 'saved' });
    const image = managedSaveFile(h.layout.state, 'ms1');
    expect(existsSync(image)).toBe(true);
    expect(await vq.virtq.start({ name: 'ms1' })).toMatchObject({ state: 'running', reason: 'restored' });
    expect(existsSync(image)).toBe(false);
    const after = await guestUptime(await consoleOf('ms1'));
    expect(after).toBeGreaterThan(before);

    await vq.virtq.managedSave({ name: 'ms1' });
    writeFileSync(image, readFileSync(image).subarray(0, 100_000));
    await expect(vq.virtq.start({ name: 'ms1' })).rejects.toMatchObject({ code: 'INVALID_SAVE_IMAGE', message: expect.stringContaining('managedsave-remove ms1') });
    expect(qemus()).toEqual([]);
    await vq.virtq.managedSaveRemove({ name: 'ms1' });
    await expect(vq.virtq.managedSaveRemove({ name: 'ms1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(await vq.virtq.start({ name: 'ms1' })).toMatchObject({ state: 'running', reason: 'booted' });
    // undefine takes the image with the definition.
    await vq.virtq.managedSave({ name: 'ms1' });
    await vq.virtq.undefine({ name: 'ms1' });
    expect(existsSync(image)).toBe(false);
  }, 180_000);

  it('refuses save of a VM that is not running', async () => {
    await vq.virtq.define({ definition: guestDef('off1') });
    await expect(vq.virtq.save({ name: 'off1', file: h.root.path('x.save') })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await expect(vq.virtq.save({ name: 'nosuch', file: h.root.path('x.save') })).rejects.toMatchObject({ code: 'NO_DOMAIN' });
    expect(existsSync(h.root.path('x.save'))).toBe(false);
  });
});
