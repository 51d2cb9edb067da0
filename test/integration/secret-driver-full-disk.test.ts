// SecretStore on a full filesystem (a real 64 KiB tmpfs; needs root, as the rest of the suite):
// writes fail with NO_SPACE, nothing changes in memory or on disk, no temp file is left, and the
// store works again once space is freed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretStore } from '../../drivers/secret/secret-store.js';
import { VirtqError } from '../../protocol/errors.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';

let root: TmpRoot;
let mounted = false;
const stores: SecretStore[] = [];

beforeEach(() => {
  root = tmpRoot('vq-secret-');
  mkdirSync(root.path('lib'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', root.path('lib')]);
  mounted = true;
});
afterEach(() => {
  try {
    for (const s of stores.splice(0)) s.close();
  } finally {
    if (mounted) execFileSync('umount', [root.path('lib')]);
    mounted = false;
    root.remove();
  }
});

async function openStore(): Promise<SecretStore> {
  const s = new SecretStore({ dir: root.path('lib', 'secrets'), keyFile: root.path('etc', 'secrets.key') });
  stores.push(s);
  await s.open();
  return s;
}

/** Fills the tmpfs to the last byte. */
function fill(): void {
  try {
    writeFileSync(root.path('lib', 'filler'), Buffer.alloc(1024 * 1024));
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    return;
  }
  throw new Error('the 64 KiB tmpfs took 1 MiB');
}

async function codeOf(p: Promise<unknown>): Promise<VirtqError> {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(VirtqError);
  return err as VirtqError;
}

describe('SecretStore on a full disk', () => {
  it('refuses writes with NO_SPACE, keeps the old value and leaves no temp file', async () => {
    const store = await openStore();
    await store.define({ uuid: U1 });
    await store.setValue(U1, new Uint8Array([1, 1, 1]));
    fill();
    const setErr = await codeOf(store.setValue(U1, new TextEncoder().encode('MARKER-new-value')));
    expect(setErr.code).toBe('NO_SPACE');
    expect(setErr.message).toContain(`${U1}.value`);
    expect(setErr.message).not.toContain('MARKER');
    expect((await codeOf(store.define({ uuid: U2 }))).code).toBe('NO_SPACE');
    expect(store.getValue(U1)).toEqual(new Uint8Array([1, 1, 1]));
    expect(store.list().map((m) => m.uuid)).toEqual([U1]);
    expect(readdirSync(root.path('lib', 'secrets')).sort()).toEqual([`${U1}.json`, `${U1}.value`]);

    rmSync(root.path('lib', 'filler'));
    await store.setValue(U1, new Uint8Array([2, 2]));
    store.close();
    const again = await openStore();
    expect(again.getValue(U1)).toEqual(new Uint8Array([2, 2]));
  });
});
