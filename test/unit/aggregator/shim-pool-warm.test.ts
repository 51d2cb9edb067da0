// virtqemud's pooled shim connections opened ahead (ShimPool.warm): a migration's destination
// opens its incoming shim's connection during the transfer, so the lease claim forwarded inside
// the source's pause finds it connected.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { defineProgram, proc } from '../../../protocol/catalogue.js';
import { systemClock } from '../../../protocol/clock.js';
import { silentLogger } from '../../../protocol/logger.js';
import { RpcServer } from '../../../protocol/server.js';
import { VirtqError } from '../../../protocol/errors.js';
import { ShimPool } from '../../../aggregator/shim-pool.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const program = defineProgram('test', 'warm', {
  echo: proc({ args: Type.Object({ n: Type.Integer() }), ret: Type.Object({ n: Type.Integer() }), servers: ['aggregator'], readonly: true, since: '0.1', description: 'echoes n' }),
}, {});
const clock = systemClock();

describe('ShimPool.warm', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let pool: ShimPool;

  beforeEach(async () => {
    root = tmpRoot();
    server = new RpcServer({ daemon: 'test', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    server.register({ program, handlers: { echo: ({ n }) => ({ n }) } });
    await server.listen(root.path('shim.sock'), 'rw', 0o600);
    pool = new ShimPool(clock);
  });

  afterEach(async () => {
    pool.closeAll();
    await server.close();
    root.remove();
  });

  it('connects at once: a later call needs no connect (it works with the socket path gone)', async () => {
    pool.warm(root.path('shim.sock'), 'vm1');
    // The server sees the connection without any call made; then the path can go, since only
    // a new connect would need it.
    for (let i = 0; i < 500 && server.clients().length === 0; i++) await new Promise((r) => setTimeout(r, 2));
    expect(server.clients().length).toBe(1);
    rmSync(root.path('shim.sock'));
    const client = await pool.get(root.path('shim.sock'), 'vm1');
    expect(await client.call('test', 'echo', { n: 7 })).toEqual({ n: 7 });
    expect(server.clients().length).toBe(1);
  });

  it('a later call still connects when nothing was warmed (so the socket path is needed then)', async () => {
    rmSync(root.path('shim.sock'));
    const err = await pool.get(root.path('shim.sock'), 'vm1').catch((e: unknown) => e);
    expect(VirtqError.from(err).code).toBe('SHIM_UNAVAILABLE');
  });

  it('a shim that does not answer is reported by the call that needs it, not by the warm-up', async () => {
    pool.warm(root.path('nobody.sock'), 'vm2');
    await new Promise((r) => setTimeout(r, 20));
    const err = await pool.get(root.path('nobody.sock'), 'vm2').catch((e: unknown) => e);
    expect(VirtqError.from(err).code).toBe('SHIM_UNAVAILABLE');
  });
});
