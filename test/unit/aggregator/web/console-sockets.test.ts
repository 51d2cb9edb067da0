import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { ByteStream, silentLogger } from '../../../../protocol/index.js';
import { ConsoleSockets, MAX_INPUT_BYTES } from '../../../../aggregator/web/console-sockets.js';
import type { HostConnection } from '../../../../aggregator/web/host-link.js';

/** A console stream whose far end (the shim) is this test: what the browser typed, and a way to print. */
function fakeConsole(): { stream: ByteStream; typed: Buffer[] } {
  const typed: Buffer[] = [];
  const stream = new ByteStream({ send: (d) => { if (d !== null) typed.push(Buffer.from(d)); }, onEnd: () => undefined });
  return { stream, typed };
}

describe('ConsoleSockets', () => {
  let server: Server | undefined;
  let consoles: ConsoleSockets | undefined;
  afterEach(() => { consoles?.close(); server?.close(); });

  async function serve(open: () => Promise<ByteStream>): Promise<string> {
    const conn = { rpc: { openStream: open } } as unknown as HostConnection;
    consoles = new ConsoleSockets(async () => conn, silentLogger());
    const c = consoles;
    server = createServer();
    server.on('upgrade', (req, socket, head) => c.upgrade(req, socket, head, 'vm1'));
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/console/vm1`;
  }

  it('keeps what the browser sends before the console is open, and forwards both ways after', async () => {
    const fake = fakeConsole();
    let release!: () => void;
    const url = await serve(() => new Promise((resolve) => { release = () => resolve(fake.stream); }));
    const ws = new WebSocket(url);
    const received: string[] = [];
    ws.on('message', (d: Buffer) => received.push(d.toString()));
    await new Promise((r) => ws.once('open', r));
    ws.send(Buffer.from('early\n'));
    await new Promise((r) => setTimeout(r, 50));
    release();
    await new Promise((r) => setTimeout(r, 50));
    ws.send(Buffer.from('later\n'));
    fake.stream.remoteData(new Uint8Array(Buffer.from('guest says hi')));
    await expect.poll(() => received.join('')).toBe('guest says hi');
    await expect.poll(() => Buffer.concat(fake.typed).toString()).toBe('early\nlater\n');
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    fake.stream.remoteEnded(undefined);
    expect(await closed).toBe(1000);
  });

  it('closes a socket that sends too much, before or after the console opens, and lives on', async () => {
    const url = await serve(() => new Promise(() => undefined));
    for (const size of [MAX_INPUT_BYTES + 1, 2 * 1024 * 1024]) {
      const ws = new WebSocket(url);
      ws.on('error', () => undefined);
      await new Promise((r) => ws.once('open', r));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.send(Buffer.alloc(size));
      expect(await closed).toBe(1009);
    }
    // Many small messages while the console is still opening add up to the same limit.
    const ws = new WebSocket(url);
    await new Promise((r) => ws.once('open', r));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    for (let i = 0; i < 20; i++) ws.send(Buffer.alloc(8 * 1024));
    expect(await closed).toBe(1009);
  });

  it('closes with 4000 + the HTTP status of the error when the console cannot open', async () => {
    const { VirtqError } = await import('../../../../protocol/index.js');
    const url = await serve(() => Promise.reject(new VirtqError('OPERATION_INVALID', 'cannot openConsole VM "vm1": it is shutoff')));
    const ws = new WebSocket(url);
    const [code, reason] = await new Promise<[number, string]>((r) => ws.once('close', (c, why: Buffer) => r([c, why.toString()])));
    expect(code).toBe(4409);
    expect(reason).toMatch(/^OPERATION_INVALID: cannot openConsole/);
  });
});
