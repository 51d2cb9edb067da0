// What a shim tells virtqemud when it registers, and the VM facts that let virtqemud answer
// getInfo without a hop to the shim (kept out of shim.ts).
import type { RuntimeState } from '../daemon/runtime-state.js';
import type { Registrar } from './registration.js';
import type { Vm } from './vm/vm.js';

type Registration = Parameters<Registrar['register']>[0];

/** The VM facts virtqemud keeps for getInfo. */
export function registrationInfo(vm: Vm, accel: string): NonNullable<Registration['info']> {
  return {
    vcpus: vm.def.vcpus, memoryMiB: vm.def.memoryMiB, accel, tainted: vm.tainted,
    ...(vm.qemuStartedAt === undefined ? {} : { qemuStartedAt: vm.qemuStartedAt }),
  };
}

/** The registration of the shim of `vm`; `saved` (a successor's) makes it a re-attach. */
export function registrationOf(vm: Vm, o: { sockets: RuntimeState['sockets']; stateFile: string; accel: string }, saved: RuntimeState | undefined): Registration {
  const reattach = saved !== undefined;
  const pid = vm.qemuPid ?? saved?.qemuPid;
  return {
    name: vm.def.name, uuid: vm.def.uuid, shimPid: process.pid, ...(pid === undefined ? {} : { qemuPid: pid }),
    socket: o.sockets.rw, roSocket: o.sockets.ro, adminSocket: o.sockets.admin, stateFile: o.stateFile,
    state: reattach ? vm.state : 'starting', reason: reattach ? vm.reason : 'booting', reattach, info: registrationInfo(vm, o.accel),
  };
}
