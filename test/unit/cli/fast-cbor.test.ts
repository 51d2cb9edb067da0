// The fast path's CBOR (cli/fast-cbor.ts) held against protocol/codec.ts (cbor-x): whatever the
// codec encodes, the fast decoder gives the very value the codec decodes, or refuses (and the full
// CLI then runs the command); and the codec decodes the calls it encodes to the same message
// (cbor-x writes map heads in 3 bytes, so the bytes differ: CBOR allows both).
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createCodec } from '../../../protocol/codec.js';
import { decodeFastCbor, encodeFastCbor, FastCborUnsupported, type FastCborValue } from '../../../cli/fast-cbor.js';

const codec = createCodec();
const viaCodec = (v: unknown): Buffer => Buffer.from(codec.encode(v));

// Values as virtqemud's replies hold them: maps of text keys, arrays, text, numbers, booleans, null.
const wireValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary' }), fc.string(), fc.boolean(), fc.constant(null), fc.constant(undefined),
    fc.integer({ min: -0x1_0000_0000, max: 0xffff_ffff }), fc.double({ noNaN: true }), fc.maxSafeInteger(), fc.maxSafeNat(),
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', '0', '10', 'name')), tie('value'), { maxKeys: 6 }),
  ),
})).value;

describe('decodeFastCbor', () => {
  it('gives what the codec gives for any value of the wire', () => {
    fc.assert(fc.property(wireValue, (v) => {
      const bytes = viaCodec(v);
      let fast: unknown;
      try {
        fast = decodeFastCbor(bytes);
      } catch (err) {
        // Refusing is allowed only as FastCborUnsupported (the full CLI then decodes it).
        expect(err).toBeInstanceOf(FastCborUnsupported);
        return;
      }
      // node's own deep equality: vitest's takes an own `constructor` key for the object's class.
      expect(isDeepStrictEqual(fast, codec.decode(bytes)), JSON.stringify(v)).toBe(true);
    }), { numRuns: 2000 });
  });

  it('takes a listing of 200 rows and a dominfo reply whole', () => {
    const rows = Array.from({ length: 200 }, (_, i) => ({ name: `vm${i}`, uuid: 'c20fcdcf-c0aa-4d29-9637-c1397fc2c2b3', state: 'shutoff', reason: 'défini ✓ 𝄞', persistent: true, autostart: false, id: i - 1, memoryMiB: 32, cpuTime: 1.5e12, x: 0.1 }));
    const reply = { prog: 'virtq', proc: 'listDomains', type: 'reply', serial: 1, status: 'ok', body: { domains: rows } };
    expect(decodeFastCbor(viaCodec(reply))).toStrictEqual(reply);
  });

  it('refuses what cbor-x decodes its own way: byte strings, tags, big integers, bad UTF-8, stray bytes', () => {
    for (const v of [Buffer.from([1, 2]), new Date(0), 2n ** 64n - 1n, { a: new Uint8Array(3) }, new Map([[1, 2]])]) {
      expect(() => decodeFastCbor(viaCodec(v)), String(v)).toThrow(FastCborUnsupported);
    }
    // A lone surrogate as cbor-x writes it (3 bytes), and an overlong encoding.
    expect(() => decodeFastCbor(Buffer.from([0x63, 0xed, 0xa0, 0x80]))).toThrow(FastCborUnsupported);
    expect(() => decodeFastCbor(Buffer.from([0x62, 0xc0, 0xaf]))).toThrow(FastCborUnsupported);
    expect(() => decodeFastCbor(Buffer.from([0x01, 0x02]))).toThrow(FastCborUnsupported);
    // Truncated items, indefinite lengths, float16.
    for (const b of [[0x62, 0x61], [0x82, 0x01], [0xa1, 0x61, 0x61], [0x9f, 0xff], [0xf9, 0, 0], [0x1a, 0, 0], []]) {
      expect(() => decodeFastCbor(Buffer.from(b)), JSON.stringify(b)).toThrow(FastCborUnsupported);
    }
  });
});

describe('encodeFastCbor', () => {
  it('encodes a call the codec decodes to the same message', () => {
    const bodies: Array<Record<string, FastCborValue>> = [{}, { all: true }, { active: true, persistent: true, state: 'shut-off' }, { name: 'vm000' }, { name: 'é'.repeat(40) }, { name: 'x'.repeat(300) }, { name: 'y'.repeat(70_000) }];
    for (const body of bodies) {
      const msg = { prog: 'virtq', proc: 'listDomains', type: 'call', serial: 1, status: 'ok', body };
      expect(codec.decode(encodeFastCbor(msg))).toStrictEqual(msg);
    }
    const key = fc.string().filter((k) => k !== '__proto__' && k !== 'constructor');
    fc.assert(fc.property(fc.dictionary(key, fc.oneof(fc.string(), fc.boolean(), fc.nat()), { noNullPrototype: true }), (body) => {
      expect(codec.decode(encodeFastCbor(body))).toStrictEqual(body);
    }));
  });
});
