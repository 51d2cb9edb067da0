// SecretStore across restarts: what a new store over the same directory finds, what is on disk
// (sealed, never plaintext), and how damaged, tampered, swapped, orphaned or half-written files
// cost only themselves, reported by open() instead of thrown.
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SecretFiles } from '../../../../drivers/secret/secret-files.js';
import { SecretStore } from '../../../../drivers/secret/secret-store.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';
const U3 = '33333333-3333-4333-8333-333333333333';
const PLAIN = new TextEncoder().encode('correct horse battery staple');

let root: TmpRoot;
const open: SecretStore[] = [];
const secretsFile = (name: string): string => root.path('lib', 'secrets', name);

/** A new store over the test's root, opened; closed in afterEach. */
async function reopen(): Promise<{ store: SecretStore; report: Awaited<ReturnType<SecretStore['open']>> }> {
  const store = new SecretStore({ dir: root.path('lib', 'secrets'), keyFile: root.path('etc', 'secrets.key') });
  open.push(store);
  const report = await store.open();
  return { store, report };
}

/** Two persistent secrets with values and one ephemeral one. */
async function seed(): Promise<void> {
  const { store } = await reopen();
  await store.define({ uuid: U1, usage: { type: 'volume', volume: 'default/a.qcow2' }, description: 'a', private: true });
  await store.setValue(U1, PLAIN);
  await store.define({ uuid: U2, usage: { type: 'text', text: 'ceph client' } });
  await store.setValue(U2, new Uint8Array([0xff, 0x00, 0xfe]));
  await store.define({ uuid: U3, ephemeral: true });
  await store.setValue(U3, new Uint8Array([3]));
  store.close();
}

/** The VirtqError `fn` throws (fails the test if it throws nothing or something else). */
function thrown(fn: () => unknown): VirtqError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VirtqError);
    return err as VirtqError;
  }
  throw new Error('expected a VirtqError, nothing was thrown');
}

beforeEach(() => { root = tmpRoot('vq-secret-'); });
afterEach(() => {
  try {
    for (const s of open.splice(0)) s.close();
  } finally {
    root.remove();
  }
});

describe('SecretStore across restarts', () => {
  it('keeps persistent secrets and their values and forgets ephemeral ones', async () => {
    await seed();
    const { store, report } = await reopen();
    expect(report).toEqual({ loaded: 2, keyCreated: false, tempFilesRemoved: 0, problems: [] });
    expect(store.list()).toEqual([
      { uuid: U1, usage: { type: 'volume', volume: 'default/a.qcow2' }, description: 'a', private: true, ephemeral: false, hasValue: true },
      { uuid: U2, usage: { type: 'text', text: 'ceph client' }, private: false, ephemeral: false, hasValue: true },
    ]);
    expect(store.getValue(U1)).toEqual(PLAIN);
    expect(store.getValue(U2)).toEqual(new Uint8Array([0xff, 0x00, 0xfe]));
    expect(() => store.get(U3)).toThrow(/no secret with UUID/);
    expect(store.lookupByUsage({ type: 'text', text: 'ceph client' }).uuid).toBe(U2);
  });

  it('stores values sealed: the value file holds neither the plaintext nor its hex or base64', async () => {
    await seed();
    const sealed = readFileSync(secretsFile(`${U1}.value`));
    expect(sealed.subarray(0, 4).toString('latin1')).toBe('VQSV');
    expect(sealed.includes(Buffer.from(PLAIN))).toBe(false);
    expect(sealed.includes(Buffer.from(Buffer.from(PLAIN).toString('hex')))).toBe(false);
    expect(sealed.includes(Buffer.from(Buffer.from(PLAIN).toString('base64')))).toBe(false);
    expect(sealed.includes(Buffer.from('horse'))).toBe(false);
    for (const name of readdirSync(root.path('lib', 'secrets'))) {
      expect(readFileSync(secretsFile(name)).includes(Buffer.from('horse'))).toBe(false);
    }
  });

  it('seals each write with a fresh IV: the same value twice gives different files', async () => {
    await seed();
    const first = readFileSync(secretsFile(`${U1}.value`));
    const { store } = await reopen();
    await store.setValue(U1, PLAIN);
    const second = readFileSync(secretsFile(`${U1}.value`));
    expect(second.equals(first)).toBe(false);
    expect(second.subarray(16, 28).equals(first.subarray(16, 28))).toBe(false);
  });

  it('loads a secret whose value file was tampered with but refuses its value, keeping the others', async () => {
    await seed();
    const file = secretsFile(`${U1}.value`);
    const sealed = readFileSync(file);
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 0x01;
    writeFileSync(file, sealed);
    const { store, report } = await reopen();
    expect(report.problems).toEqual([expect.objectContaining({ reason: 'VALUE_CORRUPT', uuid: U1, file })]);
    expect(report.problems[0]?.message).toContain('set the value again');
    const err = thrown(() => store.getValue(U1));
    expect(err.code).toBe('OPERATION_FAILED');
    expect(err.details).toEqual({ uuid: U1, reason: 'VALUE_CORRUPT' });
    expect(store.getValue(U2)).toEqual(new Uint8Array([0xff, 0x00, 0xfe]));
    await store.setValue(U1, PLAIN);
    expect(store.getValue(U1)).toEqual(PLAIN);
  });

  it('refuses value files swapped between two secrets (the UUID is authenticated)', async () => {
    await seed();
    renameSync(secretsFile(`${U1}.value`), secretsFile('swap'));
    renameSync(secretsFile(`${U2}.value`), secretsFile(`${U1}.value`));
    renameSync(secretsFile('swap'), secretsFile(`${U2}.value`));
    const { store, report } = await reopen();
    expect(report.problems.map((p) => [p.uuid, p.reason])).toEqual([[U1, 'VALUE_CORRUPT'], [U2, 'VALUE_CORRUPT']]);
    expect(report.problems[0]?.message).toContain('belongs to another secret');
    expect(() => store.getValue(U1)).toThrow(/cannot be read/);
    expect(() => store.getValue(U2)).toThrow(/cannot be read/);
  });

  it('tells a value sealed under another host key from a damaged one', async () => {
    await seed();
    writeFileSync(root.path('etc', 'secrets.key'), Buffer.alloc(32, 0x42), { mode: 0o600 });
    const { store, report } = await reopen();
    expect(report.problems.map((p) => p.reason)).toEqual(['VALUE_WRONG_KEY', 'VALUE_WRONG_KEY']);
    expect(report.problems[0]?.message).toContain('restore the host key');
    expect(store.list()).toHaveLength(2);
  });

  it('skips a secret whose metadata file is corrupt and loads the others', async () => {
    await seed();
    writeFileSync(secretsFile(`${U1}.json`), '{"format":1,"uuid":');
    const { store, report } = await reopen();
    expect(report.problems).toEqual([expect.objectContaining({ reason: 'METADATA_CORRUPT', uuid: U1, file: secretsFile(`${U1}.json`) })]);
    expect(store.list().map((m) => m.uuid)).toEqual([U2]);
    expect(store.getValue(U2)).toEqual(new Uint8Array([0xff, 0x00, 0xfe]));
  });

  it('skips metadata that fails validation or names another UUID', async () => {
    await seed();
    const doc = JSON.parse(readFileSync(secretsFile(`${U2}.json`), 'utf8')) as Record<string, unknown>;
    writeFileSync(secretsFile(`${U2}.json`), JSON.stringify({ ...doc, description: 'a\0b' }));
    writeFileSync(secretsFile(`${U3}.json`), JSON.stringify({ ...doc, uuid: U1 }));
    const { report } = await reopen();
    expect(report.problems.map((p) => [p.uuid, p.reason])).toEqual([[U2, 'METADATA_CORRUPT'], [U3, 'METADATA_CORRUPT']]);
    expect(report.problems[1]?.message).toContain('file name');
    expect(report.loaded).toBe(1);
  });

  it('skips the second of two secrets on disk with one usage', async () => {
    await seed();
    const doc = JSON.parse(readFileSync(secretsFile(`${U1}.json`), 'utf8')) as Record<string, unknown>;
    writeFileSync(secretsFile(`${U3}.json`), JSON.stringify({ ...doc, uuid: U3 }));
    const { store, report } = await reopen();
    expect(report.problems).toEqual([expect.objectContaining({ reason: 'USAGE_CONFLICT', uuid: U3 })]);
    expect(report.problems[0]?.message).toContain(U1);
    expect(store.lookupByUsage({ type: 'volume', volume: 'default/a.qcow2' }).uuid).toBe(U1);
  });

  it('reports a value file without metadata and leaves it in place', async () => {
    await seed();
    renameSync(secretsFile(`${U2}.value`), secretsFile(`${U3}.value`));
    const { report } = await reopen();
    expect(report.problems).toEqual([expect.objectContaining({ reason: 'ORPHAN_VALUE', uuid: U3 })]);
    expect(readdirSync(root.path('lib', 'secrets'))).toContain(`${U3}.value`);
  });

  it('removes the temp file a crash between write and rename left, keeping the old value', async () => {
    await seed();
    const stale = secretsFile(`.${U1}.value.0badc0de.tmp`);
    writeFileSync(stale, 'half-written');
    const { store, report } = await reopen();
    expect(report).toMatchObject({ tempFilesRemoved: 1, problems: [], loaded: 2 });
    expect(readdirSync(root.path('lib', 'secrets'))).not.toContain(`.${U1}.value.0badc0de.tmp`);
    expect(store.getValue(U1)).toEqual(PLAIN);
  });

  it('keeps a secret moved from ephemeral to persistent, with its value', async () => {
    const { store } = await reopen();
    await store.define({ uuid: U1, ephemeral: true });
    await store.setValue(U1, PLAIN);
    await store.define({ uuid: U1, ephemeral: false });
    store.close();
    const next = await reopen();
    expect(next.store.getValue(U1)).toEqual(PLAIN);
  });

  // Found by the chaos suite (seed 5014): virtsecretd killed while it made an ephemeral secret
  // persistent had written the metadata but not the value: back up, the secret had lost its value.
  it('never leaves a persistent secret without its value when a move from ephemeral to persistent is cut short', async () => {
    const { store } = await reopen();
    await store.define({ uuid: U1, ephemeral: true });
    await store.setValue(U1, PLAIN);
    // The process dies before the second file of the change is written: that write never happens.
    const writes: string[] = [];
    for (const m of ['writeMeta', 'writeValue'] as const) {
      const real = SecretFiles.prototype[m] as (this: SecretFiles, ...args: unknown[]) => Promise<void>;
      vi.spyOn(SecretFiles.prototype, m).mockImplementation(function (this: SecretFiles, ...args: unknown[]) {
        writes.push(m);
        return writes.length > 1 ? new Promise<void>(() => undefined) : real.apply(this, args);
      });
    }
    void store.define({ uuid: U1, ephemeral: false });
    await expect.poll(() => writes.length).toBe(2);
    vi.restoreAllMocks();
    // Back up: the secret is gone, as an ephemeral one is after a restart (or, had it all been
    // written, persistent with its value) — never there without one.
    const after = await reopen();
    expect(thrown(() => after.store.get(U1)).code).toBe('NO_SECRET');
    expect(after.report.problems).toEqual([expect.objectContaining({ reason: 'ORPHAN_VALUE', uuid: U1 })]);
    // Defined again, it does not pick up the value file the cut left behind.
    await after.store.define({ uuid: U1 });
    const again = await reopen();
    expect(thrown(() => again.store.getValue(U1)).code).toBe('OPERATION_INVALID');
    expect(again.report.problems).toEqual([]);
  });
});
