// A start awaits its look for a managed save image; an undefine can finish meanwhile. The start
// then fails NO_DOMAIN and spawns nothing (chaos seed 27040 found it going on with the definition
// it had just lost: INTERNAL "Cannot read properties of undefined").
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostHandlers, type HostDeps } from '../../../aggregator/handlers/host-handlers.js';
import { DomainRegistry } from '../../../aggregator/registry.js';
import { normalizeDefinition, rootLayout, type CallContext } from '../../../protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const UUID = '5f2b1d3a-9c4e-4d6f-8a1b-2c3d4e5f6a7b';

describe('start of a VM undefined while it looks for its save image', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  it('fails NO_DOMAIN and spawns no shim; a start of the VM as defined again then goes on', async () => {
    const registry = new DomainRegistry();
    const spawned: string[] = [];
    const deps = {
      registry,
      layout: rootLayout(root.dir),
      spawner: { start: async (def: { name: string }) => { spawned.push(def.name); throw new Error('the test spawns nothing'); } },
      workers: { run: <T>(fn: () => Promise<T>) => fn() },
      clock: new FakeClock(),
    } as unknown as HostDeps;
    const start = hostHandlers(deps).start as (args: { name: string; paused?: boolean }, ctx: CallContext) => Promise<unknown>;
    const def = normalizeDefinition({ name: 'vm3', uuid: UUID, memoryMiB: 64 }, () => UUID);
    const r = registry.claim({ name: 'vm3', uuid: UUID, persistent: true, autostart: false, definition: def, state: 'shutoff', reason: 'defined' });

    const starting = start({ name: 'vm3' }, {} as CallContext);
    registry.undefined(r); // what an undefine does to a stopped VM, while the start awaits
    registry.remove(r);
    await expect(starting).rejects.toMatchObject({ code: 'NO_DOMAIN' });
    expect(spawned).toEqual([]);

    registry.claim({ name: 'vm3', uuid: UUID, persistent: true, autostart: false, definition: def, state: 'shutoff', reason: 'defined' });
    await expect(start({ name: 'vm3' }, {} as CallContext)).rejects.toThrow('the test spawns nothing');
    expect(spawned).toEqual(['vm3']);
  });
});
