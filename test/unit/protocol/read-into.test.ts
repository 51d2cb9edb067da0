// Sockets read into the connection's own buffers (net's onread; framing.ts readBuffer/pushRead,
// connection.ts readInto/recycle): a large frame is read straight into a buffer of its own and
// handed on whole, small frames around it intact, and memory given back is read into again.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../protocol/clock.js';
import { createCodec } from '../../../protocol/codec.js';
import { FramedConnection, readInto } from '../../../protocol/connection.js';
import { BytePieces, FrameDecoder, encodeBytesBodyFrame, encodeFrame } from '../../../protocol/framing.js';
import type { Message } from '../../../protocol/message.js';

const codec = createCodec();
const MiB = 1024 * 1024;
const streamMsg = (body: Uint8Array) => ({ prog: 'storage', proc: 'downloadVolume', type: 'stream', serial: 7, status: 'ok', body });
const bigFrame = (body: Uint8Array): Buffer => encodeBytesBodyFrame(codec.encode(streamMsg(new Uint8Array(0))), body) as Buffer;
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed + (i >> 12)) & 0xff));

/** Plays `wire` into `d` as a socket with onread would: each read fills at most `size` bytes of the buffer d gives. */
function readAll(d: FrameDecoder, wire: Buffer, sizes: (i: number) => number): Array<Buffer | BytePieces> {
  const out: Array<Buffer | BytePieces> = [];
  for (let at = 0, i = 0; at < wire.length; i++) {
    const into = d.readBuffer();
    const n = Math.min(into.length, sizes(i), wire.length - at);
    wire.copy(into, 0, at, at + n);
    at += n;
    out.push(...d.pushRead(n, into));
  }
  return out;
}

describe('FrameDecoder reads into its own buffers', () => {
  it('hands large frames on whole in one buffer of their own, and small ones intact, whatever the read sizes', () => {
    const bodies = [pattern(MiB, 1), pattern(100, 2), pattern(300_000, 3), pattern(10, 4), pattern(MiB + 17, 5)];
    const frames = bodies.map((b, i) => (i % 2 === 0 ? bigFrame(b) : encodeFrame(codec.encode(streamMsg(b)))));
    const wire = Buffer.concat(frames);
    for (const sizes of [() => 1 << 30, () => 4096, (i: number) => (i * 7919) % 200_000 + 1]) {
      const d = new FrameDecoder(undefined, 64 * 1024);
      const allocated: number[] = [];
      d.allocFrame = (n) => { allocated.push(n); return Buffer.allocUnsafe(n); };
      const out = readAll(d, wire, sizes);
      expect(out).toHaveLength(frames.length);
      out.forEach((f, i) => {
        const want = (frames[i] as Buffer).subarray(4);
        if (i % 2 === 0) {
          expect(f).toBeInstanceOf(BytePieces);
          expect((f as BytePieces).pieces).toHaveLength(1);
        }
        expect((f instanceof BytePieces ? f.join() : f).equals(want)).toBe(true);
      });
      expect(allocated).toEqual([0, 2, 4].map((i) => (frames[i] as Buffer).length - 4));
      expect(d.partial).toBe(false);
    }
  });

  it('still refuses a frame over the limit before reading its body', () => {
    const d = new FrameDecoder(1024, 64);
    const into = d.readBuffer();
    into.writeUInt32BE(4096, 0);
    expect(() => d.pushRead(4, into)).toThrow(/exceeds the 1024-byte limit/);
  });
});

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('FramedConnection over a socket made with readInto', () => {
  it('delivers stream chunks intact, reads into memory given back by recycle(), and ignores memory it did not lend', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vq-readinto-'));
    dirs.push(dir);
    const path = join(dir, 's');
    const server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const clock = systemClock();
    const got: Message[] = [];
    let wake = (): void => undefined;
    let receiver: FramedConnection | undefined;
    const socket = connect({ path, ...readInto(() => receiver) });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    receiver = new FramedConnection(socket, { clock, bytePiecesFrom: 64 * 1024, onMessage: (m) => { got.push(m); wake(); }, onClose: () => undefined });
    const sender = new FramedConnection(await accepted, { clock, onMessage: () => undefined, onClose: () => undefined });
    const arrived = (n: number): Promise<void> => new Promise((resolve) => { wake = () => { if (got.length >= n) resolve(); }; wake(); });
    try {
      const bodyOf = (m: Message): Buffer => (m.body instanceof BytePieces ? m.body.join() : Buffer.from(m.body as Uint8Array));
      const memOf = (m: Message): ArrayBufferLike => ((m.body as BytePieces).pieces[0] as Buffer).buffer;
      sender.send({ ...streamMsg(pattern(MiB, 9)) } as Message);
      await arrived(1);
      expect(bodyOf(got[0] as Message).equals(pattern(MiB, 9))).toBe(true);
      const first = memOf(got[0] as Message);
      receiver.recycle(new Uint8Array(MiB)); // not lent: ignored
      receiver.recycle(((got[0] as Message).body as BytePieces).pieces[0] as Buffer);
      sender.send({ ...streamMsg(pattern(MiB, 10)) } as Message);
      sender.send({ prog: 'storage', proc: 'x', type: 'event', serial: 0, status: 'ok', body: { n: 1 } });
      await arrived(3);
      // The second frame was read into the first one's memory, given back.
      expect(memOf(got[1] as Message)).toBe(first);
      expect(bodyOf(got[1] as Message).equals(pattern(MiB, 10))).toBe(true);
      expect(got[2]?.body).toEqual({ n: 1 });
    } finally {
      sender.close();
      receiver.close();
      server.close();
    }
  });
});
