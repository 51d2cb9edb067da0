// What a server sends, against the frame limits: a read-only client's small-frame bound is on
// what it sends, not on the answers it gets; a stream chunk too large to send fails the stream
// instead of vanishing from it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { defineProgram, proc } from '../../../protocol/catalogue.js';
import { RpcClient } from '../../../protocol/client.js';
import { systemClock } from '../../../protocol/clock.js';
import { silentLogger } from '../../../protocol/logger.js';
import { RO_MAX_FRAME_BYTES, RpcServer } from '../../../protocol/server.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const both = ['shim', 'aggregator'] as const;
const program = defineProgram('test', 'send limits', {
  big: proc({ args: Type.Object({ n: Type.Integer() }), ret: Type.Object({ s: Type.String() }), servers: both, readonly: true, since: '0.1', description: 'a reply of n bytes' }),
  chunks: proc({ args: Type.Object({ sizes: Type.Array(Type.Integer()) }), ret: Type.Object({}), servers: both, readonly: true, stream: true, since: '0.1', description: 'streams chunks of these sizes' }),
}, {});
const clock = systemClock();

describe('RpcServer send limits', () => {
  let root: TmpRoot;
  let server: RpcServer;
  const clients: RpcClient[] = [];
  const open = async (name: string) => {
    const c = await RpcClient.connect(root.path(name), { clock, defaultTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };
  const read = async (c: RpcClient, sizes: number[]) => {
    const stream = await c.openStream('test', 'chunks', { sizes });
    // Chunk boundaries are not kept for large chunks (they arrive as the socket's reads): what
    // counts is every byte, in order. Each chunk sent is filled with its index + 1.
    const got: number[] = [];
    for await (const chunk of stream) {
      for (const byte of chunk) {
        if (got.length < byte) got.push(0);
        got[byte - 1] = (got[byte - 1] as number) + 1;
      }
    }
    return { got, error: stream.error };
  };

  beforeEach(async () => {
    root = tmpRoot();
    server = new RpcServer({ daemon: 'test', version: '0.1', role: 'aggregator', clock, log: silentLogger(), maxFrameBytes: 4 * 1024 * 1024 });
    server.register({
      program,
      handlers: {
        big: ({ n }) => ({ s: 'x'.repeat(n) }),
        chunks: ({ sizes }, ctx) => {
          const stream = ctx.openStream();
          sizes.forEach((n, i) => stream.write(Buffer.alloc(n, i + 1)));
          stream.end();
          return {};
        },
      },
    });
    await server.listen(root.path('rw.sock'), 'rw', 0o600);
    await server.listen(root.path('ro.sock'), 'ro', 0o666);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server.close();
    root.remove();
  });

  it('answers a read-only client with replies and stream chunks over the read-only frame limit', async () => {
    // Before: the 1 MiB bound on read-only clients' frames bounded what was sent to them too, so a
    // volume download on the read-only socket lost every 1 MiB chunk and ended as if complete.
    const ro = await open('ro.sock');
    const n = 2 * RO_MAX_FRAME_BYTES;
    expect(((await ro.call('test', 'big', { n })) as { s: string }).s).toHaveLength(n);
    expect(await read(ro, [n, 10, n])).toEqual({ got: [n, 10, n], error: undefined });
  });

  it('fails a stream whose chunk is over the frame limit instead of dropping the chunk', async () => {
    const rw = await open('rw.sock');
    const { got, error } = await read(rw, [10, 5 * 1024 * 1024, 20]);
    expect(got).toEqual([10]);
    expect(error).toMatchObject({ code: 'FRAME_TOO_LARGE' });
    // The connection is still served.
    expect(((await rw.call('test', 'big', { n: 3 })) as { s: string }).s).toBe('xxx');
  });
});
