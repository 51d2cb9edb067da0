// The pre-decode CBOR walk that bounds what an incoming frame can cost a server: it agrees with
// the CBOR library on every well-formed item within the limits, refuses items over them without
// decoding, and meets hostile bytes with typed errors only.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkCborLimits, DEFAULT_CALL_LIMITS } from '../../protocol/cbor-limits.js';
import { createCodec } from '../../protocol/codec.js';
import { VirtqError } from '../../protocol/errors.js';

const SEED = 0x5ec0de;
const plain = createCodec();
const limited = createCodec(DEFAULT_CALL_LIMITS);
const arrayHeader = (n: number): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = 0x9a;
  b.writeUInt32BE(n, 1);
  return b;
};

describe('checkCborLimits', () => {
  it('accepts every item the CBOR library encodes, and the limited codec decodes it the same', () => {
    fc.assert(fc.property(fc.anything({ maxDepth: 6, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true, withMap: true, withSet: true }), (value) => {
      const bytes = plain.encode(value);
      expect(() => checkCborLimits(bytes, { maxItems: 1_000_000, maxDepth: 64 })).not.toThrow();
      expect(limited.decode(bytes)).toEqual(plain.decode(bytes));
    }), { seed: SEED, numRuns: 500 });
  });

  it('counts items exactly: n items pass a limit of n and fail a limit of n - 1', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null)), { maxLength: 40 }), (values) => {
      const bytes = plain.encode(values);
      const n = values.length + 1;
      expect(() => checkCborLimits(bytes, { maxItems: n, maxDepth: 4 })).not.toThrow();
      expect(() => checkCborLimits(bytes, { maxItems: n - 1, maxDepth: 4 })).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
    }), { seed: SEED, numRuns: 200 });
  });

  it('meets random and truncated bytes with typed errors only, never decoding past the limits', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      try {
        limited.decode(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(VirtqError);
        expect(['MALFORMED_FRAME', 'FRAME_TOO_LARGE']).toContain((err as VirtqError).code);
      }
    }), { seed: SEED, numRuns: 2000 });
  });

  it('refuses 16 MiB of one-byte items before decoding any (the frame that killed a shim)', () => {
    for (const item of [0x00, 0xa0, 0x80, 0x60, 0xf6]) {
      const bytes = Buffer.concat([arrayHeader(16 * 1024 * 1024 - 8), Buffer.alloc(16 * 1024 * 1024 - 8, item)]);
      const t0 = performance.now();
      expect(() => limited.decode(bytes)).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE', message: expect.stringContaining('65536 CBOR items') }));
      expect(performance.now() - t0).toBeLessThan(200);
    }
  });

  it('refuses declared lengths larger than the data without allocating for them', () => {
    const huge = [
      Buffer.from([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // array of 2^64 - 1
      Buffer.from([0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // map of 2^63 - 1 pairs
      Buffer.from([0x5b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]), // 4 GiB byte string
      Buffer.from([0x7a, 0xff, 0xff, 0xff, 0xff, 0x61]), // 4 GiB text string
      arrayHeader(0xffff_ffff),
    ];
    for (const bytes of huge) {
      expect(() => limited.decode(bytes)).toThrowError(expect.objectContaining({ code: expect.stringMatching(/^(MALFORMED_FRAME|FRAME_TOO_LARGE)$/) }));
    }
  });

  it('refuses nesting past the depth limit, definite or indefinite, without recursing', () => {
    // Arrays nest through their element, maps through the value of key 0.
    const nest = (prefix: number[], depth: number): Buffer => Buffer.from([...Array.from({ length: depth }, () => prefix).flat(), 0x00]);
    for (const prefix of [[0x81], [0x9f], [0xa1, 0x00], [0xbf, 0x00]]) {
      expect(() => limited.decode(nest(prefix, 200_000))).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE', message: expect.stringContaining('deeper than 64') }));
    }
    const ok = Buffer.concat([Buffer.alloc(63, 0x81), Buffer.from([0x00])]);
    expect(limited.decode(ok)).toBeDefined();
    expect(() => limited.decode(Buffer.concat([Buffer.alloc(65, 0x81), Buffer.from([0x00])]))).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
  });

  it('leaves a client codec without limits: replies a client asked for may be large', () => {
    const big = Array.from({ length: 100_000 }, (_, i) => i);
    expect(plain.decode(plain.encode(big))).toEqual(big);
    expect(() => limited.decode(plain.encode(big))).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
  });
});
