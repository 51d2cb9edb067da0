// The VM lifecycle's transition table, and the two ways a move reaches it. A move an operation
// asks for (start, shutdown, suspend...) is refused with OPERATION_INVALID when the table has no
// entry for it. A move QEMU reports (an event, its exit, query-status) has already happened:
// QEMU is the authority for its own state, so the VM takes it, and the shim logs the gap
// between the table and the report instead of crashing or losing track of the VM.
import { VirtqError, type DomainState } from '../../protocol/index.js';

const transitions: Readonly<Record<DomainState, readonly DomainState[]>> = {
  starting: ['running', 'paused', 'shutoff', 'crashed'],
  running: ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  paused: ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  'shutting-down': ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  shutoff: ['starting'],
  crashed: ['starting'],
};

/** True when the table allows the move from `from` to `to`. */
export function canTransition(from: DomainState, to: DomainState): boolean {
  return transitions[from].includes(to);
}

/** An operation asks to move: throws OPERATION_INVALID naming both states unless the table allows it. */
export function checkTransition(name: string, from: DomainState, to: DomainState): void {
  if (!canTransition(from, to)) {
    throw new VirtqError('OPERATION_INVALID', `VM "${name}" cannot go from ${from} to ${to}`, { details: { state: from, to } });
  }
}
