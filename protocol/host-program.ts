// The `virtq` program: the per-VM procedures plus what only virtqemud serves (the host listing,
// lookups, persistent definitions, starting VMs). Append only.
import { Type, type Static } from '@sinclair/typebox';
import { Definition, DomainName, DomainUuid } from './definition.js';
import { defineProgram, event, proc } from './catalogue.js';
import { DomainRef, DomainRow, DomainState, Empty, LifecycleEvent } from './types.js';
import { firstVmProcs, laterVmProcs } from './vm-program.js';
import { saveHostProcs, saveVmProcs, snapshotHostProcs, snapshotVmProcs } from './save-program.js';
import { migrationHostProcs, migrationVmProcs } from './migration-procs.js';

const aggregator = ['aggregator'] as const;

export const ListFilter = Type.Object({
  active: Type.Optional(Type.Boolean()),
  inactive: Type.Optional(Type.Boolean()),
  persistent: Type.Optional(Type.Boolean()),
  transient: Type.Optional(Type.Boolean()),
  state: Type.Optional(DomainState),
}, { additionalProperties: false });
/** Listing filters (all given ones must hold). */
export type ListFilter = Static<typeof ListFilter>;

const hostProcs = {
  listDomains: proc({ args: ListFilter, ret: Type.Object({ domains: Type.Array(DomainRow), hidden: Type.Optional(Type.Integer({ minimum: 0, description: 'VMs left out by access rules (a count, never names)' })) }), servers: aggregator, readonly: true, embed: 'router', since: '0.1', cli: 'list',
    description: 'Every VM on the host (or under the root), from virtqemud\'s live cache.' }),
  lookupByName: proc({ args: DomainRef, ret: DomainRow, servers: aggregator, readonly: true, embed: 'router', since: '0.1',
    description: 'One VM by name, with its shim\'s socket for direct connection.' }),
  lookupByUUID: proc({ args: Type.Object({ uuid: DomainUuid }, { additionalProperties: false }), ret: DomainRow, servers: aggregator, readonly: true, embed: 'router', since: '0.1',
    description: 'One VM by UUID, with its shim\'s socket for direct connection.' }),
  define: proc({ args: Type.Object({ definition: Definition }, { additionalProperties: false }), ret: DomainRow, servers: aggregator, readonly: false, embed: 'unavailable', since: '0.1', cli: 'define',
    description: 'Stores a persistent definition (new, or replacing one with the same name and UUID).' }),
  undefine: proc({ args: Type.Object({ name: DomainName, snapshotsMetadata: Type.Optional(Type.Boolean({ description: 'also forget the VM\'s snapshot metadata (required when it has snapshots)' })) }, { additionalProperties: false }), ret: Empty, servers: aggregator, readonly: false, embed: 'unavailable', since: '0.1', cli: 'undefine',
    description: 'Removes a persistent definition (a running VM becomes transient); forgets a stopped transient VM and the record of how it ended.' }),
  create: proc({ args: Type.Object({ definition: Definition, paused: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), ret: DomainRow, servers: aggregator, readonly: false, embed: 'router', since: '0.1', cli: 'create',
    description: 'Starts a transient VM from a definition.' }),
  start: proc({ args: Type.Object({ name: DomainName, paused: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), ret: DomainRow, servers: aggregator, readonly: false, embed: 'unavailable', since: '0.1', cli: 'start',
    description: 'Starts a defined VM.' }),
  setAutostart: proc({ args: Type.Object({ name: DomainName, autostart: Type.Boolean() }, { additionalProperties: false }), ret: Empty, servers: aggregator, readonly: false, embed: 'unavailable', since: '0.1', cli: 'autostart',
    description: 'Marks a defined VM to be started when virtqemud starts.' }),
};

/** The `virtq` program: per-VM and host procedures. */
export const virtqProgram = defineProgram('virtq', 'Per-VM lifecycle, devices and stats, and the host listing and definitions.', { ...firstVmProcs, ...hostProcs, ...laterVmProcs, ...saveVmProcs, ...saveHostProcs, ...snapshotVmProcs, ...snapshotHostProcs, ...migrationVmProcs, ...migrationHostProcs }, {
  lifecycle: event({ body: LifecycleEvent, since: '0.1', description: 'A VM changed state; pushed to connections that called subscribeEvents.' }),
});
export type VirtqProgram = typeof virtqProgram;
