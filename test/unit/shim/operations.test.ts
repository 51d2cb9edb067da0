// Pins the VM operations and the states each runs in, as derived from the catalogue's `states`.
import { describe, expect, it } from 'vitest';
import { OPERATIONS, allowedStates, checkOperation, type Operation } from '../../../shim/vm/states.js';

describe('VM operations', () => {
  it('are the per-VM procedures that declare states, each with its states', () => {
    const table = Object.fromEntries(OPERATIONS.map((op) => [op, allowedStates(op)]));
    expect(table).toEqual({
      shutdown: ['running', 'paused', 'shutting-down'],
      destroy: ['starting', 'running', 'paused', 'shutting-down'],
      reboot: ['running'],
      reset: ['running', 'paused', 'shutting-down'],
      suspend: ['running'],
      resume: ['paused'],
      attachDisk: ['running', 'paused'],
      detachDisk: ['running', 'paused'],
      blockStats: ['running', 'paused', 'shutting-down'],
      qemuMonitorCommand: ['starting', 'running', 'paused', 'shutting-down'],
      openConsole: ['starting', 'running', 'paused', 'shutting-down'],
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
    });
  });

  it('refuses an operation outside its states with OPERATION_INVALID naming the state', () => {
    expect(() => checkOperation('resume', 'web1', 'running')).toThrow(expect.objectContaining({ code: 'OPERATION_INVALID', message: 'cannot resume VM "web1": it is running' }));
    expect(() => checkOperation('resume', 'web1', 'paused')).not.toThrow();
  });

  it('has no operation for a procedure that does not depend on the state', () => {
    // @ts-expect-error getState answers in every state, so it is no Operation
    const op: Operation = 'getState';
    expect(OPERATIONS).not.toContain(op);
  });
});
