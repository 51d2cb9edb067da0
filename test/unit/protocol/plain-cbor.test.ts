// Plain CBOR (protocol/plain-cbor.ts) held against cbor-x, the codec's reference: whatever cbor-x
// encodes, the plain decoder gives the very value cbor-x decodes, or refuses (NotPlainCbor); what
// the plain encoder writes decodes, by cbor-x, to what cbor-x's own encoding decodes to; and the
// codec built on both gives, for any bytes at all, the value or the error cbor-x with the
// frame-limits walk gave before (protocol/codec.ts).
import fc from 'fast-check';
import { Encoder } from 'cbor-x';
import { inspect, isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkCborLimits, DEFAULT_CALL_LIMITS, type CborLimits } from '../../../protocol/cbor-limits.js';
import { createCodec } from '../../../protocol/codec.js';
import { VirtqError } from '../../../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame } from '../../../protocol/framing.js';
import { decodePlainCbor, encodePlainCbor, NotPlainCbor } from '../../../protocol/plain-cbor.js';

/** cbor-x as protocol/codec.ts configures it, alone. */
const reference = new Encoder({ useRecords: false, mapsAsObjects: true, structuredClone: false, tagUint8Array: false });
const viaCborX = (v: unknown): Buffer => Buffer.from(reference.encode(v));

/** What the codec gave before plain-cbor.ts: the walk, then cbor-x; a value, or the error's code and message. */
function referenceDecode(bytes: Uint8Array, limits?: CborLimits): { value: unknown } | { code: string; message: string } {
  try {
    if (limits !== undefined) checkCborLimits(bytes, limits);
    return { value: reference.decode(bytes) };
  } catch (err) {
    if (err instanceof VirtqError) return { code: err.code, message: err.message };
    return { code: 'MALFORMED_FRAME', message: `frame is not valid CBOR: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function codecDecode(codec: ReturnType<typeof createCodec>, bytes: Uint8Array): { value: unknown } | { code: string; message: string } {
  try {
    return { value: codec.decode(bytes) };
  } catch (err) {
    const e = VirtqError.from(err);
    return { code: e.code, message: e.message };
  }
}

// Values as messages hold them: maps of text keys, arrays, text, byte strings, numbers, booleans, null.
const wireValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary' }), fc.string(), fc.boolean(), fc.constant(null), fc.constant(undefined),
    fc.integer({ min: -0x1_0000_0001, max: 0x1_0000_0000 }), fc.double(), fc.maxSafeInteger(), fc.maxSafeNat(), fc.constant(-0),
    fc.uint8Array({ maxLength: 40 }).map((a) => (a.length % 2 === 0 ? a : Buffer.from(a))),
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', '__proto_', 'constructor', '0', '10', 'name')), tie('value'), { maxKeys: 6, noNullPrototype: true }),
  ),
})).value;
/** A value as a large item (over 2 KiB: decoded through one Latin-1 copy and the key cache), rows repeating it as a listing does. */
const largeWireValue = wireValue.map((v) => ({ rows: Array.from({ length: 12 }, () => ({ v, name: 'vm', state: 'running' })), pad: 'p'.repeat(2100) }));

describe('decodePlainCbor', () => {
  it('gives what cbor-x gives for any value of the wire, small or large, or refuses', () => {
    let taken = 0;
    fc.assert(fc.property(fc.oneof(wireValue, largeWireValue), (v) => {
      const bytes = viaCborX(v);
      let plain: unknown;
      try {
        plain = decodePlainCbor(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(NotPlainCbor);
        return;
      }
      taken++;
      // node's own deep equality: vitest's takes an own `constructor` key for the object's class.
      expect(isDeepStrictEqual(plain, reference.decode(bytes)), inspect(v)).toBe(true);
    }), { numRuns: 2000 });
    // Most values are plain: a decoder that refused everything would pass the property above.
    expect(taken).toBeGreaterThan(1500);
  });

  it('takes a listing of 200 rows and a dominfo reply whole', () => {
    const rows = Array.from({ length: 200 }, (_, i) => ({ name: `vm${i}`, uuid: 'c20fcdcf-c0aa-4d29-9637-c1397fc2c2b3', state: 'shutoff', reason: 'défini ✓ 𝄞', persistent: true, autostart: false, id: i - 1, memoryMiB: 32, cpuTime: 1.5e12, x: 0.1 }));
    const reply = { prog: 'virtq', proc: 'listDomains', type: 'reply', serial: 1, status: 'ok', body: { domains: rows } };
    expect(decodePlainCbor(viaCborX(reply))).toStrictEqual(reply);
  });

  it('gives a byte string as cbor-x does: a view of the item\'s own memory, a Buffer from a Buffer', () => {
    const bytes = viaCborX({ data: Buffer.from([1, 2, 3]), none: new Uint8Array(0) });
    const plain = decodePlainCbor(bytes) as { data: Buffer; none: Buffer };
    expect(Buffer.isBuffer(plain.data) && plain.data.buffer === bytes.buffer).toBe(true);
    expect([...plain.data]).toEqual([1, 2, 3]);
    expect(isDeepStrictEqual(plain, reference.decode(bytes))).toBe(true);
    const array = new Uint8Array(bytes);
    const fromArray = decodePlainCbor(array) as { data: Uint8Array };
    expect(Buffer.isBuffer(fromArray.data) || fromArray.data.buffer !== array.buffer).toBe(false);
    expect(isDeepStrictEqual(fromArray, reference.decode(array))).toBe(true);
  });

  it('refuses what cbor-x decodes its own way: tags, big integers, bad UTF-8, stray bytes, indefinite lengths', () => {
    for (const v of [new Date(0), 2n ** 64n - 1n, { a: new Int16Array(3) }, new Map([[1, 2]])]) {
      expect(() => decodePlainCbor(viaCborX(v)), String(v)).toThrow(NotPlainCbor);
    }
    // A lone surrogate as cbor-x writes it (3 bytes), and an overlong encoding.
    expect(() => decodePlainCbor(Buffer.from([0x63, 0xed, 0xa0, 0x80]))).toThrow(NotPlainCbor);
    expect(() => decodePlainCbor(Buffer.from([0x62, 0xc0, 0xaf]))).toThrow(NotPlainCbor);
    expect(() => decodePlainCbor(Buffer.from([0x01, 0x02]))).toThrow(NotPlainCbor);
    // Truncated items, indefinite lengths, float16, a map key that is not text.
    for (const b of [[0x62, 0x61], [0x82, 0x01], [0xa1, 0x61, 0x61], [0x9f, 0xff], [0xf9, 0, 0], [0x1a, 0, 0], [0x43, 1], [0xa1, 0x01, 0x02], []]) {
      expect(() => decodePlainCbor(Buffer.from(b)), JSON.stringify(b)).toThrow(NotPlainCbor);
    }
  });

  it('stops at its limits, counted as the walk counts them', () => {
    fc.assert(fc.property(wireValue, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 4 }), (v, maxItems, maxDepth) => {
      const bytes = viaCborX(v);
      const limits = { maxItems, maxDepth };
      let walkRefuses = false;
      try {
        checkCborLimits(bytes, limits);
      } catch {
        walkRefuses = true;
      }
      let plainTakes = true;
      try {
        decodePlainCbor(bytes, limits);
      } catch (err) {
        expect(err).toBeInstanceOf(NotPlainCbor);
        plainTakes = false;
      }
      // Never more than the walk allows; no less either, for the plain items the codec sends.
      if (walkRefuses) expect(plainTakes).toBe(false);
      else if (isPlainDecodable(bytes)) expect(plainTakes).toBe(true);
    }), { numRuns: 1500 });
  });

  it('refuses a frame of a million empty maps after its limit, not after allocating them', () => {
    const flood = Buffer.concat([Buffer.from([0x9a, 0x00, 0x0f, 0x42, 0x40]), Buffer.alloc(1_000_000, 0xa0)]);
    expect(() => decodePlainCbor(flood, DEFAULT_CALL_LIMITS)).toThrow(NotPlainCbor);
    expect(() => decodePlainCbor(Buffer.from([0x81, 0x81, 0x81, 0x81, 0x00]), { maxItems: 100, maxDepth: 3 })).toThrow(NotPlainCbor);
    expect(decodePlainCbor(Buffer.from([0x81, 0x81, 0x81, 0x80]), { maxItems: 100, maxDepth: 3 })).toEqual([[[[]]]]);
  });
});

describe('encodePlainCbor', () => {
  it('writes what cbor-x decodes as it decodes its own encoding, or refuses', () => {
    let taken = 0;
    fc.assert(fc.property(wireValue, (v) => {
      let bytes: Buffer;
      try {
        bytes = encodePlainCbor(v);
      } catch (err) {
        expect(err).toBeInstanceOf(NotPlainCbor);
        return;
      }
      taken++;
      const expected = reference.decode(viaCborX(v));
      expect(isDeepStrictEqual(reference.decode(bytes), expected), inspect(v)).toBe(true);
      expect(isDeepStrictEqual(decodePlainCbor(bytes), expected), inspect(v)).toBe(true);
    }), { numRuns: 2000 });
    expect(taken).toBeGreaterThan(1500);
  });

  it('encodes calls of every size the codec decodes to the same message', () => {
    const bodies = [{}, { all: true }, { active: true, persistent: true, state: 'shut-off' }, { name: 'vm000' }, { name: 'é'.repeat(40) }, { name: 'x'.repeat(300) }, { name: 'y'.repeat(70_000) }, { data: Buffer.alloc(100_000, 7) }];
    for (const body of bodies) {
      const msg = { prog: 'virtq', proc: 'listDomains', type: 'call', serial: 1, status: 'ok', body };
      expect(isDeepStrictEqual(reference.decode(encodePlainCbor(msg)), msg)).toBe(true);
    }
  });

  it('refuses what cbor-x writes its own way', () => {
    const nullProto = Object.create(null) as Record<string, unknown>;
    let deep: unknown = 0;
    for (let i = 0; i < 70; i++) deep = [deep];
    for (const v of [new Date(0), 2n, new Map(), new Int8Array(2), nullProto, { a: Symbol('s') }, '\ud800', { f: () => 1 }, deep]) {
      expect(() => encodePlainCbor(v), String(typeof v)).toThrow(NotPlainCbor);
    }
  });
});

describe('the codec over plain CBOR and cbor-x', () => {
  const limited = createCodec(DEFAULT_CALL_LIMITS);
  const tight = createCodec({ maxItems: 12, maxDepth: 2 });
  const unlimited = createCodec();

  it('decodes any bytes to the value or the error cbor-x with the walk gave', () => {
    const valid = fc.oneof(wireValue, largeWireValue).map((v) => new Uint8Array(viaCborX(v)));
    // Valid items, then the same cut short, with a byte changed or with bytes after them, and bare noise.
    const bytes = fc.oneof(
      valid,
      valid.chain((b) => fc.nat({ max: Math.max(0, b.length - 1) }).map((n) => b.subarray(0, n))),
      valid.chain((b) => fc.tuple(fc.nat({ max: Math.max(0, b.length - 1) }), fc.integer({ min: 0, max: 255 })).map(([i, x]) => { const c = b.slice(); c[i] = x; return c; })),
      valid.map((b) => Uint8Array.of(...b, 0)),
      fc.uint8Array({ maxLength: 24 }),
    );
    fc.assert(fc.property(bytes, (b) => {
      for (const [codec, limits] of [[limited, DEFAULT_CALL_LIMITS], [tight, { maxItems: 12, maxDepth: 2 }], [unlimited, undefined]] as const) {
        const got = codecDecode(codec, b);
        const want = referenceDecode(b, limits);
        expect(same(got, want), `${Buffer.from(b).toString('hex')}: ${inspect(got)} vs ${inspect(want)}`).toBe(true);
      }
    }), { numRuns: 3000 });
  });

  it('frames a value as encodeFrame frames its encoding, plain or not, and refuses one over the limit alike', () => {
    fc.assert(fc.property(fc.oneof(wireValue, fc.constant({ at: new Date(0) })), (v) => {
      const frame = unlimited.frame(v, DEFAULT_MAX_FRAME_BYTES);
      expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
      expect(isDeepStrictEqual(reference.decode(frame.subarray(4)), reference.decode(viaCborX(v)))).toBe(true);
    }), { numRuns: 500 });
    for (const v of [{ name: 'x'.repeat(100) }, { at: new Date(0), pad: 'y'.repeat(100) }]) {
      const tooLarge = (): unknown => unlimited.frame(v, 64);
      const expected = ((): string => { try { encodeFrame(unlimited.encode(v), 64); return ''; } catch (err) { return (err as Error).message; } })();
      expect(tooLarge).toThrow(VirtqError);
      expect(tooLarge).toThrow(expected);
    }
  });

  it('encodes what it cannot write plainly through cbor-x, as before', () => {
    const v = { at: new Date(0), big: 2n ** 70n };
    expect(Buffer.from(unlimited.encode(v)).equals(viaCborX(v))).toBe(true);
  });
});

/** Deep equality, where two invalid dates (tag 0 or 1 on anything) are the same too. */
function same(a: unknown, b: unknown): boolean {
  const full = { depth: null, maxArrayLength: null, maxStringLength: null };
  return isDeepStrictEqual(a, b) || inspect(a, full) === inspect(b, full);
}

function isPlainDecodable(bytes: Uint8Array): boolean {
  try {
    decodePlainCbor(bytes);
    return true;
  } catch {
    return false;
  }
}
