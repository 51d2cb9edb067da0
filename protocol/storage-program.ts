// The `storage` program, served by virtstoraged: pools (directories, for now) and the volumes in
// them, with uploads and downloads as byte streams and progress events for long operations.
// Append only.
import { Type, type Static } from '@sinclair/typebox';
import { defineProgram, event, proc } from './catalogue.js';
import { SecretUuid } from './secret-program.js';
import { Empty } from './types.js';

const storaged = ['storage'] as const;

/** Pool names: as VM names. */
export const PoolName = Type.String({ pattern: '^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$', description: 'pool name' });
/** Volume names: 1–255 of letters, digits, `.`, `_`, `+`, `-`, not starting with `.` or `-` (a file name in the pool). */
export const VolumeName = Type.String({ pattern: '^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,254}$', description: 'volume name' });
export const VolumeFormat = Type.Union([Type.Literal('raw'), Type.Literal('qcow2')]);
/** A client's name for a long operation, to follow its progress and cancel it. */
export const JobId = Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'job id chosen by the client' });
const Bytes = Type.Integer({ minimum: 0, maximum: 2 ** 53 - 1 });

/** A pool as defined. */
export const PoolDefinition = Type.Object({
  name: PoolName,
  type: Type.Literal('dir'),
  /** The directory (absolute, no NUL). */
  path: Type.String({ pattern: '^/[^\\u0000]*$', maxLength: 4096 }),
}, { additionalProperties: false });

/** A pool as listed. */
export const PoolRow = Type.Object({
  name: PoolName,
  type: Type.Literal('dir'),
  path: Type.String(),
  state: Type.Union([Type.Literal('active'), Type.Literal('inactive')]),
  autostart: Type.Boolean(),
  /** Bytes, from statfs; 0 while inactive. */
  capacity: Bytes,
  allocation: Bytes,
  available: Bytes,
  volumes: Type.Integer({ minimum: 0 }),
});

/** A volume as listed and described. */
export const VolumeRow = Type.Object({
  pool: PoolName,
  name: VolumeName,
  path: Type.String(),
  /** raw or qcow2 for volumes virtstoraged made; what qemu-img detects for files put there otherwise. */
  format: Type.String(),
  /** True when virtstoraged did not make the volume and `format` is qemu-img's guess: a VM then uses its disk's own format (raw unless it says). */
  formatProbed: Type.Optional(Type.Boolean()),
  /** Virtual size in bytes. */
  capacity: Bytes,
  /** Bytes used on the host. */
  allocation: Bytes,
  encrypted: Type.Boolean(),
  /** The secret holding an encrypted volume's passphrase, when virtstoraged created it with one. */
  secret: Type.Optional(Type.String()),
  /** The backing files, nearest first (empty for a volume with no backing). */
  backingChain: Type.Array(Type.Object({ path: Type.String(), format: Type.String() })),
  /** Set when qemu-img could not read the file: why. */
  problem: Type.Optional(Type.String()),
});

const PoolRef = Type.Object({ name: PoolName }, { additionalProperties: false });
const VolRef = Type.Object({ pool: PoolName, name: VolumeName }, { additionalProperties: false });

/** A progress report of a long operation, pushed to the connection that started it. */
export const JobProgress = Type.Object({
  job: JobId,
  operation: Type.Union([Type.Literal('clone'), Type.Literal('upload'), Type.Literal('download'), Type.Literal('create')]),
  pool: PoolName,
  volume: VolumeName,
  doneBytes: Bytes,
  totalBytes: Bytes,
});

export const storageProgram = defineProgram('storage', 'Storage pools and volumes: create, clone, resize, delete, upload and download.', {
  listPools: proc({ args: Empty, ret: Type.Object({ pools: Type.Array(PoolRow) }), servers: storaged, readonly: true, since: '0.2', cli: 'pool-list',
    description: 'Every pool, active or not, with its capacity.' }),
  getPool: proc({ args: PoolRef, ret: PoolRow, servers: storaged, readonly: true, since: '0.2', cli: 'pool-info',
    description: 'One pool: state, path, capacity, allocation, available bytes.' }),
  definePool: proc({ args: Type.Object({ definition: PoolDefinition }, { additionalProperties: false }), ret: PoolRow, servers: storaged, readonly: false, since: '0.2', cli: 'pool-define',
    description: 'Defines a pool (inactive until started); the same name again replaces an inactive pool\'s definition.' }),
  undefinePool: proc({ args: PoolRef, ret: Empty, servers: storaged, readonly: false, since: '0.2', cli: 'pool-undefine',
    description: 'Forgets an inactive pool (its directory and volumes stay on disk).' }),
  startPool: proc({ args: Type.Object({ name: PoolName, build: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), ret: PoolRow, servers: storaged, readonly: false, since: '0.2', cli: 'pool-start',
    description: 'Starts a pool: checks its directory (creating it with build) and lists its volumes.' }),
  stopPool: proc({ args: PoolRef, ret: PoolRow, servers: storaged, readonly: false, since: '0.2', cli: 'pool-destroy',
    description: 'Stops a pool (its volumes stay on disk); refused with IN_USE while a running VM uses one of its volumes.' }),
  setPoolAutostart: proc({ args: Type.Object({ name: PoolName, autostart: Type.Boolean() }, { additionalProperties: false }), ret: Empty, servers: storaged, readonly: false, since: '0.2', cli: 'pool-autostart',
    description: 'Starts the pool whenever virtstoraged starts.' }),
  refreshPool: proc({ args: PoolRef, ret: PoolRow, servers: storaged, readonly: false, since: '0.2', cli: 'pool-refresh',
    description: 'Rescans the pool\'s directory for volumes.' }),
  listVolumes: proc({ args: Type.Object({ pool: PoolName }, { additionalProperties: false }), ret: Type.Object({ volumes: Type.Array(VolumeRow) }), servers: storaged, readonly: true, since: '0.2', cli: 'vol-list',
    description: 'The volumes of an active pool.' }),
  getVolume: proc({ args: VolRef, ret: VolumeRow, servers: storaged, readonly: true, since: '0.2', cli: 'vol-info',
    description: 'One volume: path, format, capacity, allocation, encryption and backing chain.' }),
  createVolume: proc({
    args: Type.Object({
      pool: PoolName, name: VolumeName, format: Type.Optional(VolumeFormat), capacity: Type.Integer({ minimum: 1, maximum: 2 ** 53 - 1 }),
      /** A qcow2 volume's backing volume, in the same or another active pool. */
      backing: Type.Optional(Type.Object({ pool: PoolName, name: VolumeName }, { additionalProperties: false })),
      /** A qcow2 volume encrypted with LUKS, its passphrase the value of this secret (from virtsecretd). */
      encryption: Type.Optional(Type.Object({ secret: SecretUuid }, { additionalProperties: false })),
    }, { additionalProperties: false }),
    ret: VolumeRow, servers: storaged, readonly: false, since: '0.2', cli: 'vol-create-as',
    description: 'Creates a volume (raw or qcow2) of the given capacity in bytes, optionally on a backing volume or LUKS-encrypted.' }),
  cloneVolume: proc({
    args: Type.Object({ pool: PoolName, source: VolumeName, name: VolumeName, thin: Type.Optional(Type.Boolean()), job: Type.Optional(JobId) }, { additionalProperties: false }),
    ret: VolumeRow, servers: storaged, readonly: false, since: '0.2', cli: 'vol-clone',
    description: 'Copies a volume in its pool (or, thin, makes a qcow2 overlay backed by it); reports progress as `progress` events for `job`.' }),
  resizeVolume: proc({ args: Type.Object({ pool: PoolName, name: VolumeName, capacity: Type.Integer({ minimum: 1, maximum: 2 ** 53 - 1 }), shrink: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    ret: VolumeRow, servers: storaged, readonly: false, since: '0.2', cli: 'vol-resize',
    description: 'Changes a volume\'s capacity in bytes; below the current size only with shrink.' }),
  deleteVolume: proc({ args: VolRef, ret: Empty, servers: storaged, readonly: false, since: '0.2', cli: 'vol-delete',
    description: 'Deletes a volume; refused with LOCK_CONFLICT, naming the VM, while a running VM uses it.' }),
  uploadVolume: proc({ args: Type.Object({ pool: PoolName, name: VolumeName, length: Bytes }, { additionalProperties: false }), ret: Empty, servers: storaged, readonly: false, stream: true, since: '0.2', cli: 'vol-upload',
    description: 'Replaces a volume\'s bytes with `length` bytes streamed by the client; the volume changes only once all have arrived.' }),
  downloadVolume: proc({ args: VolRef, ret: Type.Object({ length: Bytes }), servers: storaged, readonly: false, revealsSecret: true, stream: true, since: '0.2', cli: 'vol-download',
    description: 'Streams a volume\'s bytes to the client; refused on the read-only socket, as a VM\'s disk holds its data.' }),
  listJobs: proc({ args: Empty, ret: Type.Object({ jobs: Type.Array(Type.Intersect([JobProgress, Type.Object({ startedAt: Type.Number() })])) }), servers: storaged, readonly: true, since: '0.2', cli: 'vol-jobs',
    description: 'The long operations under way, with their progress.' }),
  cancelJob: proc({ args: Type.Object({ job: JobId }, { additionalProperties: false }), ret: Empty, servers: storaged, readonly: false, since: '0.2', cli: 'vol-job-cancel',
    description: 'Cancels a long operation: it fails with OPERATION_ABORTED and leaves nothing half-made.' }),
}, {
  progress: event({ body: JobProgress, since: '0.2', description: 'Progress of a long operation, pushed to the connection that started it (at most every 100 ms).' }),
});
export type StorageProgram = typeof storageProgram;

// Each schema above is also the name of the type it validates.
export type PoolDefinition = Static<typeof PoolDefinition>;
export type PoolRow = Static<typeof PoolRow>;
export type VolumeRow = Static<typeof VolumeRow>;
export type JobProgress = Static<typeof JobProgress>;
