// Large stream frames left in the pieces they arrived in (framing.ts BytePieces, connection.ts
// bytePiecesFrom): a client receiving a volume copies none of its bytes, and anything that is not
// a stream message of the expected shape is still decoded whole.
import { describe, expect, it } from 'vitest';
import { BytePieces, FrameDecoder, bytesBodyAt, encodeBytesBodyFrame, encodeFrame } from '../../../protocol/framing.js';
import { createCodec } from '../../../protocol/codec.js';

const codec = createCodec();
const MiB = 1024 * 1024;
const streamMsg = (body: Uint8Array) => ({ prog: 'storage', proc: 'downloadVolume', type: 'stream', serial: 7, status: 'ok', body });
const fastFrame = (body: Uint8Array): Buffer => encodeBytesBodyFrame(codec.encode(streamMsg(new Uint8Array(0))), body) as Buffer;
const split = (b: Buffer, size: number): Buffer[] => Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size));
const pattern = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + (i >> 12)) & 0xff));

describe('FrameDecoder pieces', () => {
  it('hands a large frame that arrives in several chunks on as those chunks, uncopied', () => {
    const body = pattern(MiB);
    const frame = fastFrame(body);
    const d = new FrameDecoder(undefined, 64 * 1024);
    const reads = split(frame, 65_536);
    const out = reads.flatMap((r) => d.pushPieces(r));
    expect(out).toHaveLength(1);
    const f = out[0] as BytePieces;
    expect(f).toBeInstanceOf(BytePieces);
    expect(f.length).toBe(frame.length - 4);
    expect(f.pieces.every((p) => reads.some((r) => r.buffer === p.buffer))).toBe(true);
    expect(f.join().equals(frame.subarray(4))).toBe(true);
    expect(d.partial).toBe(false);
  });

  it('joins small frames and frames that arrive whole, and push() always joins', () => {
    const small = encodeFrame(codec.encode(streamMsg(pattern(1000))));
    const big = fastFrame(pattern(200_000));
    const d = new FrameDecoder(undefined, 64 * 1024);
    expect(split(small, 100).flatMap((r) => d.pushPieces(r)).every((f) => Buffer.isBuffer(f))).toBe(true);
    expect(d.pushPieces(big).every((f) => Buffer.isBuffer(f))).toBe(true);
    const joining = new FrameDecoder(undefined, 64 * 1024);
    const joined = split(big, 4096).flatMap((r) => joining.push(r));
    expect(joined).toHaveLength(1);
    expect((joined[0] as Buffer).equals(big.subarray(4))).toBe(true);
  });
});

describe('bytesBodyAt', () => {
  it('finds the byte body of a frame built by encodeBytesBodyFrame, whatever its length', () => {
    for (const n of [0, 5, 23, 24, 255, 256, 65_535, 65_536, MiB]) {
      const payload = fastFrame(pattern(n)).subarray(4);
      const at = bytesBodyAt(payload.subarray(0, 256), payload.length);
      expect(at, `length ${n}`).toBeDefined();
      expect(payload.subarray((at as { data: number }).data).equals(pattern(n))).toBe(true);
      // The head alone, with an empty byte string for the body, decodes to the message.
      const head = Buffer.concat([payload.subarray(0, (at as { at: number }).at), Buffer.from([0x40])]);
      expect(codec.decode(head)).toMatchObject({ prog: 'storage', type: 'stream', serial: 7, status: 'ok' });
    }
  });

  it('gives up on every other shape', () => {
    const enc = (v: unknown): Buffer => Buffer.from(codec.encode(v));
    const cases: Array<[string, Buffer]> = [
      ['body not last', enc({ body: pattern(100), prog: 'p' })],
      ['body text', enc({ prog: 'p', body: 'x'.repeat(100) })],
      ['a nested value first', enc({ prog: { a: 1 }, body: pattern(100) })],
      ['not a map', enc([1, pattern(100)])],
      ['last key not body', enc({ prog: 'p', bodx: pattern(100) })],
    ];
    for (const [why, payload] of cases) expect(bytesBodyAt(payload, payload.length), why).toBeUndefined();
    // A byte body that does not run to the end of the frame (trailing bytes), and a head cut short.
    const payload = fastFrame(pattern(100)).subarray(4);
    expect(bytesBodyAt(payload, payload.length + 1)).toBeUndefined();
    expect(bytesBodyAt(payload.subarray(0, 10), payload.length)).toBeUndefined();
  });
});
