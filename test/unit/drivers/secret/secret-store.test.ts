// SecretStore's calls within one open store: define/list/get/lookup, values as bytes, the limits
// and refusals (bad UUIDs, duplicate usage, oversize values), ephemeral secrets, and that no value
// ever shows up in an error or in metadata.
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretStore, secretStorePaths } from '../../../../drivers/secret/secret-store.js';
import { MAX_SECRET_VALUE_BYTES, SECRET_REDACT_PATHS } from '../../../../drivers/secret/types.js';
import { VirtqError, type ErrorCode } from '../../../../protocol/errors.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';
const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

let root: TmpRoot;
let store: SecretStore;
let minted: number;
const secretsDir = (): string => root.path('lib', 'secrets');

beforeEach(async () => {
  root = tmpRoot('vq-secret-');
  minted = 0;
  store = new SecretStore({
    dir: secretsDir(), keyFile: root.path('etc', 'secrets.key'),
    newUuid: () => `00000000-0000-4000-8000-${String(++minted).padStart(12, '0')}`,
  });
  await store.open();
});
afterEach(() => {
  try {
    store.close();
  } finally {
    root.remove();
  }
});

/** Runs `fn`, expecting a VirtqError with `code`; returns it. */
async function failure(fn: () => unknown, code: ErrorCode): Promise<VirtqError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(VirtqError);
  expect((caught as VirtqError).code).toBe(code);
  return caught as VirtqError;
}

describe('secretStorePaths', () => {
  it('puts the sealed values under the state dir and the host key apart, under the config dir', () => {
    expect(secretStorePaths({ config: '/r/etc', state: '/r/lib' })).toEqual({ dir: '/r/lib/secrets', keyFile: '/r/etc/secrets.key' });
  });
});

describe('SecretStore definitions', () => {
  it('defines a secret with a new UUID from newUuid and lists and gets it', async () => {
    const meta = await store.define({ usage: { type: 'volume', volume: 'default/web1.qcow2' }, description: 'web1 disk' });
    expect(meta).toEqual({
      uuid: '00000000-0000-4000-8000-000000000001', usage: { type: 'volume', volume: 'default/web1.qcow2' },
      description: 'web1 disk', private: false, ephemeral: false, hasValue: false,
    });
    expect(store.list()).toEqual([meta]);
    expect(store.get(meta.uuid)).toEqual(meta);
  });

  it('canonicalises an uppercase UUID to lowercase', async () => {
    const meta = await store.define({ uuid: U1.toUpperCase().replace(/1/g, 'A') });
    expect(meta.uuid).toBe(U1.replace(/1/g, 'a'));
    expect(store.get(meta.uuid.toUpperCase()).uuid).toBe(meta.uuid);
  });

  it('lists secrets sorted by UUID', async () => {
    await store.define({ uuid: U2 });
    await store.define({ uuid: U1 });
    expect(store.list().map((m) => m.uuid)).toEqual([U1, U2]);
  });

  it('replaces the metadata on redefinition and keeps the value', async () => {
    await store.define({ uuid: U1, usage: { type: 'text', text: 'a' }, description: 'old' });
    await store.setValue(U1, bytes(1, 2, 3));
    const meta = await store.define({ uuid: U1, usage: { type: 'text', text: 'b' } });
    expect(meta).toEqual({ uuid: U1, usage: { type: 'text', text: 'b' }, private: false, ephemeral: false, hasValue: true });
    expect(store.getValue(U1)).toEqual(bytes(1, 2, 3));
    expect(() => store.lookupByUsage({ type: 'text', text: 'a' })).toThrow(/no secret has usage text "a"/);
  });

  it('refuses to redefine a private secret as non-private', async () => {
    await store.define({ uuid: U1, private: true });
    const err = await failure(() => store.define({ uuid: U1, private: false }), 'OPERATION_INVALID');
    expect(err.message).toContain(U1);
    expect(store.get(U1).private).toBe(true);
  });

  it('refuses a usage another secret has, naming that secret, and frees it on undefine', async () => {
    const usage = { type: 'volume' as const, volume: '/var/lib/virtq/images/a.qcow2' };
    await store.define({ uuid: U1, usage });
    const err = await failure(() => store.define({ uuid: U2, usage }), 'ALREADY_EXISTS');
    expect(err.message).toContain(U1);
    expect(err.message).toContain('a.qcow2');
    expect(() => store.get(U2)).toThrow(VirtqError);
    await store.define({ uuid: U1, usage, description: 'same secret, same usage' });
    await store.undefine(U1);
    await expect(store.define({ uuid: U2, usage })).resolves.toMatchObject({ uuid: U2 });
  });

  it('lets two concurrent definitions with one usage both run, and exactly one win', async () => {
    const usage = { type: 'text' as const, text: 'race' };
    const results = await Promise.allSettled([store.define({ uuid: U1, usage }), store.define({ uuid: U2, usage })]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(store.list()).toHaveLength(1);
  });

  it('tells a volume usage and a text usage with the same string apart', async () => {
    await store.define({ uuid: U1, usage: { type: 'volume', volume: 'x' } });
    await store.define({ uuid: U2, usage: { type: 'text', text: 'x' } });
    expect(store.lookupByUsage({ type: 'text', text: 'x' }).uuid).toBe(U2);
    expect(store.lookupByUsage({ type: 'volume', volume: 'x' }).uuid).toBe(U1);
  });

  it('refuses bad UUIDs in every call with INVALID_ARG', async () => {
    const bad: unknown[] = ['', 'abc', '11111111111141118111111111111111', `${U1}\0`, `${U1} `, 'g1111111-1111-4111-8111-111111111111', 42, null];
    for (const uuid of bad) {
      const u = uuid as string;
      await failure(() => store.define({ uuid: u }), 'INVALID_ARG');
      await failure(() => store.get(u), 'INVALID_ARG');
      await failure(() => store.getValue(u), 'INVALID_ARG');
      await failure(() => store.setValue(u, bytes(1)), 'INVALID_ARG');
      await failure(() => store.undefine(u), 'INVALID_ARG');
    }
    expect(store.list()).toEqual([]);
  });

  it('refuses descriptions and usages with NUL, over their length, or of the wrong shape', async () => {
    const cases: [Parameters<SecretStore['define']>[0], string][] = [
      [{ description: 'a\0b' }, 'description'],
      [{ description: 'x'.repeat(1025) }, 'description'],
      [{ usage: { type: 'text', text: '' } }, 'usage.text'],
      [{ usage: { type: 'volume', volume: 'v'.repeat(4097) } }, 'usage.volume'],
      [{ usage: { type: 'volume', volume: 'a\0' } }, 'usage.volume'],
      [{ usage: { type: 'ceph' } as unknown as { type: 'text'; text: string } }, 'usage.type'],
      [{ private: 'yes' as unknown as boolean }, 'private'],
    ];
    for (const [def, field] of cases) {
      const err = await failure(() => store.define(def), 'INVALID_ARG');
      expect(err.details).toEqual({ field });
    }
    expect(store.list()).toEqual([]);
  });

  it('answers NO_SECRET for an unknown UUID or usage', async () => {
    await failure(() => store.get(U1), 'NO_SECRET');
    await failure(() => store.getValue(U1), 'NO_SECRET');
    await failure(() => store.setValue(U1, bytes(1)), 'NO_SECRET');
    await failure(() => store.undefine(U1), 'NO_SECRET');
    await failure(() => store.lookupByUsage({ type: 'text', text: 'none' }), 'NO_SECRET');
  });

  it('refuses every call before open and after close', async () => {
    const fresh = new SecretStore({ dir: root.path('other'), keyFile: root.path('other.key') });
    await failure(() => fresh.list(), 'OPERATION_INVALID');
    store.close();
    await failure(() => store.define({}), 'OPERATION_INVALID');
    await failure(() => store.getValue(U1), 'OPERATION_INVALID');
  });
});

describe('SecretStore values', () => {
  it('round-trips a value and marks the secret as having one', async () => {
    await store.define({ uuid: U1 });
    await expect(store.setValue(U1, new TextEncoder().encode('s3cret'))).resolves.toMatchObject({ hasValue: true });
    expect(new TextDecoder().decode(store.getValue(U1))).toBe('s3cret');
    expect(store.get(U1).hasValue).toBe(true);
  });

  it('round-trips bytes that are not UTF-8', async () => {
    const raw = bytes(0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0x00);
    await store.define({ uuid: U1 });
    await store.setValue(U1, raw);
    expect(store.getValue(U1)).toEqual(raw);
  });

  it('keeps its own copy: changing the bytes given or returned changes nothing stored', async () => {
    await store.define({ uuid: U1 });
    const given = bytes(1, 2, 3);
    await store.setValue(U1, given);
    given.fill(9);
    store.getValue(U1).fill(9);
    expect(store.getValue(U1)).toEqual(bytes(1, 2, 3));
  });

  it('answers OPERATION_INVALID "has no value" for a secret without one', async () => {
    await store.define({ uuid: U1 });
    const err = await failure(() => store.getValue(U1), 'OPERATION_INVALID');
    expect(err.message).toContain('has no value');
  });

  it('accepts a 64 KiB value and refuses 10 MiB and empty values, saying the limit', async () => {
    await store.define({ uuid: U1 });
    await store.setValue(U1, new Uint8Array(MAX_SECRET_VALUE_BYTES).fill(7));
    const err = await failure(() => store.setValue(U1, new Uint8Array(10 * 1024 * 1024)), 'INVALID_ARG');
    expect(err.message).toContain('10485760 bytes');
    expect(err.message).toContain('65536 bytes (64 KiB)');
    await failure(() => store.setValue(U1, bytes()), 'INVALID_ARG');
    await failure(() => store.setValue(U1, 'text' as unknown as Uint8Array), 'INVALID_ARG');
    expect(store.getValue(U1)).toHaveLength(MAX_SECRET_VALUE_BYTES);
  });

  it('applies concurrent setValue calls in order: the last one wins in memory and on disk', async () => {
    await store.define({ uuid: U1 });
    await Promise.all([1, 2, 3, 4, 5].map((n) => store.setValue(U1, bytes(n))));
    expect(store.getValue(U1)).toEqual(bytes(5));
    store.close();
    store = new SecretStore({ dir: secretsDir(), keyFile: root.path('etc', 'secrets.key') });
    await store.open();
    expect(store.getValue(U1)).toEqual(bytes(5));
  });

  it('removes a persistent secret\'s files on undefine', async () => {
    await store.define({ uuid: U1 });
    await store.setValue(U1, bytes(1));
    expect(readdirSync(secretsDir()).sort()).toEqual([`${U1}.json`, `${U1}.value`]);
    await store.undefine(U1);
    expect(readdirSync(secretsDir())).toEqual([]);
    await failure(() => store.get(U1), 'NO_SECRET');
  });

  it('never writes an ephemeral secret to disk', async () => {
    await store.define({ uuid: U1, ephemeral: true, usage: { type: 'text', text: 'e' } });
    await store.setValue(U1, bytes(4, 5));
    expect(store.getValue(U1)).toEqual(bytes(4, 5));
    expect(readdirSync(secretsDir())).toEqual([]);
    await store.undefine(U1);
    expect(store.list()).toEqual([]);
  });

  it('moves a secret between ephemeral and persistent with its value', async () => {
    await store.define({ uuid: U1 });
    await store.setValue(U1, bytes(6));
    await store.define({ uuid: U1, ephemeral: true });
    expect(readdirSync(secretsDir())).toEqual([]);
    expect(store.getValue(U1)).toEqual(bytes(6));
    await store.define({ uuid: U1 });
    expect(readdirSync(secretsDir()).sort()).toEqual([`${U1}.json`, `${U1}.value`]);
  });
});

describe('SecretStore confidentiality', () => {
  const marker = new TextEncoder().encode('MARKER-do-not-leak-7f3a');
  const leaks = (err: VirtqError): boolean => {
    const text = `${err.message} ${JSON.stringify(err.details ?? {})} ${JSON.stringify(err.toWire())}`;
    return text.includes('MARKER');
  };

  it('puts no value in any error message or details', async () => {
    const big = new Uint8Array(MAX_SECRET_VALUE_BYTES + 1);
    for (let i = 0; i + marker.length <= big.length; i += marker.length) big.set(marker, i);
    const errors = [
      await failure(() => store.setValue(U1, marker), 'NO_SECRET'),
      await failure(() => store.setValue('not-a-uuid', marker), 'INVALID_ARG'),
    ];
    await store.define({ uuid: U1 });
    errors.push(await failure(() => store.setValue(U1, big), 'INVALID_ARG'));
    await store.define({ uuid: U1, private: true });
    await store.setValue(U1, marker);
    errors.push(await failure(() => store.define({ uuid: U1, private: false }), 'OPERATION_INVALID'));
    errors.push(await failure(() => store.getValue(U2), 'NO_SECRET'));
    for (const err of errors) expect(leaks(err)).toBe(false);
  });

  it('keeps values out of metadata, listings and metadata files', async () => {
    await store.define({ uuid: U1, private: true });
    const set = await store.setValue(U1, marker);
    const text = JSON.stringify([set, store.list(), store.get(U1), await store.define({ uuid: U1, private: true })]);
    expect(text).not.toContain('MARKER');
    expect(readFileSync(root.path('lib', 'secrets', `${U1}.json`), 'utf8')).not.toContain('MARKER');
    expect(SECRET_REDACT_PATHS).toContain('*.value');
  });
});
