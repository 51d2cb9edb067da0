import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { spawnSync } from 'node:child_process';
import { writeFileSync, statSync, existsSync, watch } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { defineProgram, proc } from '../../../protocol/catalogue.js';
import { RpcClient } from '../../../protocol/client.js';
import { systemClock } from '../../../protocol/clock.js';
import { VirtqError } from '../../../protocol/errors.js';
import { silentLogger } from '../../../protocol/logger.js';
import { RpcServer } from '../../../protocol/server.js';
import { typedClient } from '../../../protocol/typed-client.js';
import { encodeFrame } from '../../../protocol/framing.js';
import { createCodec } from '../../../protocol/codec.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const both = ['shim', 'aggregator'] as const;
const testProgram = defineProgram('test', 'test program', {
  echo: proc({ args: Type.Object({ n: Type.Integer() }, { additionalProperties: false }), ret: Type.Object({ n: Type.Integer() }), servers: both, readonly: true, since: '0.1', description: 'echo' }),
  set: proc({ args: Type.Object({ v: Type.String() }), ret: Type.Object({}), servers: both, readonly: false, since: '0.1', description: 'write' }),
  hold: proc({ args: Type.Object({}), ret: Type.Object({}), servers: both, readonly: true, since: '0.1', description: 'waits until released' }),
  subscribe: proc({ args: Type.Object({}), ret: Type.Object({}), servers: both, readonly: true, since: '0.1', description: 'events' }),
  shimOnly: proc({ args: Type.Object({}), ret: Type.Object({}), servers: ['shim'], readonly: true, since: '0.1', description: 'shim only' }),
}, {});

const clock = systemClock();

describe('RpcServer', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let clients: RpcClient[];
  let release: Array<() => void>;
  const rw = () => root.path('rw.sock');
  const ro = () => root.path('ro.sock');

  const open = async (path = rw()) => {
    const c = await RpcClient.connect(path, { clock, defaultTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    root = tmpRoot();
    clients = [];
    release = [];
    server = new RpcServer({ daemon: 'test', version: '0.1', role: 'aggregator', clock, log: silentLogger(), partialFrameTimeoutMs: 200 });
    server.register({
      program: testProgram,
      handlers: {
        echo: ({ n }) => ({ n }),
        set: () => ({}),
        hold: () => new Promise((resolve) => release.push(() => resolve({}))),
        subscribe: (_a, ctx) => { ctx.client.subscriptions.add('all'); return {}; },
      },
    });
    await server.listen(rw(), 'rw', 0o600);
    await server.listen(ro(), 'ro', 0o666);
    await server.listen(root.path('admin.sock'), 'admin', 0o600);
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    await server.close();
    root.remove();
  });

  it('releases its sockets in the reverse order it bound them: the first one, its claim on the name, last', async () => {
    const gone: string[] = [];
    const watcher = watch(root.path('.'), (event, file) => {
      if (event === 'rename' && typeof file === 'string' && file.endsWith('.sock') && !existsSync(root.path(file))) gone.push(file);
    });
    try {
      await server.close();
      const deadline = Date.now() + 2000;
      while (gone.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      watcher.close();
    }
    expect(gone).toEqual(['admin.sock', 'ro.sock', 'rw.sock']);
  });

  it('creates each socket with its mode', () => {
    expect(statSync(rw()).mode & 0o777).toBe(0o600);
    expect(statSync(ro()).mode & 0o777).toBe(0o666);
  });

  it('answers an unknown procedure with an error and keeps the connection usable', async () => {
    const c = await open();
    await expect(c.call('test', 'nope', {})).rejects.toMatchObject({ code: 'UNKNOWN_PROCEDURE' });
    await expect(c.call('nope', 'echo', {})).rejects.toMatchObject({ code: 'UNKNOWN_PROGRAM' });
    await expect(c.call('test', 'echo', { n: 3 })).resolves.toEqual({ n: 3 });
  });

  it('answers invalid arguments with INVALID_ARG naming the field and stays usable', async () => {
    const c = await open();
    await expect(c.call('test', 'echo', { n: 'x' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('/n') });
    await expect(c.call('test', 'echo', { n: 1, extra: true })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('/extra') });
    await expect(c.call('test', 'echo', { n: 4 })).resolves.toEqual({ n: 4 });
  });

  it('refuses a procedure this role does not serve with NOT_SUPPORTED', async () => {
    const c = await open();
    await expect(c.call('test', 'shimOnly', {})).rejects.toMatchObject({ code: 'NOT_SUPPORTED' });
  });

  it('refuses writes on the read-only socket with PERMISSION_DENIED but serves reads', async () => {
    const c = await open(ro());
    await expect(c.call('test', 'set', { v: 'x' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(c.call('test', 'echo', { n: 5 })).resolves.toEqual({ n: 5 });
  });

  it('serves admin procedures only on the admin socket', async () => {
    const c = await open();
    await expect(c.call('admin', 'serverInfo', {})).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    const a = await open(root.path('admin.sock'));
    await expect(a.call('admin', 'serverInfo', {})).resolves.toMatchObject({ daemon: 'test', clients: 2 });
    await expect(a.call('test', 'echo', { n: 1 })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('closes only the connection that sent a malformed frame', async () => {
    const good = await open();
    const bad = connect(rw());
    await new Promise((r) => bad.once('connect', r));
    const closed = new Promise((r) => bad.once('close', r));
    bad.resume();
    const garbage = Buffer.from([0, 0, 0, 2, 0xff, 0xff]);
    bad.write(garbage);
    await closed;
    await expect(good.call('test', 'echo', { n: 7 })).resolves.toEqual({ n: 7 });
  });

  it('replies MALFORMED_MESSAGE to a decodable non-message and keeps the connection', async () => {
    const s = connect(rw());
    await new Promise((r) => s.once('connect', r));
    const codec = createCodec();
    const reply = new Promise<unknown>((resolve) => s.once('data', (d: Buffer) => resolve(codec.decode(d.subarray(4)))));
    s.write(encodeFrame(codec.encode({ serial: 3, prog: 1 })));
    await expect(reply).resolves.toMatchObject({ serial: 3, status: 'error', body: { code: 'MALFORMED_MESSAGE' } });
    expect(s.destroyed).toBe(false);
    s.destroy();
  });

  it('drops a subscriber that leaves pushed events unread with CLIENT_TOO_SLOW, and serves others', async () => {
    const good = await open();
    const lazy = connect(rw());
    await new Promise((r) => lazy.once('connect', r));
    const codec = createCodec();
    const subscribed = new Promise((r) => lazy.once('data', r));
    lazy.write(encodeFrame(codec.encode({ prog: 'test', proc: 'subscribe', type: 'call', serial: 1, status: 'ok', body: {} })));
    await subscribed;
    lazy.pause();
    const before = server.clients().length;
    const big = 'x'.repeat(64 * 1024);
    // 16 MiB pushed in ticks of 1 MiB: twice the bound, so the lazy client must be dropped.
    for (let i = 0; i < 256 && server.clients().length === before; i++) {
      server.publish('test', 'tick', { i, big }, (c) => c.subscriptions.has('all'));
      if (i % 16 === 15) await new Promise((r) => setImmediate(r));
    }
    expect(server.clients().length).toBe(before - 1);
    await expect(good.call('test', 'echo', { n: 4 })).resolves.toEqual({ n: 4 });
    // What it finally reads ends with the reason it was dropped.
    const chunks: Buffer[] = [];
    lazy.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => { lazy.once('close', r); lazy.resume(); });
    let buf = Buffer.concat(chunks);
    let last: unknown;
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      last = codec.decode(buf.subarray(4, 4 + len));
      buf = buf.subarray(4 + len);
    }
    expect(last).toMatchObject({ serial: 0, status: 'error', body: { code: 'CLIENT_TOO_SLOW' } });
  });

  it('refuses frames over 1 MiB on the read-only socket, and takes them on the read-write one', async () => {
    const big = { v: 'x'.repeat(1536 * 1024) };
    await expect((await open()).call('test', 'set', big)).resolves.toEqual({});
    await expect((await open(ro())).call('test', 'set', big)).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' });
    await expect((await open(ro())).call('test', 'echo', { n: 5 })).resolves.toEqual({ n: 5 });
  });

  it('bounds what unfinished frames of one socket hold together, and gives it back when they go', async () => {
    const small = new RpcServer({ daemon: 'budget', version: '0.1', role: 'aggregator', clock, log: silentLogger(), partialFrameBudgetBytes: 4 * 1024 * 1024 });
    small.register({ program: testProgram, handlers: { echo: ({ n }) => ({ n }), set: () => ({}), hold: () => ({}), subscribe: () => ({}) } });
    const path = root.path('budget.sock');
    await small.listen(path, 'rw', 0o600);
    try {
      // Each parks 1.5 MiB of a 2 MiB frame: two fit in 4 MiB, the third is dropped.
      const park = async () => {
        const s = connect(path);
        await new Promise((r) => s.once('connect', r));
        const header = Buffer.alloc(4);
        header.writeUInt32BE(2 * 1024 * 1024);
        const closed = new Promise<Buffer>((resolve) => { const got: Buffer[] = []; s.on('data', (d: Buffer) => got.push(d)); s.once('close', () => resolve(Buffer.concat(got))); });
        await new Promise((r) => s.write(Buffer.concat([header, Buffer.alloc(1536 * 1024, 0x41)]), r));
        return { s, closed };
      };
      const a = await park();
      const b = await park();
      await new Promise((r) => setTimeout(r, 50));
      const c = await park();
      const reply = await c.closed;
      expect(createCodec().decode(reply.subarray(4))).toMatchObject({ status: 'error', body: { code: 'FRAME_TOO_LARGE', message: expect.stringContaining('unfinished frames') } });
      expect(a.s.destroyed || b.s.destroyed).toBe(false);
      const ok = await RpcClient.connect(path, { clock });
      clients.push(ok);
      await expect(ok.call('test', 'echo', { n: 6 })).resolves.toEqual({ n: 6 });
      // Once one parked frame goes, another fits.
      a.s.destroy();
      await a.closed;
      const d = await park();
      await new Promise((r) => setTimeout(r, 50));
      expect(d.s.destroyed).toBe(false);
      b.s.destroy();
      d.s.destroy();
    } finally {
      await small.close();
    }
  });

  it('drops a connection whose partial frame never completes, and serves others', async () => {
    const good = await open();
    const slow = connect(rw());
    await new Promise((r) => slow.once('connect', r));
    const closed = new Promise((r) => slow.once('close', r));
    slow.resume();
    slow.write(Buffer.from([0, 0, 0, 100, 1, 2]));
    await closed;
    await expect(good.call('test', 'echo', { n: 8 })).resolves.toEqual({ n: 8 });
  });

  it('matches 500 concurrent clients each pipelining calls by serial', async () => {
    const cs = await Promise.all(Array.from({ length: 500 }, () => open()));
    const results = await Promise.all(cs.map((c, i) => Promise.all(Array.from({ length: 10 }, (_, j) => c.call('test', 'echo', { n: i * 100 + j })))));
    results.forEach((r, i) => expect(r).toEqual(Array.from({ length: 10 }, (_, j) => ({ n: i * 100 + j }))));
  });

  it('answers calls over the in-flight cap with TOO_MANY_CALLS', async () => {
    server.limits.maxInflightPerClient = 2;
    const c = await open();
    const held = [c.call('test', 'hold', {}), c.call('test', 'hold', {})];
    await expect(c.call('test', 'echo', { n: 1 })).rejects.toMatchObject({ code: 'TOO_MANY_CALLS' });
    while (release.length < 2) await new Promise((r) => setImmediate(r));
    for (const r of release) r();
    await Promise.all(held);
    await expect(c.call('test', 'echo', { n: 2 })).resolves.toEqual({ n: 2 });
  });

  it('refuses clients over the cap with TOO_MANY_CLIENTS', async () => {
    server.limits.maxClients = 2;
    await open();
    await open();
    const third = await open();
    await expect(third.call('test', 'echo', { n: 1 })).rejects.toMatchObject({ code: 'TOO_MANY_CLIENTS' });
  });

  it('pushes events to subscribed clients only', async () => {
    const sub = await open();
    const other = await open();
    await sub.call('test', 'subscribe', {});
    server.publish('test', 'tick', { i: 1 }, (c) => c.subscriptions.has('all'));
    const it = sub.events()[Symbol.asyncIterator]();
    await expect(it.next()).resolves.toEqual({ done: false, value: { prog: 'test', name: 'tick', body: { i: 1 } } });
    other.close();
  });

  it('fails calls in flight with CONNECTION_CLOSED when the server goes away', async () => {
    const c = await open();
    const pending = c.call('test', 'hold', {});
    while (release.length < 1) await new Promise((r) => setImmediate(r));
    await server.close();
    await expect(pending).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('refuses to start a second server on a live socket', async () => {
    const second = new RpcServer({ daemon: 'test2', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    await expect(second.listen(rw(), 'rw', 0o600)).rejects.toMatchObject({ code: 'SOCKET_IN_USE' });
    const c = await open();
    await expect(c.call('test', 'echo', { n: 9 })).resolves.toEqual({ n: 9 });
    await second.close();
  });

  it('replaces a stale socket file and never removes a regular file', async () => {
    // A stale socket: its server was killed without unlinking it.
    const stale = root.path('stale.sock');
    const killed = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(killed.signal).toBe('SIGKILL');
    expect(statSync(stale).isSocket()).toBe(true);
    const fresh = new RpcServer({ daemon: 'fresh', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    fresh.register({ program: testProgram, handlers: { echo: ({ n }) => ({ n }) } });
    await fresh.listen(stale, 'rw', 0o600);
    const c = await RpcClient.connect(stale, { clock });
    await expect(c.call('test', 'echo', { n: 1 })).resolves.toEqual({ n: 1 });
    c.close();
    await fresh.close();
    expect(existsSync(stale)).toBe(false);

    writeFileSync(root.path('disk.img'), 'precious');
    const third = new RpcServer({ daemon: 'third', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    await expect(third.listen(root.path('disk.img'), 'rw', 0o600)).rejects.toMatchObject({ code: 'SOCKET_IN_USE' });
    expect(statSync(root.path('disk.img')).isFile()).toBe(true);
  });

  it('gives typed methods derived from the program', async () => {
    const t = typedClient(testProgram, await open());
    await expect(t.echo({ n: 11 })).resolves.toEqual({ n: 11 });
  });

  it('reports NO_CONNECT naming the socket when nobody listens', async () => {
    await expect(RpcClient.connect(root.path('none.sock'), { clock })).rejects.toSatisfy(
      (e: VirtqError) => e.code === 'NO_CONNECT' && e.message.includes('none.sock'));
  });
});
