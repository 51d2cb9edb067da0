// Live migration between two virtqemud hosts (or roots): the per-VM procedures the source shim
// and the destination shim serve, and the one host procedure the destination virtqemud serves.
// The protocol and the lease handover are described in docs/decisions/0018-live-migration.md.
// Append only.
import { Type, type Static, type TProperties } from '@sinclair/typebox';
import { Definition, DomainName } from './definition.js';
import { proc } from './catalogue.js';
import { shimSockets, type Layout } from './paths.js';
import { DomainRef, DomainRow, StateResult } from './types.js';

const both = ['shim', 'aggregator'] as const;
const ref = <P extends TProperties>(extra: P) =>
  Type.Object({ name: DomainName, ...extra }, { additionalProperties: false });

/** How the memory stream travels: a unix socket beside the destination shim's, or a loopback TCP port the destination's QEMU chooses. */
export const MigrationTransport = Type.Union([Type.Literal('unix'), Type.Literal('tcp')], { description: 'the memory stream: unix (a socket beside the destination shim; the default) or tcp (a loopback port the destination chooses)' });
export type MigrationTransport = Static<typeof MigrationTransport>;

/** What `migrate` is asked to do. */
export const MigrateArgs = ref({
  destUri: Type.String({ minLength: 1, maxLength: 4096, description: 'the destination virtqemud (qemu:///system, qemu:///system?root=DIR, ...?socket=PATH)' }),
  live: Type.Optional(Type.Boolean({ description: 'keep the guest running during the transfer (otherwise it is paused first)' })),
  persistent: Type.Optional(Type.Boolean({ description: 'also store the definition on the destination' })),
  undefineSource: Type.Optional(Type.Boolean({ description: 'remove the stored definition from the source once the VM runs on the destination' })),
  timeoutSec: Type.Optional(Type.Number({ minimum: 1, maximum: 86_400, description: 'pause the guest after this long so the migration converges' })),
  bandwidth: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'cap the transfer at this many MiB/s (default: unlimited)' })),
  maxDowntimeMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_000_000, description: 'the longest pause QEMU may plan for at switchover (default 300 ms)' })),
  autoConverge: Type.Optional(Type.Boolean({ description: 'slow the vCPUs down when the guest dirties memory faster than it is sent' })),
  transport: Type.Optional(MigrationTransport),
});
export type MigrateArgs = Static<typeof MigrateArgs>;

/** How a migration ended on the source. */
export const MigrateResult = Type.Object({
  state: StateResult.properties.state,
  reason: Type.String(),
  /** From `migrate` to the guest running on the destination. */
  totalMs: Type.Number(),
  /** How long the guest was paused at switchover, as QEMU measured it. */
  downtimeMs: Type.Optional(Type.Number()),
  /** Bytes of guest memory sent. */
  transferredBytes: Type.Number(),
});
export type MigrateResult = Static<typeof MigrateResult>;

/** A VM's current job (a migration, or the merge of an external snapshot), for `domjobinfo`. */
export const JobInfo = Type.Object({
  /** `none` when no job runs; `migration`; `block-commit` (since 0.4) while deleting an external snapshot merges its overlays. */
  type: Type.Union([Type.Literal('none'), Type.Literal('migration'), Type.Literal('block-commit')]),
  /**
   * QEMU's migration status (`setup`, `active`, `pre-switchover`, `device`, `completed`, `failed`, `cancelled`),
   * a block-commit's job status (`running`, `ready`, `waiting`, `pending`, `concluded`), or `none`.
   */
  status: Type.String(),
  elapsedMs: Type.Number(),
  totalBytes: Type.Number(),
  transferredBytes: Type.Number(),
  remainingBytes: Type.Number(),
  rateBytesPerSec: Type.Number(),
  /** QEMU's estimate of the pause at switchover. */
  expectedDowntimeMs: Type.Optional(Type.Number()),
  /** The pause at switchover, once it is over. */
  downtimeMs: Type.Optional(Type.Number()),
  /** How often dirty memory has been sent again. */
  dirtySyncCount: Type.Number(),
});
export type JobInfo = Static<typeof JobInfo>;

/** What the destination's prepare answers: where its QEMU listens for the stream. */
export const PrepareResult = Type.Object({
  uri: Type.String(),
  domain: DomainRow,
  /**
   * Since 0.4: the destination takes `migrateSwitchover` as soon as the source's QEMU goes on past
   * `pre-switchover` (its shim then runs the guest the moment the last state is loaded); absent or
   * false (an etcd fleet, whose cluster-wide claim moves only once the source completed, or an older
   * destination): only after the source reports `completed`.
   */
  switchoverEarly: Type.Optional(Type.Boolean()),
  /**
   * Since 0.5: `migrateSwitchover` takes `claim: true` (the destination leases the disks itself, as
   * the switchover's first step), so a source whose prepare answered switchoverEarly may go on past
   * `pre-switchover` as soon as it has released its leases, and the claim overlaps the last state's
   * transfer instead of holding the guest paused (decision 0018, session 22). Absent: the source claims
   * (`migrateIncomingClaim`) before it goes on.
   */
  switchoverClaims: Type.Optional(Type.Boolean()),
});
export type PrepareResult = Static<typeof PrepareResult>;

/** A switchover step's arguments: the VM, and whether the destination takes the disk leases first. */
export const SwitchoverArgs = ref({
  /** Since 0.5: lease every disk before running the guest (as migrateIncomingClaim; LOCK_CONFLICT when one is held, and the guest does not run). */
  claim: Type.Optional(Type.Boolean()),
});
export type SwitchoverArgs = Static<typeof SwitchoverArgs>;

/** Per-VM procedures of migration (served by shims, forwarded by virtqemud by name). */
export const migrationVmProcs = {
  migrate: proc({ args: MigrateArgs, ret: MigrateResult, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.3', cli: 'migrate',
    description: 'Moves the running VM to another virtqemud: memory over a stream the destination listens on, disk leases handed over at switchover.' }),
  getJobInfo: proc({ args: DomainRef, ret: JobInfo, servers: both, readonly: true, perVm: true, since: '0.3', cli: 'domjobinfo',
    description: 'Progress of the VM\'s running job (a migration: bytes remaining, transfer rate, expected downtime; or the block-commit of a snapshot delete: bytes merged and remaining).' }),
  abortJob: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: false, perVm: true, since: '0.3', cli: 'domjobabort',
    description: 'Cancels the VM\'s running migration or snapshot-delete merge; the VM goes on running where it was (on its overlays, for a merge).' }),
  migrateIncomingClaim: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: false, perVm: true, states: ['paused'], since: '0.3',
    description: 'Destination side of a migration: leases every disk for the incoming QEMU (the source has given its leases up); LOCK_CONFLICT when one is held.' }),
  migrateIncomingFinish: proc({ args: SwitchoverArgs, ret: StateResult, servers: both, readonly: false, perVm: true, states: ['paused'], since: '0.3',
    description: 'Destination side of a migration: with `claim`, first leases every disk (as migrateIncomingClaim); waits for the incoming state to be complete, then runs the guest (resumed: migrated).' }),
  migrateIncomingAbort: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: false, perVm: true, since: '0.3',
    description: 'Destination side of a migration: stops the incoming QEMU, gives its leases back and frees the name.' }),
};

/** Host procedures of migration (virtqemud only). */
export const migrationHostProcs = {
  migratePrepare: proc({ args: Type.Object({ definition: Definition, transport: Type.Optional(MigrationTransport) }, { additionalProperties: false }), ret: PrepareResult, servers: ['aggregator'], readonly: false, embed: 'unavailable', since: '0.3',
    description: 'Destination side of a migration: claims the name and UUID, starts a shim whose QEMU waits for the incoming stream, and answers where it listens.' }),
  migrateSwitchover: proc({ args: SwitchoverArgs, ret: StateResult, servers: ['aggregator'], readonly: false, embed: 'unavailable', since: '0.4',
    description: 'Destination side of a migration, once the source completed (or, when prepare answered switchoverEarly, once the source\'s QEMU went on past pre-switchover): in an etcd fleet moves the VM\'s cluster-wide claim here (one Txn), then runs the guest (migrateIncomingFinish, with `claim` passed on: as soon as the last state is loaded); a failure leaves the claim with the source.' }),
};

/** The unix socket the destination QEMU listens on for the migration stream (beside the shim's sockets). */
export function migrationSocket(layout: Layout, name: string): string {
  return shimSockets(layout, name).console.replace(/-console\.sock$/, '-migrate.sock');
}

/**
 * The key, in the details of a VM's stop (its state file), of a migration asked to remove the
 * source's definition (--undefine-source) that has not yet: a virtqemud that starts and finds it
 * with the shim gone removes the definition itself (aggregator/discovery.ts).
 */
export const UNDEFINE_SOURCE_NOTE = 'undefineSource';
