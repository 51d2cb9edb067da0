// Which states each operation runs in, as declared in the catalogue (the moves between states
// are in lifecycle.ts). Anything else is OPERATION_INVALID naming the state.
import { VirtqError, vmProcs, type DomainState, type ProcsWith } from '../../protocol/index.js';

/** Operations that depend on the VM's state: the per-VM procedures with `states` in the catalogue. */
export type Operation = ProcsWith<typeof vmProcs, 'states'>;

/** The states each operation runs in, read from the catalogue. */
const allowed = new Map<string, readonly DomainState[]>(
  Object.entries(vmProcs).flatMap(([op, spec]): [string, readonly DomainState[]][] => (spec.states === undefined ? [] : [[op, spec.states]])),
);

/** The operations that depend on the VM's state, in catalogue order. */
export const OPERATIONS: readonly Operation[] = [...allowed.keys()] as Operation[];

/** The states `op` runs in. */
export function allowedStates(op: Operation): readonly DomainState[] {
  return allowed.get(op) ?? [];
}

/** Throws OPERATION_INVALID unless `op` may run in `state`. */
export function checkOperation(op: Operation, name: string, state: DomainState): void {
  if (!allowedStates(op).includes(state)) {
    throw new VirtqError('OPERATION_INVALID', `cannot ${op} VM "${name}": it is ${state}`, { details: { state } });
  }
}
