// Definitions that point a disk, kernel or initrd at something that is not a file: a character
// device, a FIFO, a unix socket, a directory, a symlink to a device, nothing at all. The shim
// refuses them with INVALID_ARG naming the field before QEMU is spawned (QEMU hung for 10 s on a
// FIFO kernel, said "No such file or directory" of /dev/zero and booted with /dev/zero as initrd).
// Block devices are legitimate disks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { checkHostFiles, hostFilesOf } from '../../drivers/hypervisor/qemu/host-devices.js';
import { normalizeDefinition, pathsOnly, type Definition } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { ShimHarness } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const kernel = () => idleGuest().kernel;
const def = (name: string, extra: Partial<Definition> = {}): Definition => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: kernel() }, ...extra });

describe('host files named by a definition', () => {
  let s: ShimHarness;
  let sock: Server;
  const p = (name: string) => s.root.path('files', name);

  beforeAll(async () => {
    s = new ShimHarness(tmpRoot());
    mkdirSync(s.root.path('files'));
    execFileSync('mkfifo', [p('fifo')]);
    mkdirSync(p('dir'));
    writeFileSync(p('disk.img'), Buffer.alloc(1024 * 1024));
    writeFileSync(p('disk2.img'), Buffer.alloc(1024 * 1024));
    symlinkSync('/dev/zero', p('zero-link'));
    symlinkSync(p('disk2.img'), p('disk-link'));
    sock = createServer();
    await new Promise<void>((resolve) => sock.listen(p('s.sock'), resolve));
  });
  afterAll(async () => {
    sock.close();
    await s.cleanup();
  });

  const notFiles = () => [
    { what: 'a character device', path: '/dev/zero' },
    { what: 'a symlink to a character device', path: p('zero-link'), kind: 'a character device' },
    { what: 'a FIFO', path: p('fifo') },
    { what: 'a socket', path: p('s.sock') },
    { what: 'a directory', path: p('dir') },
    { what: 'nothing', path: p('missing.img'), kind: 'does not exist' },
  ];

  const refused = async (name: string, d: Definition, field: string, kind: string) => {
    const file = s.root.path(`${name}.json`);
    writeFileSync(file, JSON.stringify(d));
    const t0 = performance.now();
    const run = await s.run(['--no-register', '--definition', file], name);
    expect(run.reply, name).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringContaining(`${field}: `) } });
    expect(run.reply.error?.message).toContain(kind);
    expect(await run.exited).toBe(1);
    expect(performance.now() - t0).toBeLessThan(5000);
    // QEMU was never spawned.
    expect(existsSync(s.root.path('log', `${name}.qemu.log`))).toBe(false);
  };

  it('refuses a disk that is not a regular file or a block device, naming /disks/N/path', async () => {
    for (const [i, f] of notFiles().entries()) {
      await refused(`disk${i}`, def(`disk${i}`, { disks: [{ path: p('disk.img'), target: 'vda' }, { path: f.path, target: 'vdb' }] }), '/disks/1/path', f.kind ?? f.what.replace(/^a symlink to /, ''));
    }
  });

  it('refuses a kernel or initrd that is not a regular file, naming the field', async () => {
    for (const [i, f] of notFiles().entries()) {
      const kind = f.kind ?? f.what.replace(/^a symlink to /, '');
      await refused(`kern${i}`, def(`kern${i}`, { kernel: { path: f.path } }), '/kernel/path', kind);
      await refused(`initrd${i}`, def(`initrd${i}`, { kernel: { path: kernel(), initrd: f.path } }), '/kernel/initrd', kind);
    }
  });

  it('starts a VM whose disks are regular files or symlinks to them', async () => {
    const vm = await s.start(def('okdisk', { disks: [{ path: p('disk.img'), target: 'vda' }, { path: p('disk-link'), target: 'vdb', readonly: true }] }));
    await expect(vm.api.getState({ name: 'okdisk' })).resolves.toMatchObject({ state: 'running' });
    // Hot-plug is held to the same rule, naming the argument's field.
    for (const f of notFiles()) {
      await expect(vm.api.attachDisk({ name: 'okdisk', disk: { path: f.path, target: 'vdc' } }))
        .rejects.toMatchObject({ code: 'INVALID_ARG', details: { path: '/disk/path' } });
    }
    await expect(vm.api.getDefinition({ name: 'okdisk' })).resolves.toMatchObject({ disks: [expect.anything(), expect.anything()] });
  });

  it('accepts a block device as a disk but not as a kernel', async () => {
    const block = ['/dev/loop0', '/dev/vda', '/dev/sda', '/dev/nvme0n1'].find((d) => existsSync(d) && statSync(d).isBlockDevice());
    if (block === undefined) return;
    const d = pathsOnly(normalizeDefinition(def('blk', { disks: [{ path: block, target: 'vda' }] }), () => '00000000-0000-4000-8000-000000000002'));
    await expect(checkHostFiles(hostFilesOf(d))).resolves.toBeUndefined();
    await expect(checkHostFiles(hostFilesOf({ ...d, kernel: { path: block } }))).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('/kernel/path: ') });
  });

  it('reports the refusal through virtqemud: create and start fail with INVALID_ARG, the definition stays', async () => {
    const h = new DaemonHarness(tmpRoot());
    try {
      await h.startDaemon(['--reconcile-ms', '0']);
      const { api } = await h.client();
      await expect(api.create({ definition: def('tfifo', { disks: [{ path: p('fifo'), target: 'vda' }] }) }))
        .rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('/disks/0/path: ') });
      await api.define({ definition: def('pfifo', { kernel: { path: p('fifo') } }) });
      await expect(api.start({ name: 'pfifo' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('/kernel/path: ') });
      expect((await api.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'pfifo', persistent: true, state: 'shutoff' })]);
      // Failed transient creates leave no row, whichever virtqemud sees first: the create's
      // failure or the shim's connection closing (a race that once kept such rows listed).
      const many = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => api.create({ definition: def(`tf${i}`, { disks: [{ path: p('fifo'), target: 'vda' }] }) })));
      expect(many.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok'))).toEqual(Array(12).fill('INVALID_ARG'));
      await expect.poll(async () => (await api.listDomains({})).domains.map((r) => r.name), { timeout: 5000 }).toEqual(['pfifo']);
    } finally {
      await h.cleanup();
    }
  });
});
