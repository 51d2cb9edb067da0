// Which states each operation runs in (the moves between states are in lifecycle.ts). Anything else is OPERATION_INVALID naming the state.
import { VirtqError, type DomainState } from '../../protocol/index.js';

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

/** Throws OPERATION_INVALID unless `op` may run in `state`. */
export function checkOperation(op: Operation, name: string, state: DomainState): void {
  if (!allowed[op].includes(state)) {
    throw new VirtqError('OPERATION_INVALID', `cannot ${op} VM "${name}": it is ${state}`, { details: { state } });
  }
}
