// The registry: names and UUIDs claimed at most once, and records changed only by its named
// transitions, each leaving the fields the rest of virtqemud relies on.
import { describe, expect, it } from 'vitest';
import { DomainRegistry, isActive, toRow, type ShimRef } from '../../../aggregator/registry.js';
import { normalizeDefinition } from '../../../protocol/index.js';

const UUID = '5f2b1d3a-9c4e-4d6f-8a1b-2c3d4e5f6a7b';
const shim: ShimRef = { pid: 10, socket: '/r/web1.sock', roSocket: '/r/web1-ro.sock', adminSocket: '/r/web1-admin.sock', stateFile: '/r/web1.json', conn: undefined };

function fresh(): { registry: DomainRegistry; r: ReturnType<DomainRegistry['claim']> } {
  const registry = new DomainRegistry();
  const r = registry.claim({ name: 'web1', uuid: UUID.toUpperCase(), persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: 'unknown' });
  return { registry, r };
}

describe('DomainRegistry', () => {
  it('claims a name and a UUID once, case-insensitively for the UUID, and frees both on remove', () => {
    const { registry, r } = fresh();
    expect(r.uuid).toBe(UUID);
    expect(() => registry.claim({ name: 'web1', uuid: '00000000-0000-4000-8000-000000000000', persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: '' }))
      .toThrow(expect.objectContaining({ code: 'NAME_IN_USE' }));
    expect(() => registry.claim({ name: 'web2', uuid: UUID, persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: '' }))
      .toThrow(expect.objectContaining({ code: 'UUID_IN_USE' }));
    registry.remove(r);
    expect(registry.get('web1')).toBeUndefined();
    expect(registry.getByUuid(UUID)).toBeUndefined();
  });

  it('walks a start: begun (active, starting), registered, reported, ended', () => {
    const { registry, r } = fresh();
    registry.startBegun(r);
    expect(r).toMatchObject({ starting: true, state: 'starting', reason: 'booting' });
    expect(isActive(r)).toBe(true);
    registry.shimRegistered(r, shim, { state: 'starting', reason: 'booting', qemuPid: undefined });
    expect(r).toMatchObject({ shimUp: true, shim: { pid: 10, socket: '/r/web1.sock' } });
    registry.shimReported(r, { state: 'running', reason: 'booted', qemuPid: 42 }, { vcpus: 1, memoryMiB: 64, accel: 'tcg', tainted: false, qemuStartedAt: 1 } as NonNullable<ShimRef['info']>);
    registry.startEnded(r);
    expect(r).toMatchObject({ starting: false, state: 'running', qemuPid: 42, shim: { info: { vcpus: 1 } } });
    expect(toRow(r)).toMatchObject({ name: 'web1', state: 'running', shimUp: true, shimPid: 10, qemuPid: 42 });
  });

  it('fails a start back to shutoff with no QEMU', () => {
    const { registry, r } = fresh();
    registry.startBegun(r);
    registry.qemuFound(r, 99);
    registry.startFailed(r);
    registry.startEnded(r);
    expect(r).toMatchObject({ state: 'shutoff', reason: 'failed', qemuPid: undefined, starting: false });
    expect(isActive(r)).toBe(false);
  });

  it('loses a shim while the VM runs, then finds the stop and releases it', () => {
    const { registry, r } = fresh();
    registry.shimRegistered(r, { ...shim, conn: undefined }, { state: 'running', reason: 'booted', qemuPid: 42 });
    registry.shimLost(r);
    expect(r).toMatchObject({ shimUp: false, state: 'running', qemuPid: 42, shim: { pid: 10, conn: undefined } });
    registry.shimReachable(r, true);
    expect(r.shimUp).toBe(true);
    registry.stopped(r, 'crashed', 'lost');
    registry.released(r);
    expect(r).toMatchObject({ state: 'crashed', reason: 'lost', qemuPid: undefined, shim: undefined, shimUp: false });
  });

  it('adopts a shim found at recovery as its state file left it, live or not', () => {
    const { registry, r } = fresh();
    registry.shimAdopted(r, shim, { state: 'paused', reason: 'user', qemuPid: 7 }, false);
    expect(r).toMatchObject({ state: 'paused', reason: 'user', qemuPid: 7, shimUp: false, shim: { conn: undefined } });
    registry.shimGone(r);
    expect(r).toMatchObject({ shim: undefined, shimUp: false, qemuPid: 7 });
  });

  it('defines, restores a failed define, sets autostart and undefines', () => {
    const { registry, r } = fresh();
    const def = normalizeDefinition({ name: 'web1', uuid: UUID, memoryMiB: 64, kernel: { path: '/k' } }, () => UUID);
    registry.defined(r, def);
    registry.autostartSet(r, true);
    expect(r).toMatchObject({ persistent: true, autostart: true, definition: { name: 'web1' } });
    registry.definitionRestored(r, { persistent: false, definition: undefined });
    expect(r).toMatchObject({ persistent: false, definition: undefined });
    registry.defined(r, def);
    registry.undefined(r);
    expect(r).toMatchObject({ persistent: false, autostart: false, definition: undefined });
  });

  it('lists active VMs first, then by name, under each filter', () => {
    const registry = new DomainRegistry();
    for (const [name, state] of [['b', 'shutoff'], ['a', 'shutoff'], ['c', 'running']] as const) {
      const u = `00000000-0000-4000-8000-00000000000${name.charCodeAt(0) - 96}`;
      const r = registry.claim({ name, uuid: u, persistent: name !== 'c', autostart: false, definition: undefined, state: 'shutoff', reason: '' });
      if (state === 'running') registry.shimRegistered(r, shim, { state, reason: 'booted', qemuPid: 1 });
    }
    expect(registry.list({}).map((row) => row.name)).toEqual(['c', 'a', 'b']);
    expect(registry.list({ active: true }).map((row) => row.name)).toEqual(['c']);
    expect(registry.list({ persistent: true }).map((row) => row.name)).toEqual(['a', 'b']);
  });
});
