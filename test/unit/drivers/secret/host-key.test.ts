// The host key: made once (32 bytes, 0600, never half-written), and any doubt about an existing
// one (mode, owner, length, symlink, missing while values need it) stops the store from opening.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOST_KEY_BYTES, loadHostKey } from '../../../../drivers/secret/host-key.js';
import { SecretStore } from '../../../../drivers/secret/secret-store.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

let root: TmpRoot;
beforeEach(() => { root = tmpRoot('vq-secret-'); });
afterEach(() => { root.remove(); });

const keyFile = (): string => root.path('etc', 'secrets.key');
const store = (ownerUid?: number): SecretStore => new SecretStore({ dir: root.path('lib', 'secrets'), keyFile: keyFile(), ...(ownerUid === undefined ? {} : { ownerUid }) });

async function openError(s: SecretStore): Promise<VirtqError> {
  const err: unknown = await s.open().then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(VirtqError);
  return err as VirtqError;
}

describe('loadHostKey', () => {
  it('creates a 32-byte key with mode 0600 and a 0700 secrets directory on first start', async () => {
    const report = await store().open();
    expect(report.keyCreated).toBe(true);
    const st = statSync(keyFile());
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBe(HOST_KEY_BYTES);
    expect(statSync(root.path('lib', 'secrets')).mode & 0o777).toBe(0o700);
    expect(readdirSync(root.path('etc'))).toEqual(['secrets.key']);
  });

  it('reads the same key on the next start instead of making a new one', async () => {
    await store().open();
    const before = readFileSync(keyFile());
    const report = await store().open();
    expect(report.keyCreated).toBe(false);
    expect(readFileSync(keyFile()).equals(before)).toBe(true);
  });

  it('tightens an existing secrets directory to 0700', async () => {
    await store().open();
    chmodSync(root.path('lib', 'secrets'), 0o755);
    await store().open();
    expect(statSync(root.path('lib', 'secrets')).mode & 0o777).toBe(0o700);
  });

  it('refuses a key file with mode 0644, naming the file and the mode, and leaves it alone', async () => {
    await store().open();
    chmodSync(keyFile(), 0o644);
    const before = readFileSync(keyFile());
    const err = await openError(store());
    expect(err.code).toBe('OPERATION_FAILED');
    expect(err.details).toEqual({ reason: 'KEY_MODE', file: keyFile() });
    expect(err.message).toContain(keyFile());
    expect(err.message).toContain('0644');
    expect(err.message).toContain('chmod 600');
    expect(readFileSync(keyFile()).equals(before)).toBe(true);
  });

  it('refuses a key file readable or writable by its group or by others alone (0640, 0604, 0620)', async () => {
    await store().open();
    for (const mode of [0o640, 0o604, 0o620]) {
      chmodSync(keyFile(), mode);
      const err = await openError(store());
      expect(err.details).toMatchObject({ reason: 'KEY_MODE' });
    }
  });

  it('accepts a key file tighter than 0600 (0400)', async () => {
    await store().open();
    chmodSync(keyFile(), 0o400);
    await expect(store().open()).resolves.toMatchObject({ keyCreated: false });
  });

  it('refuses a key file of the wrong length', async () => {
    mkdirSync(root.path('etc'));
    writeFileSync(keyFile(), Buffer.alloc(31, 7), { mode: 0o600 });
    const err = await openError(store());
    expect(err.details).toMatchObject({ reason: 'KEY_LENGTH' });
    expect(err.message).toContain('31 bytes');
  });

  it('refuses a key file owned by another uid', async () => {
    await store().open();
    const other = statSync(keyFile()).uid + 1;
    const err = await openError(store(other));
    expect(err.details).toMatchObject({ reason: 'KEY_OWNER' });
    expect(err.message).toContain(`uid ${other}`);
  });

  it('refuses a key file that is a symlink', async () => {
    await store().open();
    writeFileSync(root.path('real.key'), readFileSync(keyFile()), { mode: 0o600 });
    unlinkSync(keyFile());
    symlinkSync(root.path('real.key'), keyFile());
    const err = await openError(store());
    expect(err.details).toMatchObject({ reason: 'KEY_NOT_FILE' });
    expect(err.message).toContain('symlink');
  });

  it('refuses to make a new key while sealed values exist, and makes none', async () => {
    const s = store();
    await s.open();
    const { uuid } = await s.define({});
    await s.setValue(uuid, new Uint8Array([1, 2, 3]));
    s.close();
    unlinkSync(keyFile());
    const err = await openError(store());
    expect(err.details).toMatchObject({ reason: 'KEY_MISSING' });
    expect(err.message).toContain('1 stored secret value(s)');
    expect(err.message).toContain(root.path('lib', 'secrets'));
    expect(existsSync(keyFile())).toBe(false);
  });

  it('makes a key when the directory holds only metadata (no value sealed yet)', async () => {
    const s = store();
    await s.open();
    await s.define({ description: 'no value yet' });
    s.close();
    unlinkSync(keyFile());
    const report = await store().open();
    expect(report).toMatchObject({ keyCreated: true, loaded: 1 });
  });

  it('gives two concurrent first starts the same key', async () => {
    const opts = { storedValues: 0, valueDir: root.dir, uid: undefined };
    const [a, b] = await Promise.all([loadHostKey(keyFile(), opts), loadHostKey(keyFile(), opts)]);
    expect(a.key.equals(b.key)).toBe(true);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    expect(readFileSync(keyFile()).equals(a.key)).toBe(true);
    expect(readdirSync(root.path('etc'))).toEqual(['secrets.key']);
  });

  it('removes a temp key file left by a crash before its link', async () => {
    mkdirSync(root.path('etc'));
    writeFileSync(root.path('etc', '.secrets.key.deadbeef.tmp'), Buffer.alloc(32, 1), { mode: 0o600 });
    await store().open();
    expect(readdirSync(root.path('etc'))).toEqual(['secrets.key']);
    expect(readFileSync(keyFile()).equals(Buffer.alloc(32, 1))).toBe(false);
  });
});
