// Which operations run in which states: each pair of operation and state is pinned.
import { describe, expect, it } from 'vitest';
import { DOMAIN_STATES, VirtqError, type DomainState } from '../../../protocol/index.js';
import { checkOperation, type Operation } from '../../../shim/vm/states.js';

const live: DomainState[] = ['running', 'paused', 'shutting-down'];
const allowed: Record<Operation, readonly DomainState[]> = {
  shutdown: live,
  destroy: ['starting', ...live],
  reboot: ['running'],
  reset: live,
  suspend: ['running'],
  resume: ['paused'],
  attachDisk: ['running', 'paused'],
  detachDisk: ['running', 'paused'],
  blockStats: live,
  qemuMonitorCommand: ['starting', ...live],
  openConsole: ['starting', ...live],
  attachInterface: ['running', 'paused'],
  detachInterface: ['running', 'paused'],
  interfaceAddresses: ['running', 'paused'],
  save: ['running', 'paused'],
  managedSave: ['running', 'paused'],
  snapshotCreate: ['running', 'paused'],
  snapshotRevert: ['running', 'paused'],
  snapshotDelete: ['running', 'paused'],
  migrate: ['running', 'paused'],
  migrateIncomingClaim: ['paused'],
  migrateIncomingFinish: ['paused'],
};

const cases = (Object.keys(allowed) as Operation[]).flatMap((op) => DOMAIN_STATES.map((state) => ({ op, state, ok: allowed[op].includes(state) })));

describe('checkOperation', () => {
  it.each(cases.filter((c) => c.ok))('allows $op when $state', ({ op, state }) => {
    expect(() => checkOperation(op, 'vm1', state)).not.toThrow();
  });

  it.each(cases.filter((c) => !c.ok))('refuses $op when $state', ({ op, state }) => {
    let caught: unknown;
    try { checkOperation(op, 'vm1', state); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(VirtqError);
    expect((caught as VirtqError).code).toBe('OPERATION_INVALID');
    expect((caught as VirtqError).message).toBe(`cannot ${op} VM "vm1": it is ${state}`);
  });
});
