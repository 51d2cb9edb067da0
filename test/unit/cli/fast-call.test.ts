// The fast path's one call (cli/fast-call.ts) held against RpcClient and dialResolved, which the
// full CLI uses: the same value for a reply, the same errors (NO_CONNECT with its hint, the
// server's error, a connection-level error on serial 0), and "not mine" (undefined, so the full
// CLI runs the command) for whatever else a peer may do, or when Node's stream handle is not there.
import { createServer, type Server, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialResolved } from '../../../client/dial.js';
import { createCodec } from '../../../protocol/codec.js';
import { systemClock } from '../../../protocol/clock.js';
import { VirtqError } from '../../../protocol/errors.js';
import { encodeFrame } from '../../../protocol/framing.js';
import { fastCall } from '../../../cli/fast-call.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const HINT = 'is virtqemud running for qemu:///x?';

/** A server answering each call's frame with what `answer` writes. */
function serve(path: string, answer: (socket: Socket, call: Record<string, unknown>) => void): Promise<Server> {
  const codec = createCodec();
  const server = createServer((socket) => {
    let got = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) answer(socket, codec.decode(got.subarray(4)) as Record<string, unknown>);
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

const reply = (socket: Socket, msg: Record<string, unknown>): void => { socket.write(encodeFrame(createCodec().encode({ prog: 'virtq', proc: 'getInfo', type: 'reply', serial: 1, status: 'ok', ...msg }))); };

/** What the full CLI's client gives for the same call: the value, or the error it rejects with. */
async function viaRpcClient(path: string): Promise<{ ok: true; body: unknown } | { ok: false; error: VirtqError }> {
  try {
    const rpc = await dialResolved({ peer: 'daemon', socket: path, readOnly: false, hint: HINT }, systemClock(), 5000);
    try {
      return { ok: true, body: await rpc.call('virtq', 'getInfo', { name: 'vm0' }) };
    } finally {
      rpc.close();
    }
  } catch (err) {
    return { ok: false, error: err as VirtqError };
  }
}

const summary = (o: Awaited<ReturnType<typeof viaRpcClient>> | undefined) => (o === undefined ? undefined : o.ok ? o : { ok: false, code: o.error.code, message: o.error.message, details: o.error.details });

describe('fastCall', () => {
  let root: TmpRoot;
  let server: Server | undefined;
  beforeEach(() => { root = tmpRoot('vqfc-'); });
  afterEach(async () => {
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(() => r(undefined))));
    server = undefined;
    root.remove();
  });

  it('sends the call the server expects and gives the reply RpcClient gives', async () => {
    const seen: unknown[] = [];
    server = await serve(root.path('s.sock'), (s, call) => { seen.push(call); reply(s, { body: { name: 'vm0', memoryMiB: 32, cpuTime: 1.5, tags: ['a'] } }); });
    const fast = await fastCall(root.path('s.sock'), HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000);
    expect(fast).toEqual(await viaRpcClient(root.path('s.sock')));
    expect(seen).toEqual([{ prog: 'virtq', proc: 'getInfo', type: 'call', serial: 1, status: 'ok', body: { name: 'vm0' } }, seen[0]]);
  });

  it('gives the server\'s error, and a connection-level one on serial 0, as RpcClient does', async () => {
    for (const serial of [1, 0]) {
      const path = root.path(`e${serial}.sock`);
      server?.close();
      server = await serve(path, (s) => reply(s, { serial, status: 'error', body: { code: 'NO_DOMAIN', message: 'no VM named "vm0"', details: { name: 'vm0' } } }));
      const fast = await fastCall(path, HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000);
      expect(summary(fast)).toEqual(summary(await viaRpcClient(path)));
      expect(summary(fast)).toMatchObject({ ok: false, code: 'NO_DOMAIN' });
    }
  });

  it('fails to connect with RpcClient\'s and dialResolved\'s very error', async () => {
    writeFileSync(root.path('file.sock'), '');
    for (const path of [root.path('none.sock'), root.path('file.sock')]) {
      const fast = await fastCall(path, HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000);
      expect(summary(fast)).toEqual(summary(await viaRpcClient(path)));
      expect(summary(fast)).toMatchObject({ ok: false, code: 'NO_CONNECT' });
    }
  });

  it('gives TIMEOUT past the deadline, with RpcClient\'s message', async () => {
    server = await serve(root.path('slow.sock'), () => undefined);
    const fast = await fastCall(root.path('slow.sock'), HINT, 'virtq', 'getInfo', { name: 'vm0' }, 50);
    expect(summary(fast)).toMatchObject({ ok: false, code: 'TIMEOUT', message: 'virtq.getInfo did not answer within 50 ms' });
  });

  it('leaves the call to the full CLI when Node offers no stream handle as expected (--pending-deprecation wraps process.binding)', async () => {
    server = await serve(root.path('s.sock'), (s) => reply(s, { body: 1 }));
    const proc = process as unknown as { binding: (name: string) => unknown };
    const real = proc.binding;
    try {
      proc.binding = function deprecated(name: string) { return real(name); };
      expect(await fastCall(root.path('s.sock'), HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000)).toBeUndefined();
      proc.binding = function binding() { return {}; };
      expect(await fastCall(root.path('s.sock'), HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000)).toBeUndefined();
    } finally {
      proc.binding = real;
    }
    expect(await fastCall(root.path('s.sock'), HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000)).toEqual({ ok: true, body: 1 });
  });

  it('leaves to the full CLI a peer that closes, a bad frame, CBOR outside its subset or another serial', async () => {
    const answers: Array<(s: Socket) => void> = [
      (s) => s.end(),
      (s) => s.destroy(),
      (s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0])),
      (s) => s.write(Buffer.from([0, 0, 0, 2, 0xff, 0xff])),
      (s) => reply(s, { body: 2n ** 64n }),
      (s) => reply(s, { body: new Date(0) }),
      (s) => reply(s, { serial: 7 }),
      (s) => reply(s, { type: 'event' }),
      (s) => { reply(s, { body: 1 }); s.write(Buffer.from([0])); s.end(); },
    ];
    for (const [i, answer] of answers.entries()) {
      const path = root.path(`x${i}.sock`);
      server?.close();
      server = await serve(path, answer);
      const fast = await fastCall(path, HINT, 'virtq', 'getInfo', { name: 'vm0' }, 5000);
      // The last one's trailing byte starts a next frame that never completes: the reply before it counts.
      expect(fast, `answer ${i}`).toEqual(i === answers.length - 1 ? { ok: true, body: 1 } : undefined);
    }
  });
});
