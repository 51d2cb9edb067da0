// The `registry` program: how shims announce themselves to virtqemud. A registration lives as
// long as the shim's connection; uniqueness of names and UUIDs is decided here, atomically.
import { Type } from '@sinclair/typebox';
import { DomainName, DomainUuid } from './definition.js';
import { defineProgram, proc } from './catalogue.js';
import { DomainState, Empty } from './types.js';
import { DomainInfo } from './vm-program.js';

const aggregator = ['aggregator'] as const;

/**
 * What virtqemud needs, besides state, to answer getInfo itself: fixed for a registration except
 * the taint, which a shim reports again with each update.
 */
const { vcpus, memoryMiB, accel, tainted } = DomainInfo.properties;
export const ShimVmInfo = Type.Object({
  vcpus, memoryMiB, accel, tainted,
  /** When QEMU started, ms since the epoch. */
  qemuStartedAt: Type.Optional(Type.Number()),
}, { additionalProperties: false });

export const Registration = Type.Object({
  name: DomainName,
  uuid: DomainUuid,
  shimPid: Type.Integer(),
  qemuPid: Type.Optional(Type.Integer()),
  socket: Type.String(),
  roSocket: Type.String(),
  adminSocket: Type.String(),
  stateFile: Type.String(),
  state: DomainState,
  reason: Type.String(),
  /** True for a shim re-attaching to a QEMU that was already running. */
  reattach: Type.Boolean(),
  info: Type.Optional(ShimVmInfo),
}, { additionalProperties: false });

export const registryProgram = defineProgram('registry', 'Shim registration with virtqemud (read-write socket only).', {
  register: proc({ args: Registration, ret: Empty, servers: aggregator, readonly: false, since: '0.1',
    description: 'Claims the VM\'s name and UUID for this connection; refused with NAME_IN_USE or UUID_IN_USE.' }),
  update: proc({ args: Type.Object({ state: DomainState, reason: Type.String(), qemuPid: Type.Optional(Type.Integer()), event: Type.Optional(Type.String()), details: Type.Optional(Type.Record(Type.String(), Type.Unknown())), info: Type.Optional(ShimVmInfo),
    /** The event's journal sequence number and time, so virtqemud pushes it as the journal holds it. */
    seq: Type.Optional(Type.Integer({ minimum: 1 })), timestamp: Type.Optional(Type.Number()) }, { additionalProperties: false }),
    ret: Empty, servers: aggregator, readonly: false, since: '0.1',
    description: 'Reports a state change of the registered VM.' }),
  unregister: proc({ args: Empty, ret: Empty, servers: aggregator, readonly: false, since: '0.1',
    description: 'Releases the registration before the shim exits.' }),
}, {}, ['rw']);
export type RegistryProgram = typeof registryProgram;
