// Large stream frames whose byte body is read straight into memory a payload sink gives (an
// upload's staging buffers; framing.ts claimPayload, connection.ts setPayloadSink): the body lands
// at the stream offset it belongs to, other frames stay intact, and a declined claim reads as before.
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../protocol/clock.js';
import { createCodec } from '../../../protocol/codec.js';
import { FramedConnection } from '../../../protocol/connection.js';
import type { Message } from '../../../protocol/message.js';
import { BytePieces, FrameDecoder, bytesBodyAt, encodeBytesBodyFrame, encodeFrame } from '../../../protocol/framing.js';

const codec = createCodec();
const MiB = 1024 * 1024;
const streamMsg = (body: Uint8Array, serial = 7) => ({ prog: 'storage', proc: 'uploadVolume', type: 'stream', serial, status: 'ok', body });
const bigFrame = (body: Uint8Array, serial = 7): Buffer => encodeBytesBodyFrame(codec.encode(streamMsg(new Uint8Array(0), serial)), body) as Buffer;
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed + (i >> 12)) & 0xff));

describe('FrameDecoder with a payload sink', () => {
  it('reads claimed bodies into the sink at their stream offset, never ahead of frames not yet delivered, whatever the read sizes', () => {
    // Stream 7's chunks, small ones among them (some in the same read as a large one's head),
    // a large frame of another stream, and a call, on one connection.
    const items: Array<{ frame: Buffer; body: Buffer; serial: number }> = [];
    const add = (body: Buffer, serial = 7, big = body.length >= 64 * 1024): void => { items.push({ frame: big ? bigFrame(body, serial) : encodeFrame(codec.encode(streamMsg(body, serial))), body, serial }); };
    add(pattern(MiB, 1)); add(pattern(100, 2)); add(pattern(300_000, 3)); add(pattern(10, 4)); add(pattern(MiB + 17, 5));
    add(pattern(200_000, 6), 9); add(pattern(MiB, 7)); add(pattern(5000, 8)); add(pattern(MiB, 9));
    const wire = Buffer.concat([...items.map((i) => i.frame), encodeFrame(codec.encode({ prog: 'storage', proc: 'listPools', type: 'call', serial: 3, status: 'ok', body: {} }))]);
    const total = items.filter((i) => i.serial === 7).reduce((n, i) => n + i.body.length, 0);
    for (const sizes of [() => 1 << 30, () => 4096, (i: number) => (i * 7919) % 200_000 + 1, (i: number) => (i % 3 === 0 ? 300 : 70_000)]) {
      const sink = Buffer.alloc(total);
      let delivered = 0; // stream 7's bytes delivered so far: the offset its next chunk starts at
      let claims = 0;
      const d = new FrameDecoder(undefined, 64 * 1024);
      d.claimPayload = (head, frameLength) => {
        const at = bytesBodyAt(head, frameLength);
        const m = codec.decode(Buffer.concat([head.subarray(0, at?.at ?? 0), Buffer.from([0x40])])) as { serial: number };
        if (at === undefined || m.serial !== 7 || ++claims % 4 === 0) return undefined; // every fourth declined
        return { data: at.data, payload: sink.subarray(delivered, delivered + frameLength - at.data) };
      };
      const out: Array<Buffer | BytePieces> = [];
      for (let at = 0, i = 0; at < wire.length; i++) {
        const into = d.readBuffer();
        const n = Math.min(into.length, sizes(i), wire.length - at);
        wire.copy(into, 0, at, at + n);
        at += n;
        for (const f of d.pushRead(n, into)) {
          out.push(f);
          const msg = f instanceof BytePieces ? codec.decode(f.join()) as { serial: number; body: Uint8Array } : codec.decode(f) as { serial: number; body: Uint8Array };
          if (msg.serial === 7) delivered += msg.body.length;
        }
      }
      expect(out).toHaveLength(items.length + 1);
      let placed = 0;
      items.forEach((item, k) => {
        const f = out[k] as Buffer | BytePieces;
        expect((f instanceof BytePieces ? f.join() : f).equals(item.frame.subarray(4))).toBe(true);
        if (f instanceof BytePieces && f.pieces.length === 2 && (f.pieces[1] as Buffer).buffer === sink.buffer) placed++;
      });
      // Every byte of stream 7 that went to the sink is where its stream offset says.
      const inSink = items.filter((i) => i.serial === 7).map((i) => i.body);
      let off = 0;
      for (const [k, item] of items.entries()) {
        if (item.serial !== 7) continue;
        const f = out[k] as Buffer | BytePieces;
        if (f instanceof BytePieces && f.pieces.length === 2) expect(sink.subarray(off, off + item.body.length).equals(item.body)).toBe(true);
        off += item.body.length;
      }
      expect(inSink.length).toBeGreaterThan(0);
      expect(placed).toBeGreaterThan(0);
      expect(d.partial).toBe(false);
    }
  });
});

describe('FramedConnection.streamChunkBuffer', () => {
  it('sends a chunk read into the frame it gave as that frame, byte for byte the copied one, and copies anything else', async () => {
    const written: Buffer[] = [];
    const raw: Buffer[] = [];
    const wire = new Duplex({ read() { /* nothing comes in */ }, write(chunk: Buffer, _enc, cb) { raw.push(chunk); written.push(Buffer.from(chunk)); cb(); } });
    const conn = new FramedConnection(wire, { clock: systemClock(), onMessage: () => undefined, onClose: () => undefined });
    const msg = (body: Uint8Array, serial = 7): Message => streamMsg(body, serial) as Message;
    const a = pattern(MiB, 1);
    const given = conn.streamChunkBuffer('storage', 'uploadVolume', 7, MiB) as Uint8Array;
    given.set(a);
    conn.send(msg(given));
    // A part of a given view, a view sent for another stream, and a small size: copied, still right.
    const part = conn.streamChunkBuffer('storage', 'uploadVolume', 7, MiB) as Uint8Array;
    part.set(pattern(MiB, 2));
    conn.send(msg(part.subarray(0, 300_000)));
    const other = conn.streamChunkBuffer('storage', 'uploadVolume', 7, MiB) as Uint8Array;
    other.set(pattern(MiB, 3));
    conn.send(msg(other, 9));
    expect(conn.streamChunkBuffer('storage', 'uploadVolume', 7, 1000)).toBeUndefined();
    await new Promise((resolve) => setImmediate(resolve));
    const sent = Buffer.concat(written);
    const want = Buffer.concat([bigFrame(a), bigFrame(pattern(MiB, 2).subarray(0, 300_000)), bigFrame(pattern(MiB, 3), 9)]);
    expect(sent.equals(want)).toBe(true);
    // The first frame went out as the very memory handed out (no copy).
    expect(raw[0]?.buffer).toBe(given.buffer);
    expect(raw[2]?.buffer).not.toBe(other.buffer);
    conn.close();
  });
});
