// The start's synchronous host-file checks (checkStartFilesSync) and the shim's synchronous state
// file read (readRuntimeStateSync) give exactly what their asynchronous forms give: the same
// refusals with the same codes, messages and fields, the same block devices, the same state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHostFiles, checkStartFilesSync, findHostDevices, type HostFile } from '../../../../../drivers/hypervisor/qemu/host-devices.js';
import { readRuntimeState, readRuntimeStateSync } from '../../../../../daemon/runtime-state.js';

describe('synchronous start checks', () => {
  let dir: string;
  const p = (n: string) => join(dir, n);
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vq-startfiles-'));
    writeFileSync(p('disk.img'), 'x');
    writeFileSync(p('kernel'), 'x');
    mkdirSync(p('dir'));
    execFileSync('mkfifo', [p('fifo')]);
    symlinkSync('/dev/zero', p('zero-link'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const outcome = async (run: () => unknown): Promise<unknown> => {
    try {
      return { ok: await run() };
    } catch (err) {
      const e = err as { code?: string; message?: string; details?: unknown };
      return { code: e.code, message: e.message, details: e.details };
    }
  };

  it('refuses and accepts what checkHostFiles does, with the same error, and finds the same block devices', async () => {
    const block = ['/dev/loop0', '/dev/vda', '/dev/sda', '/dev/nvme0n1'].find((d) => existsSync(d) && statSync(d).isBlockDevice());
    const others = ['/dev/zero', p('zero-link'), p('fifo'), p('dir'), p('missing.img'), p('disk.img'), ...(block === undefined ? [] : [block])];
    for (const other of others) {
      for (const asKernel of [false, true]) {
        const files: HostFile[] = [
          { path: asKernel ? other : p('kernel'), field: '/kernel/path', disk: false },
          { path: p('disk.img'), field: '/disks/0/path', disk: true },
          ...(asKernel ? [] : [{ path: other, field: '/disks/1/path', disk: true }]),
        ];
        const async = await outcome(async () => { await checkHostFiles(files); return findHostDevices(files.filter((f) => f.disk).map((f) => f.path)); });
        const sync = await outcome(() => checkStartFilesSync(files));
        expect(sync, `${other} as ${asKernel ? 'kernel' : 'disk'}`).toEqual(async);
      }
    }
  });

  it('reads a state file as readRuntimeState does: missing, not one, and one', async () => {
    const file = p('vm.json');
    expect(readRuntimeStateSync(file)).toBeUndefined();
    writeFileSync(file, '{not json');
    expect(readRuntimeStateSync(file)).toBeUndefined();
    writeFileSync(file, JSON.stringify({ format: 2, name: 'a', uuid: 'u' }));
    expect(readRuntimeStateSync(file)).toBeUndefined();
    const state = { format: 1, name: 'a', uuid: 'u', shimPid: 1, qemuPid: 2, definition: { name: 'a' }, sockets: { rw: 'r', ro: 'o', admin: 'a' }, state: 'running', reason: 'booted' };
    writeFileSync(file, `${JSON.stringify(state)}\n`);
    expect(readRuntimeStateSync(file)).toEqual(await readRuntimeState(file));
    expect(readRuntimeStateSync(file)).toMatchObject({ qemuPid: 2, state: 'running' });
    // A directory where the file should be: unreadable, so undefined, as the asynchronous read.
    expect(readRuntimeStateSync(p('dir'))).toEqual(await readRuntimeState(p('dir')));
  });
});
