// What a shim writes to its VM's state file (daemon/runtime-state.ts): the VM's definition and
// state, the processes and sockets that serve it, and how it was started.
import type { RuntimeState } from '../daemon/runtime-state.js';
import type { Vm } from './vm/vm.js';

/** The shim's own facts the state file carries beside the VM's. */
export interface ShimFacts {
  accel: string;
  sockets: RuntimeState['sockets'];
  /** An embedded VM, private to its application. */
  private: boolean;
  /** Registered with virtqemud (a successor of an unregistered shim stays unregistered). */
  registered: boolean;
}

/** The runtime state of `vm` at `now`, as written to the state file. */
export function runtimeStateOf(vm: Vm, shim: ShimFacts, now: number): RuntimeState {
  return {
    format: 1, name: vm.def.name, uuid: vm.def.uuid, shimPid: process.pid, qemuPid: vm.qemuPid, qemuStartedAt: vm.qemuStartedAt,
    accel: shim.accel, sockets: shim.sockets, definition: vm.def, state: vm.state, reason: vm.reason,
    ...(vm.details === undefined ? {} : { details: vm.details }),
    tainted: vm.tainted, private: shim.private, registered: shim.registered, updatedAt: now,
  };
}
