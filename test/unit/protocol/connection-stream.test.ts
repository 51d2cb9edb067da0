// Stream chunks through FramedConnection: large chunks are framed straight into reused buffers
// (connection.ts); every chunk must arrive intact and in order however many are queued at once.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../protocol/clock.js';
import { FramedConnection } from '../../../protocol/connection.js';
import type { Message } from '../../../protocol/message.js';
import { BytePieces } from '../../../protocol/framing.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

/** A sender and a receiving FramedConnection over a unix socket; `got` collects what arrives. */
async function pair(bytePiecesFrom?: number): Promise<{ sender: FramedConnection; got: Message[]; arrived(n: number): Promise<void>; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'vq-conn-'));
  dirs.push(dir);
  const path = join(dir, 's');
  const got: Message[] = [];
  let wake = (): void => undefined;
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const client = connect(path);
  const clock = systemClock();
  const sender = new FramedConnection(client, { clock, onMessage: () => undefined, onClose: () => undefined });
  const receiver = new FramedConnection(await accepted, { clock, ...(bytePiecesFrom === undefined ? {} : { bytePiecesFrom }), onMessage: (m) => { got.push(m); wake(); }, onClose: () => undefined });
  return {
    sender, got,
    arrived: (n) => new Promise((resolve) => { wake = () => { if (got.length >= n) resolve(); }; wake(); }),
    close: () => { sender.close(); receiver.close(); server.close(); },
  };
}

const chunk = (i: number, size: number): Buffer => {
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j += 4096) b.fill((i * 31 + j / 4096) & 0xff, j, Math.min(size, j + 4096));
  return b;
};

describe('FramedConnection stream chunks', () => {
  it('hands large stream chunks on in pieces with bytePiecesFrom, every byte intact, and other large messages whole', async () => {
    const p = await pair(64 * 1024);
    try {
      const sizes = [3 * 1024 * 1024, 70_000, 100, 1024 * 1024 + 5];
      sizes.forEach((n, i) => p.sender.send({ prog: 'storage', proc: 'downloadVolume', type: 'stream', serial: 3, status: 'ok', body: chunk(i, n) }));
      const big = 'x'.repeat(512 * 1024);
      p.sender.send({ prog: 'storage', proc: 'listVolumes', type: 'reply', serial: 4, status: 'ok', body: { big } });
      await p.arrived(sizes.length + 1);
      sizes.forEach((n, i) => {
        const m = p.got[i] as Message;
        expect(m).toMatchObject({ prog: 'storage', proc: 'downloadVolume', type: 'stream', serial: 3, status: 'ok' });
        const bytes = m.body instanceof BytePieces ? m.body.join() : Buffer.from(m.body as Uint8Array);
        expect(Buffer.compare(bytes, chunk(i, n)), `chunk ${i}`).toBe(0);
      });
      // A 3 MiB chunk spans many socket reads: it is not joined.
      expect(p.got[0]?.body).toBeInstanceOf(BytePieces);
      expect(p.got[sizes.length]?.body).toEqual({ big });
    } finally {
      p.close();
    }
  });

  it('delivers many large chunks written at once, and more after the first are written, intact and in order', async () => {
    const p = await pair();
    try {
      const sizes = [1024 * 1024, 70_000, 1024 * 1024 + 5, 4096, 3000, 2 * 1024 * 1024, 1024 * 1024];
      const sent: Buffer[] = [];
      const send = (i: number): void => {
        const b = chunk(i, sizes[i % sizes.length] as number);
        sent.push(Buffer.from(b));
        p.sender.send({ prog: 'storage', proc: 'uploadVolume', type: 'stream', serial: 7, status: 'ok', body: b });
      };
      for (let i = 0; i < 12; i++) send(i); // one tick: all queued before a byte is written
      await p.arrived(12);
      for (let i = 12; i < 40; i++) { send(i); await p.sender.whenWritable(1024 * 1024); } // reusing written frames
      await p.arrived(40);
      expect(p.got).toHaveLength(40);
      p.got.forEach((m, i) => {
        expect(m.type).toBe('stream');
        expect(Buffer.compare(Buffer.from(m.body as Uint8Array), sent[i] as Buffer), `chunk ${i}`).toBe(0);
      });
    } finally {
      p.close();
    }
  });
});
