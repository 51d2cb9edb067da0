// The chaos suite's model of volumes and secrets (test/chaos/possible.ts, storage-model.ts): what
// it allows after certain, uncertain and raced replies, and that it refuses what cannot be.
import { describe, expect, it } from 'vitest';
import { PossibleStates } from '../../chaos/possible.js';
import {
  KiB, checkRead, cloneVol, contentBytes, contentHash, createVol, defineSecret, deleteVol, resizeVol, secretKey, secretdRestart, setSecret,
  undefineSecret, uploadVol, volKey, type SecretState, type VolState,
} from '../../chaos/storage-model.js';

const keys = (m: Map<string, unknown>): string[] => [...m.keys()].sort();

describe('the chaos model of volumes', () => {
  const content = { cap: 256 * KiB, parts: [[4096, 8192, 7]] as Array<[number, number, number]> };

  it('follows certain replies exactly and refuses a success no state permits', () => {
    const m = new PossibleStates<VolState>(volKey, 'none');
    expect(m.end(m.begin('v', createVol('raw', 256 * KiB)), 'ok')).toBe(true);
    expect(m.end(m.begin('v', uploadVol(content)), 'ok')).toBe(true);
    expect([...m.reachable('v').values()]).toEqual([{ f: 'raw', c: content }]);
    // A second create of an existing volume cannot succeed: the daemon broke the model.
    expect(m.end(m.begin('v', createVol('raw', 256 * KiB)), 'ok')).toBe(false);
    // A certain failure changes nothing.
    expect(m.end(m.begin('v', deleteVol), 'failed')).toBe(true);
    expect([...m.reachable('v').values()]).toEqual([{ f: 'raw', c: content }]);
  });

  it('widens on an uncertain reply, and closes a raced group over every order', () => {
    const m = new PossibleStates<VolState>(volKey, 'none');
    m.end(m.begin('v', createVol('qcow2', 512 * KiB)), 'ok');
    m.end(m.begin('v', deleteVol), 'unknown');
    expect(keys(m.reachable('v'))).toEqual([volKey('none'), volKey({ f: 'qcow2', c: { cap: 512 * KiB, parts: [] } })].sort());
    // Two calls in flight at once: both replied ok, either order may have happened.
    const a = m.begin('w', createVol('raw', 256 * KiB));
    const b = m.begin('w', resizeVol(512 * KiB));
    expect(m.end(b, 'ok')).toBe(true);
    expect(m.end(a, 'ok')).toBe(true);
    expect(keys(m.reachable('w'))).toContain(volKey({ f: 'raw', c: { cap: 512 * KiB, parts: [] } }));
  });

  it('clones what the source may be, thin as qcow2, full in the source\'s format', () => {
    const src: VolState = { f: 'raw', c: content };
    expect(cloneVol([src], true)('none')).toEqual([{ f: 'qcow2', c: content }]);
    expect(cloneVol([src], false)('none')).toEqual([src]);
    expect(cloneVol([src], false)(src)).toEqual([]);
  });

  it('keeps an upload\'s bytes across a resize and refuses an upload longer than a raw volume', () => {
    const grown = resizeVol(512 * KiB)({ f: 'raw', c: content })[0];
    expect(grown).toEqual({ f: 'raw', c: { cap: 512 * KiB, parts: content.parts } });
    const bytes = contentBytes((grown as Exclude<VolState, 'none'>).c);
    expect(bytes.subarray(0, 256 * KiB).equals(contentBytes(content))).toBe(true);
    expect(bytes.subarray(256 * KiB).every((b) => b === 0)).toBe(true);
    expect(contentHash(content)).not.toBe(contentHash({ cap: content.cap, parts: [] }));
    expect(uploadVol({ cap: 512 * KiB, parts: [] })({ f: 'raw', c: content })).toEqual([]);
    expect(resizeVol(128 * KiB)({ f: 'raw', c: content })).toEqual([]);
  });
});

describe('the chaos model of secrets', () => {
  it('keeps values, refuses to make a private secret readable, and drops ephemeral ones on a restart', () => {
    const m = new PossibleStates<SecretState>(secretKey, 'none');
    m.end(m.begin('s', defineSecret(true, false)), 'ok');
    m.end(m.begin('s', setSecret('one')), 'ok');
    expect(m.end(m.begin('s', defineSecret(false, false)), 'ok')).toBe(false);
    m.end(m.begin('e', defineSecret(false, true)), 'ok');
    m.everywhere(secretdRestart);
    expect([...m.reachable('s').values()]).toEqual([{ v: 'one', p: true, e: false }]);
    expect([...m.reachable('e').values()]).toEqual(['none']);
    m.end(m.begin('s', undefineSecret), 'unknown');
    expect(keys(m.reachable('s'))).toEqual([secretKey('none'), secretKey({ v: 'one', p: true, e: false })].sort());
  });

  it('says when a read fits none of the states', () => {
    const states: SecretState[] = [{ v: 'one', p: false, e: false }];
    expect(checkRead(states, { ok: true, value: 'one' })).toBeUndefined();
    expect(checkRead(states, { ok: true, value: 'two' })).toContain('read value two');
    expect(checkRead(states, { ok: false, code: 'NO_SECRET' })).toContain('read failed NO_SECRET');
    expect(checkRead([{ v: 'one', p: true, e: false }], { ok: false, code: 'PERMISSION_DENIED' })).toBeUndefined();
    expect(checkRead(states, { ok: false, code: 'OPERATION_FAILED' })).toContain('OPERATION_FAILED');
  });
});
