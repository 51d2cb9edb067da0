// askVirtqemud (shim/ask-virtqemud.ts): a source shim's calls after a migration has happened are
// asked again over a moment's outage. Cluster chaos seed 31511 (session 31): the destination's
// define (--persistent) was refused CLUSTER_UNAVAILABLE 50 ms before that host's etcd lease was live
// again; the source kept its definition (MIGRATION_UNDEFINE_SKIPPED) and the VM was listed on two hosts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcServer, VirtqError, normalizeDefinition, silentLogger, systemClock, virtqProgram, type Handlers, type VirtqProgram } from '../../../protocol/index.js';
import { askVirtqemud } from '../../../shim/ask-virtqemud.js';
import { connectDestination } from '../../../shim/migration-link.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const clock = systemClock();
const UUID = '3c1f0e2a-5b4d-4e6f-8a9b-0c1d2e3f4a5b';

describe('askVirtqemud', () => {
  let root: TmpRoot;
  let server: RpcServer | undefined;

  const serve = async (handlers: Partial<Handlers<VirtqProgram>>): Promise<void> => {
    const s = new RpcServer({ daemon: 'virtqemud', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    s.register({ program: virtqProgram, handlers });
    await s.listen(root.path('rw.sock'), 'rw', 0o600);
    server = s;
  };
  /** A define refused CLUSTER_UNAVAILABLE `refusals` times, then stored. */
  const lapsedFleetLease = (refusals: number, stored: string[]): Partial<Handlers<VirtqProgram>> => ({
    define: ({ definition }) => {
      if (refusals-- > 0) return Promise.reject(new VirtqError('CLUSTER_UNAVAILABLE', 'cannot define VM: this host (host1) has no live lease in the etcd fleet'));
      stored.push(String(definition.name));
      return Promise.resolve({ name: String(definition.name), uuid: UUID, state: 'running', reason: 'migrated', persistent: true, autostart: false, shimUp: true });
    },
  });

  beforeEach(() => { root = tmpRoot(); });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    root.remove();
  });

  it('asks again while a fleet host has no live lease, until it answers', async () => {
    const stored: string[] = [];
    await serve(lapsedFleetLease(2, stored));
    await askVirtqemud(root.path('rw.sock'), clock, 10_000, (api) => api.define({ definition: { name: 'vm1', uuid: UUID, memoryMiB: 64 } }));
    expect(stored).toEqual(['vm1']);
  });

  it('gives a refusal that does not pass back at once, and a passing one once its bound has gone by', async () => {
    await serve({ undefine: () => Promise.reject(new VirtqError('OPERATION_INVALID', 'VM "vm2" has a snapshot')) });
    let started = clock.monotonic();
    await expect(askVirtqemud(root.path('rw.sock'), clock, 10_000, (api) => api.undefine({ name: 'vm2' }))).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(clock.monotonic() - started).toBeLessThan(2000);
    await server?.close();
    await serve(lapsedFleetLease(1_000, []));
    started = clock.monotonic();
    await expect(askVirtqemud(root.path('rw.sock'), clock, 700, (api) => api.define({ definition: { name: 'vm3', uuid: UUID, memoryMiB: 64 } }))).rejects.toMatchObject({ code: 'CLUSTER_UNAVAILABLE' });
    expect(clock.monotonic() - started).toBeGreaterThanOrEqual(700);
  });

  it("is how a migration's destination link stores the definition there (--persistent)", async () => {
    const stored: string[] = [];
    await serve(lapsedFleetLease(3, stored));
    const link = await connectDestination(`qemu:///system?socket=${encodeURIComponent(root.path('rw.sock'))}`, clock, 10_000);
    try {
      await link.define(normalizeDefinition({ name: 'vm4', uuid: UUID, memoryMiB: 64 }, () => UUID));
    } finally {
      link.close();
    }
    expect(stored).toEqual(['vm4']);
  });
});
