// Save, restore and snapshot procedures of the `virtq` program (issue 16; migration has its
// own). The per-VM ones are served by the shim (and forwarded by virtqemud); restore and the
// managed-save cleanup are virtqemud's, which reads the image's header before any shim starts.
// Append only.
import { Type, type Static, type TProperties } from '@sinclair/typebox';
import { DomainName } from './definition.js';
import { proc } from './catalogue.js';
import { DomainRef, DomainRow, Empty, StateResult } from './types.js';

const both = ['shim', 'aggregator'] as const;
const aggregator = ['aggregator'] as const;
const ref = <P extends TProperties>(extra: P) => Type.Object({ name: DomainName, ...extra }, { additionalProperties: false });

/** An absolute path on the host the daemons run on. */
const HostPath = Type.String({ pattern: '^/', minLength: 2, maxLength: 4096, description: 'absolute path on the VM\'s host' });

/** Per-VM save procedures. */
export const saveVmProcs = {
  save: proc({ args: ref({ file: HostPath }), ret: StateResult, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.3', cli: 'save',
    description: 'Saves the VM\'s memory state and definition to a file and stops it (reason saved); restore resumes it where it was.' }),
  managedSave: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.3', cli: 'managedsave',
    description: 'Saves the VM\'s state under virtqemud\'s root and stops it; the next start resumes from it.' }),
};

/** Host save procedures (virtqemud only). */
export const saveHostProcs = {
  restore: proc({ args: Type.Object({ file: HostPath, paused: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), ret: DomainRow,
    servers: aggregator, readonly: false, embed: 'unavailable', since: '0.3', cli: 'restore',
    description: 'Starts a VM from a save image, running (or paused) where it was saved; the image\'s header is checked before any QEMU runs.' }),
  managedSaveRemove: proc({ args: DomainRef, ret: Empty, servers: aggregator, readonly: false, embed: 'unavailable', since: '0.3', cli: 'managedsave-remove',
    description: 'Removes the VM\'s managed save image: its next start boots afresh.' }),
};

export type SaveVmProcs = typeof saveVmProcs;
export type HostPath = Static<typeof HostPath>;
