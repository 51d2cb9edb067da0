// The sealed value format: AES-256-GCM with the header and the secret's UUID authenticated, a
// key id telling another host key from damage, and every failure a reason, never a throw.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hostKeyId, openValue, SEALED_OVERHEAD, sealValue } from '../../../../drivers/secret/value-cipher.js';

const KEY = randomBytes(32);
const UUID = '11111111-1111-4111-8111-111111111111';
const VALUE = Buffer.from([0, 1, 2, 0xff, 0xfe]);

describe('sealValue/openValue', () => {
  it('round-trips a value and adds exactly the header, IV and tag', () => {
    const sealed = sealValue(KEY, UUID, VALUE);
    expect(sealed).toHaveLength(VALUE.length + SEALED_OVERHEAD);
    expect(openValue(KEY, UUID, sealed)).toEqual({ ok: true, value: VALUE });
  });

  it('refuses a value sealed for another UUID', () => {
    const sealed = sealValue(KEY, UUID, VALUE);
    expect(openValue(KEY, '22222222-2222-4222-8222-222222222222', sealed)).toMatchObject({ ok: false, reason: 'VALUE_CORRUPT' });
  });

  it('refuses an edited header byte (reserved bytes are authenticated too)', () => {
    const sealed = sealValue(KEY, UUID, VALUE);
    sealed[5] = 1;
    expect(openValue(KEY, UUID, sealed)).toMatchObject({ ok: false, reason: 'VALUE_CORRUPT' });
  });

  it('names an unknown format, a bad magic and a truncated file', () => {
    const sealed = sealValue(KEY, UUID, VALUE);
    const format = Buffer.from(sealed);
    format[4] = 9;
    expect(openValue(KEY, UUID, format)).toMatchObject({ ok: false, detail: expect.stringContaining('unknown value format 9') });
    expect(openValue(KEY, UUID, Buffer.concat([Buffer.from('XXXX'), sealed.subarray(4)]))).toMatchObject({ ok: false, detail: expect.stringContaining('bad magic') });
    expect(openValue(KEY, UUID, sealed.subarray(0, 30))).toMatchObject({ ok: false, detail: expect.stringContaining('too short') });
  });

  it('tells a value sealed under another key by its key id, giving both ids', () => {
    const other = randomBytes(32);
    const result = openValue(KEY, UUID, sealValue(other, UUID, VALUE));
    expect(result).toMatchObject({ ok: false, reason: 'VALUE_WRONG_KEY' });
    expect(result.ok ? '' : result.detail).toContain(hostKeyId(other).toString('hex'));
    expect(result.ok ? '' : result.detail).toContain(hostKeyId(KEY).toString('hex'));
  });

  it('refuses a key id forged to match when the key differs (the tag still fails)', () => {
    const sealed = sealValue(randomBytes(32), UUID, VALUE);
    hostKeyId(KEY).copy(sealed, 8);
    expect(openValue(KEY, UUID, sealed)).toMatchObject({ ok: false, reason: 'VALUE_CORRUPT' });
  });
});
