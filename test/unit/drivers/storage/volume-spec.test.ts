// What create() accepts: each bad field is INVALID_ARG naming the field, before any file is made.
import { describe, expect, it } from 'vitest';
import type { CreateVolumeSpec } from '../../../../drivers/storage/types.js';
import { checkCreateSpec } from '../../../../drivers/storage/volume-ops.js';

const ok: CreateVolumeSpec = { name: 'v.qcow2', format: 'qcow2', capacityBytes: 1024 };

/** The field checkCreateSpec blames, or undefined when it accepts. */
function blamed(spec: unknown): unknown {
  try {
    checkCreateSpec(spec as CreateVolumeSpec);
    return undefined;
  } catch (err) {
    expect(err).toMatchObject({ code: 'INVALID_ARG' });
    return (err as { details?: { field?: unknown } }).details?.field;
  }
}

describe('checkCreateSpec', () => {
  it('accepts raw and qcow2, with a backing image or encryption on qcow2', () => {
    expect(blamed(ok)).toBeUndefined();
    expect(blamed({ ...ok, format: 'raw', capacityBytes: 0 })).toBeUndefined();
    expect(blamed({ ...ok, backing: { path: '/p/base', format: 'raw' } })).toBeUndefined();
    expect(blamed({ ...ok, encryption: { passphrase: new Uint8Array([1]), iterTimeMs: 10 } })).toBeUndefined();
  });

  it('blames the field at fault', () => {
    expect(blamed({ ...ok, name: 'a/b' })).toBe('name');
    expect(blamed({ ...ok, format: 'vmdk' })).toBe('format');
    expect(blamed({ ...ok, capacityBytes: -1 })).toBe('capacityBytes');
    expect(blamed({ ...ok, capacityBytes: 1.5 })).toBe('capacityBytes');
    expect(blamed({ ...ok, capacityBytes: 2 ** 60 })).toBe('capacityBytes');
    expect(blamed({ ...ok, format: 'raw', backing: { path: '/p/base', format: 'raw' } })).toBe('backing');
    expect(blamed({ ...ok, backing: { path: 'base', format: 'raw' } })).toBe('backing.path');
    expect(blamed({ ...ok, backing: { path: '/p/base', format: 'raw,file.x=y' } })).toBe('backing.format');
    expect(blamed({ ...ok, format: 'raw', encryption: { passphrase: new Uint8Array([1]) } })).toBe('encryption');
    expect(blamed({ ...ok, encryption: { passphrase: new Uint8Array(0) } })).toBe('encryption.passphrase');
    expect(blamed({ ...ok, encryption: { passphrase: 'text' } })).toBe('encryption.passphrase');
    expect(blamed({ ...ok, encryption: { passphrase: new Uint8Array([1]), iterTimeMs: 0 } })).toBe('encryption.iterTimeMs');
  });
});
