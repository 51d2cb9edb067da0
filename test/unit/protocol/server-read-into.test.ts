// A server's unix sockets read into buffers of its own (adopt-socket.ts): a client's large stream
// chunks (an upload's 1 MiB frames) reach the handler whole, in memory the handler gives back
// with recycle() and the socket reads into again; small calls and replies work as before.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { defineProgram, proc } from '../../../protocol/catalogue.js';
import { RpcClient } from '../../../protocol/client.js';
import { systemClock } from '../../../protocol/clock.js';
import { silentLogger } from '../../../protocol/logger.js';
import { RpcServer } from '../../../protocol/server.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const program = defineProgram('test', 'read into', {
  echo: proc({ args: Type.Object({ n: Type.Integer() }), ret: Type.Object({ n: Type.Integer() }), servers: ['aggregator'], readonly: true, since: '0.1', description: 'echoes n' }),
  sink: proc({ args: Type.Object({}), ret: Type.Object({}), servers: ['aggregator'], readonly: false, stream: true, since: '0.1', description: 'takes bytes' }),
}, {});
const clock = systemClock();
const MiB = 1024 * 1024;

describe('RpcServer reads into its own buffers', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let client: RpcClient;
  /** What the sink saw: each chunk's length, its first byte, whether all its bytes equal that, and its memory. */
  let seen: Array<{ length: number; first: number; uniform: boolean; mem: ArrayBufferLike }>;
  let done: Promise<void>;

  beforeEach(async () => {
    root = tmpRoot();
    seen = [];
    let ended: () => void = () => undefined;
    done = new Promise((r) => { ended = r; });
    server = new RpcServer({ daemon: 'test', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    server.register({
      program,
      handlers: {
        echo: ({ n }) => ({ n }),
        sink: (_args, ctx) => {
          const stream = ctx.openStream();
          void (async () => {
            for await (const chunk of stream) {
              const first = chunk[0] as number;
              seen.push({ length: chunk.length, first, uniform: chunk.every((b) => b === first), mem: chunk.buffer });
              stream.recycle(chunk);
            }
            stream.end();
            ended();
          })();
          return {};
        },
      },
    });
    await server.listen(root.path('rw.sock'), 'rw', 0o600);
    client = await RpcClient.connect(root.path('rw.sock'), { clock, defaultTimeoutMs: 10_000 });
  });

  afterEach(async () => {
    client.close();
    await server.close();
    root.remove();
  });

  it('hands an upload\'s 1 MiB chunks on whole, in a few reused buffers, and serves calls alongside', async () => {
    const stream = await client.openStream('test', 'sink', {});
    for (let i = 1; i <= 24; i++) {
      stream.write(Buffer.alloc(MiB, i));
      await stream.drain();
      // A call between chunks: small frames still go through the reads between large ones.
      if (i % 8 === 0) await expect(client.call('test', 'echo', { n: i })).resolves.toEqual({ n: i });
    }
    stream.endWrite();
    for await (const _ of stream) { /* until the server ends it */ }
    await done;
    // Through 'data' events these arrived as 64 KiB pieces (16 per chunk), each a fresh buffer.
    expect(seen.map((s) => s.length)).toEqual(Array.from({ length: 24 }, () => MiB));
    expect(seen.map((s) => s.first)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(seen.every((s) => s.uniform)).toBe(true);
    expect(new Set(seen.map((s) => s.mem)).size).toBeLessThan(12);
  });
});
