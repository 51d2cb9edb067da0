// Schemas shared by several programs: VM states and reasons, listing rows, lifecycle events.
import { Type, type Static } from '@sinclair/typebox';
import { DomainName, DomainUuid } from './definition.js';

/** Lifecycle states of a VM, as the shim's state machine knows them. */
export const DomainState = Type.Union([
  Type.Literal('starting'),
  Type.Literal('running'),
  Type.Literal('paused'),
  Type.Literal('shutting-down'),
  Type.Literal('shutoff'),
  Type.Literal('crashed'),
], { description: 'lifecycle state' });
export type DomainState = Static<typeof DomainState>;

/** Every state, in the order of the schema. */
export const DOMAIN_STATES: readonly DomainState[] = DomainState.anyOf.map((t) => t.const);

/** States in which a QEMU process exists. */
export const ACTIVE_STATES: ReadonlySet<DomainState> = new Set(['starting', 'running', 'paused', 'shutting-down']);

export const Empty = Type.Object({}, { additionalProperties: false });
export const AnyObject = Type.Record(Type.String(), Type.Unknown());

/** Names the VM a per-VM call is about. */
export const DomainRef = Type.Object({ name: DomainName }, { additionalProperties: false });

export const StateResult = Type.Object({
  state: DomainState,
  /** libvirt-style reason, e.g. booted, user, shutdown, destroyed, crashed. */
  reason: Type.String(),
});
export type StateResult = Static<typeof StateResult>;

/** One row of the host listing. */
export const DomainRow = Type.Object({
  name: DomainName,
  uuid: DomainUuid,
  state: DomainState,
  reason: Type.String(),
  persistent: Type.Boolean(),
  autostart: Type.Boolean(),
  /** False when the VM's shim is registered but unreachable (the VM itself may still run). */
  shimUp: Type.Boolean(),
  shimSocket: Type.Optional(Type.String()),
  shimPid: Type.Optional(Type.Integer()),
  qemuPid: Type.Optional(Type.Integer()),
});
export type DomainRow = Static<typeof DomainRow>;

export const LifecycleEventKind = Type.Union([
  Type.Literal('defined'), Type.Literal('undefined'), Type.Literal('started'), Type.Literal('suspended'),
  Type.Literal('resumed'), Type.Literal('shutdown'), Type.Literal('stopped'), Type.Literal('crashed'),
  Type.Literal('reset'), Type.Literal('device-added'), Type.Literal('device-removed'), Type.Literal('shim-lost'),
  Type.Literal('shim-attached'), Type.Literal('tainted'),
  // A disk lease taken (start, hot-plug) or given back (exit, detach): details name the disk,
  // its path, the lock manager's resource and the mode.
  Type.Literal('lease-acquired'), Type.Literal('lease-released'),
]);
export type LifecycleEventKind = Static<typeof LifecycleEventKind>;

/** Every lifecycle event kind, in the order of the schema. */
export const LIFECYCLE_EVENT_KINDS: readonly LifecycleEventKind[] = LifecycleEventKind.anyOf.map((t) => t.const);

/** A lifecycle event, from a shim or virtqemud. */
export const LifecycleEvent = Type.Object({
  name: DomainName,
  uuid: DomainUuid,
  event: LifecycleEventKind,
  state: DomainState,
  reason: Type.String(),
  /** Milliseconds since the epoch. */
  timestamp: Type.Number(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** The event's number in the VM's journal (from 1, per VM name); absent for events no journal holds (defined, undefined). */
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
});
export type LifecycleEvent = Static<typeof LifecycleEvent>;
