// Schemas of the event journal on the wire (decision 0019): where a subscription resumes, a VM's
// history, and the last stop dominfo shows. Sequence numbers count per VM name from 1.
import { Type, type Static } from '@sinclair/typebox';
import { DomainName, NAME_PATTERN } from './definition.js';
import { DomainState, LifecycleEvent } from './types.js';

/** A sequence number a client may send: 0 means "from the start". */
const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** Milliseconds since the epoch. */
const Time = Type.Number({ minimum: 0, maximum: 8.64e15 });

/** `subscribeEvents`' arguments: whose events, and from where to replay before going live. */
export const SubscribeEventsArgs = Type.Object({
  name: Type.Optional(DomainName),
  /** Replays this VM's events after this sequence number first (needs `name`). */
  since: Type.Optional(Seq),
  /** Replays the events written after this time first (one VM or every VM). */
  sinceTime: Type.Optional(Time),
  /** Host-wide resume: per VM, the last sequence number the client has; VMs it does not name replay from the start. */
  sinceByVm: Type.Optional(Type.Record(Type.String({ pattern: NAME_PATTERN }), Seq, { maxProperties: 100_000 })),
}, { additionalProperties: false });
export type SubscribeEventsArgs = Static<typeof SubscribeEventsArgs>;

/** `subscribeEvents`' result: each replayed (or subscribed) VM's last sequence number, to resume from. */
export const SubscribeEventsResult = Type.Object({
  last: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
}, { additionalProperties: false });
export type SubscribeEventsResult = Static<typeof SubscribeEventsResult>;

/** `getEvents`' arguments: a VM's journal, after a sequence number or a time, at most `limit` (the newest). */
export const GetEventsArgs = Type.Object({
  name: DomainName,
  since: Type.Optional(Seq),
  sinceTime: Type.Optional(Time),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
}, { additionalProperties: false });

/** `getEvents`' result. */
export const EventHistory = Type.Object({
  events: Type.Array(LifecycleEvent),
  /** The last sequence number in the VM's journal (0: none). */
  last: Type.Integer({ minimum: 0 }),
  /** Records of the journal that were torn or corrupt and skipped. */
  dropped: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });
export type EventHistory = Static<typeof EventHistory>;

/** How the VM last stopped, from its journal. */
export const LastStop = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  state: DomainState,
  reason: Type.String(),
  timestamp: Type.Number(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
}, { additionalProperties: false });
export type LastStop = Static<typeof LastStop>;
