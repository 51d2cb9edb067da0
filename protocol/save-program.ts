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

/** A snapshot name: the same characters as a VM name. */
export const SnapshotName = Type.String({ pattern: '^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$', description: 'snapshot name' });

/** One snapshot's metadata, as kept under virtqemud's root. */
export const SnapshotInfo = Type.Object({
  name: SnapshotName,
  vm: DomainName,
  /** The snapshot that was current when this one was taken; absent for a root. */
  parent: Type.Optional(SnapshotName),
  /** Milliseconds since the epoch. */
  createdAt: Type.Number(),
  /** The VM's state when taken: running or paused (with memory), or the state of a disk-only one. */
  state: Type.String(),
  /** True when the memory state is in it (revert resumes the VM there). */
  memory: Type.Boolean(),
  /** internal: inside each qcow2 disk; external: the disks' images as they were, each under a new qcow2 overlay. */
  kind: Type.Union([Type.Literal('internal'), Type.Literal('external')]),
  /**
   * The disks in it: `path` is the image the snapshot holds (an external snapshot's backing file);
   * `overlay` (external only) the qcow2 file the disk writes to since, `overlaySource` when that is
   * a volume of virtstoraged. `format` and `source` (external, since 0.4) are the image's format and
   * volume, which deleting the snapshot moves the disk back onto.
   */
  disks: Type.Array(Type.Object({
    target: Type.String(), path: Type.String(),
    overlay: Type.Optional(Type.String()),
    overlaySource: Type.Optional(Type.Object({ pool: Type.String(), volume: Type.String() })),
    format: Type.Optional(Type.String()),
    source: Type.Optional(Type.Object({ pool: Type.String(), volume: Type.String() })),
  })),
  /** True for the snapshot the VM was last taken at or reverted to. */
  current: Type.Boolean(),
});
export type SnapshotInfo = Static<typeof SnapshotInfo>;

/** An external snapshot's merge, capped (optional; since 0.4): MiB/s, as migrate's bandwidth. */
const MergeBandwidth = Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'cap the merge of an external snapshot\'s overlays at this many MiB/s (default: unlimited)' }));

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

/** Per-VM snapshot procedures (after the save ones on the wire). */
export const snapshotVmProcs = {
  snapshotCreate: proc({ args: ref({ snapshot: SnapshotName, noMemory: Type.Optional(Type.Boolean()), diskOnly: Type.Optional(Type.Boolean()) }), ret: SnapshotInfo,
    servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.3', cli: 'snapshot-create-as',
    description: 'Takes an internal snapshot of every writable disk (all must be qcow2), with the memory state unless noMemory; with diskOnly an external one: each writable disk (raw or qcow2) goes on a new qcow2 overlay (a volume disk on a new volume of its pool) and the VM\'s definition follows; of a shut-off defined VM virtqemud makes the overlays (a volume disk\'s through virtstoraged) and changes the definition, all or nothing.' }),
  snapshotRevert: proc({ args: ref({ snapshot: SnapshotName }), ret: StateResult, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.3', cli: 'snapshot-revert',
    description: 'Reverts the VM to a snapshot with memory: its disks and memory, running or paused as it was taken. A snapshot without memory of a running VM is refused; a disk-only external one in any state (the message says how to go back by hand).' }),
  snapshotDelete: proc({ args: ref({ snapshot: SnapshotName, metadata: Type.Optional(Type.Boolean()), bandwidth: MergeBandwidth }), ret: Empty, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.3', cli: 'snapshot-delete',
    description: 'Deletes a snapshot from the disks and its metadata; its children take its parent. With metadata only its metadata goes (any VM state). An external snapshot must be the top of its chain (no snapshot taken after it): its overlays are merged into the images under them (block-commit of a running or paused VM, shown by domjobinfo and stopped by domjobabort; qemu-img commit of a shut-off one), the VM and its definition go back onto those images and the overlays are removed. bandwidth (since 0.4, as virsh blockcommit --bandwidth) caps that merge\'s copy in MiB/s (block-commit\'s speed, qemu-img commit -r); an internal snapshot\'s delete has no copy to cap and ignores it.' }),
};

/** Host snapshot procedures: the metadata, readable whether the VM runs or not. */
export const snapshotHostProcs = {
  snapshotList: proc({ args: DomainRef, ret: Type.Object({ snapshots: Type.Array(SnapshotInfo) }), servers: aggregator, readonly: true, embed: 'unavailable', since: '0.3', cli: 'snapshot-list',
    description: 'The VM\'s snapshots, oldest first, each with its parent (whether the VM runs or not).' }),
  snapshotInfo: proc({ args: ref({ snapshot: SnapshotName }), ret: SnapshotInfo, servers: aggregator, readonly: true, embed: 'unavailable', since: '0.3', cli: 'snapshot-info',
    description: 'One snapshot\'s metadata.' }),
};

export type SaveVmProcs = typeof saveVmProcs;
export type HostPath = Static<typeof HostPath>;
