// The VM lifecycle as an explicit state machine: the states, the moves allowed between them,
// and which states each operation runs in. Anything else is OPERATION_INVALID naming the state.
import { VirtqError, type DomainState } from '../../protocol/index.js';

const transitions: Readonly<Record<DomainState, readonly DomainState[]>> = {
  starting: ['running', 'paused', 'shutoff', 'crashed'],
  running: ['paused', 'shutting-down', 'shutoff', 'crashed', 'running'],
  paused: ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  'shutting-down': ['shutoff', 'crashed', 'running', 'paused', 'shutting-down'],
  shutoff: ['starting'],
  crashed: ['starting'],
};

/** Operations that depend on the VM's state. */
export type Operation =
  | 'shutdown' | 'destroy' | 'reboot' | 'reset' | 'suspend' | 'resume'
  | 'attachDisk' | 'detachDisk' | 'blockStats' | 'qemuMonitorCommand' | 'openConsole';

const allowed: Readonly<Record<Operation, readonly DomainState[]>> = {
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
};

/** True when the machine may move from `from` to `to`. */
export function canTransition(from: DomainState, to: DomainState): boolean {
  return transitions[from].includes(to);
}

/** Throws OPERATION_INVALID unless `op` may run in `state`. */
export function checkOperation(op: Operation, name: string, state: DomainState): void {
  if (!allowed[op].includes(state)) {
    throw new VirtqError('OPERATION_INVALID', `cannot ${op} VM "${name}": it is ${state}`, { details: { state } });
  }
}
