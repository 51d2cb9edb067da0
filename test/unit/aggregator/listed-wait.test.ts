// A start's reply waits for the updates its shim's ready line counts (aggregator/listed-wait.ts):
// "ready means listed" for virtqemud's callers, though the shim no longer waits for the replies.
import { describe, expect, it } from 'vitest';
import { DomainRegistry, type ShimRef } from '../../../aggregator/registry.js';
import { caughtUp, untilListed } from '../../../aggregator/listed-wait.js';
import type { ServerClient } from '../../../protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const UUID = '5f2b1d3a-9c4e-4d6f-8a1b-2c3d4e5f6a7b';

function started(): { registry: DomainRegistry; r: ReturnType<DomainRegistry['claim']>; conn: { closed: boolean } } {
  const registry = new DomainRegistry();
  const r = registry.claim({ name: 'web1', uuid: UUID, persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: 'unknown' });
  registry.startBegun(r);
  const conn = { closed: false };
  const shim: ShimRef = { pid: 10, socket: '/r/web1.sock', roSocket: '/r/web1-ro.sock', adminSocket: '/r/web1-admin.sock', stateFile: '/r/web1.json', conn: { conn } as unknown as ServerClient };
  registry.shimRegistered(r, shim, { state: 'starting', reason: 'booting', qemuPid: undefined });
  return { registry, r, conn };
}

const ready = { shimPid: 10, socket: '/r/web1.sock', state: 'running' as const, qemuPid: 42, reports: 2 };

describe('untilListed', () => {
  it('counts the reports of a registration from its register', () => {
    const { registry, r } = started();
    expect(r.shim?.reports).toBe(0);
    registry.shimReported(r, { state: 'starting', reason: 'booting', qemuPid: 42 });
    expect(r.shim?.reports).toBe(1);
    registry.shimRegistered(r, { ...r.shim!, pid: 11 }, { state: 'running', reason: 'booted', qemuPid: 42 });
    expect(r.shim?.reports).toBe(0);
  });

  it('resolves only once the registry has every update the ready line counts, and the listing then says running', async () => {
    const { registry, r } = started();
    const clock = new FakeClock();
    let done: boolean | undefined;
    void untilListed(registry, r, ready, clock).then((v) => { done = v; });
    registry.shimReported(r, { state: 'starting', reason: 'booting', qemuPid: 42 });
    await Promise.resolve();
    expect(done).toBeUndefined();
    registry.shimReported(r, { state: 'running', reason: 'booted', qemuPid: 42 });
    await Promise.resolve();
    expect(done).toBe(true);
    expect(r.state).toBe('running');
    expect(clock.pending()).toBe(0);
  });

  it('does not wait for a shim that waited itself (no count), nor for one whose registration ended', async () => {
    const { registry, r, conn } = started();
    const { reports: _r, ...old } = ready;
    expect(caughtUp(r, old)).toBe(true);
    const clock = new FakeClock();
    const waiting = untilListed(registry, r, ready, clock);
    conn.closed = true;
    registry.shimLost(r);
    await expect(waiting).resolves.toBe(true);
  });

  it('gives up after its bound, leaving no watcher behind', async () => {
    const { registry, r } = started();
    const clock = new FakeClock();
    const waiting = untilListed(registry, r, ready, clock, 5000);
    await clock.advance(5000);
    await expect(waiting).resolves.toBe(false);
    expect((registry as unknown as { shimWatchers: Map<unknown, unknown> }).shimWatchers.size).toBe(0);
  });

  it('does not wait on a different shim of the same name', () => {
    const { r } = started();
    expect(caughtUp(r, { ...ready, shimPid: 99 })).toBe(true);
  });
});
