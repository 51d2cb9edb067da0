// protocol/node-crypto.ts replaces node:crypto on a shim's start path: its SHA-256 must give
// node:crypto's digests (they name lease files, cache files and sockets on disk), its UUIDs must be
// version 4, and temp suffixes must differ between calls.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nativeSha256Hex, randomUuid, sha256, sha256Hex, tempSuffix } from '../../../protocol/node-crypto.js';

const openssl = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

describe('protocol/node-crypto', () => {
  it('gives the FIPS 180-4 test vectors', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });

  it('matches node:crypto at every length around the block and padding edges, for strings and bytes', () => {
    for (let n = 0; n <= 200; n++) {
      const bytes = randomBytes(n);
      expect(sha256Hex(bytes)).toBe(openssl(bytes));
      expect(sha256(bytes).equals(createHash('sha256').update(bytes).digest())).toBe(true);
    }
    // Strings hash as UTF-8, as node:crypto's update(string) does.
    for (const s of ['/var/lib/virtq/images/disk.qcow2', 'vm-ü-名前', 'x'.repeat(1000), JSON.stringify({ format: 3, path: '/usr/bin/qemu-system-x86_64', size: 1, mtimeMs: 1.5, kvm: true })]) {
      expect(sha256Hex(s)).toBe(openssl(s));
    }
  });

  it('gives the same digest through OpenSSL (nativeSha256Hex: the lease probe of virtstoraged names lock files with it)', () => {
    for (const s of ['', 'abc', '/var/lib/virtq/images/disk.qcow2', 'vm-ü-名前', 'x'.repeat(1000)]) expect(nativeSha256Hex(s)).toBe(sha256Hex(s));
  });

  it('makes version 4 UUIDs that differ', () => {
    const a = randomUuid();
    const b = randomUuid();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
  });

  it('makes temp suffixes that differ and are safe in a file name', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => tempSuffix()));
    expect(seen.size).toBe(1000);
    for (const s of seen) expect(s).toMatch(/^[0-9a-z]+$/);
  });
});
