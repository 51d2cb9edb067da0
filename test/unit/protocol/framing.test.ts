import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameDecoder, encodeBytesBodyFrame, encodeFrame } from '../../../protocol/framing.js';
import { createCodec } from '../../../protocol/codec.js';
import { VirtqError } from '../../../protocol/errors.js';
import { parseMessage } from '../../../protocol/message.js';

const codec = createCodec();
const frameOf = (value: unknown) => encodeFrame(codec.encode(value));

describe('FrameDecoder', () => {
  it('round-trips messages through encode and decode', () => {
    const msgs = [
      { prog: 'virtq', proc: 'getState', type: 'call', serial: 1, status: 'ok', body: { name: 'web1' } },
      { prog: 'virtq', proc: 'getState', type: 'reply', serial: 1, status: 'ok', body: { state: 'running', reason: 'booted', n: null, list: [1, 'a'] } },
      { prog: 'virtq', proc: 'openConsole', type: 'stream', serial: 9, status: 'ok', body: new Uint8Array([0, 1, 255]) },
    ];
    for (const m of msgs) {
      const frames = new FrameDecoder().push(frameOf(m));
      expect(frames).toHaveLength(1);
      const got = codec.decode(frames[0] as Buffer) as { body: unknown };
      // Byte strings come back as Buffers (a Uint8Array subclass).
      if (got.body instanceof Uint8Array) got.body = new Uint8Array(got.body);
      expect(got).toEqual(m);
    }
  });

  it('reassembles frames split at every byte boundary', () => {
    const bytes = Buffer.concat([frameOf({ a: 1, s: 'x'.repeat(50) }), frameOf({ b: [1, 2, 3] })]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(got.map((f) => codec.decode(f))).toEqual([{ a: 1, s: 'x'.repeat(50) }, { b: [1, 2, 3] }]);
      expect(d.partial).toBe(false);
    }
  });

  it('reassembles a stream fed one byte at a time', () => {
    const bytes = Buffer.concat([frameOf({ a: 1 }), frameOf({ b: 2 })]);
    const d = new FrameDecoder();
    const got: Buffer[] = [];
    for (const byte of bytes) got.push(...d.push(Buffer.from([byte])));
    expect(got.map((f) => codec.decode(f))).toEqual([{ a: 1 }, { b: 2 }]);
  });

  it('yields every frame when many are coalesced in one chunk', () => {
    const values = Array.from({ length: 1000 }, (_, i) => ({ i }));
    const got = new FrameDecoder().push(Buffer.concat(values.map(frameOf)));
    expect(got.map((f) => codec.decode(f))).toEqual(values);
  });

  it('refuses an oversized length from the header alone, before buffering the body', () => {
    const d = new FrameDecoder(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(0xffff_ffff, 0);
    expect(() => d.push(header)).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
    const d2 = new FrameDecoder(1024);
    expect(() => d2.push(header.subarray(0, 2))).not.toThrow();
    expect(() => d2.push(header.subarray(2))).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
  });

  it('refuses to encode a message over the limit', () => {
    expect(() => encodeFrame(new Uint8Array(2048), 1024)).toThrowError(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
  });

  it('never crashes on random bytes and only ever raises typed errors', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const d = new FrameDecoder(4096);
        for (const chunk of chunks) {
          let frames: Buffer[];
          try {
            frames = d.push(Buffer.from(chunk));
          } catch (err) {
            expect(err).toBeInstanceOf(VirtqError);
            return;
          }
          for (const f of frames) {
            try {
              parseMessage(codec.decode(f));
            } catch (err) {
              expect(err).toBeInstanceOf(VirtqError);
              expect(['MALFORMED_FRAME', 'MALFORMED_MESSAGE']).toContain((err as VirtqError).code);
            }
          }
        }
      }),
      { numRuns: 5000, seed: 42 },
    );
  });

  it('decodes length-valid frames of random CBOR-ish bytes into typed errors only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (body) => {
        const [frame] = new FrameDecoder().push(encodeFrame(body));
        try {
          parseMessage(codec.decode(frame as Buffer));
        } catch (err) {
          expect(err).toBeInstanceOf(VirtqError);
        }
      }),
      { numRuns: 5000, seed: 7 },
    );
  });
});

describe('parseMessage', () => {
  it('names what is wrong with a header and keeps a valid serial', () => {
    expect(() => parseMessage([1, 2])).toThrowError(/not a map/);
    try {
      parseMessage({ serial: 5, prog: 'virtq', proc: 'x', type: 'bogus' });
      expect.unreachable();
    } catch (err) {
      expect((err as VirtqError).code).toBe('MALFORMED_MESSAGE');
      expect((err as VirtqError).details).toEqual({ serial: 5 });
    }
  });
});

describe('encodeBytesBodyFrame', () => {
  const msg = (body: Uint8Array) => ({ prog: 'storage', proc: 'uploadVolume', type: 'stream', serial: 70000, status: 'ok', body });
  const head = (m: { body: Uint8Array }) => codec.encode({ ...m, body: new Uint8Array(0) });

  it('makes the same bytes as the CBOR encoder, at every byte-string length class', () => {
    for (const n of [0, 1, 23, 24, 255, 256, 65535, 65536, 1024 * 1024 + 3]) {
      const body = Buffer.alloc(n);
      for (let i = 0; i < n; i++) body[i] = (i * 7 + 3) & 0xff;
      const m = msg(body);
      const fast = encodeBytesBodyFrame(head(m), body);
      expect(fast, `length ${n}`).toBeDefined();
      expect(Buffer.compare(fast as Buffer, encodeFrame(codec.encode(m))), `length ${n}`).toBe(0);
    }
  });

  it('declines a message whose body is not its last field, and refuses an oversized frame', () => {
    const body = Buffer.alloc(5000, 1);
    const reordered = { body: new Uint8Array(0), prog: 'storage', proc: 'x', type: 'stream', serial: 1, status: 'ok' };
    expect(encodeBytesBodyFrame(codec.encode(reordered), body)).toBeUndefined();
    expect(() => encodeBytesBodyFrame(head(msg(body)), body, 4096)).toThrowError(VirtqError);
  });
});
