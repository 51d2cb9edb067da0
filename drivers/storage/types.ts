// The storage driver's vocabulary: pools, volumes, what an operation reports and how it is
// cancelled. Plain data only; the storage daemon maps these to and from its wire schemas.

/** How a `dir` pool is configured: a directory holding one file per volume. */
export interface PoolConfig {
  /** The pool's name, as the daemon knows it (used in error messages). */
  name: string;
  type: 'dir';
  /** Absolute, normalised path of the pool's directory. */
  path: string;
}

/** Space of the filesystem holding a pool, in bytes, from statfs(2). */
export interface PoolInfo {
  /** Size of the filesystem. */
  capacity: number;
  /** Bytes in use on the filesystem (by anything, not only this pool's volumes). */
  allocation: number;
  /** Bytes an unprivileged writer can still use. */
  available: number;
}

/** The image formats this driver creates. */
export type VolumeFormat = 'raw' | 'qcow2';

/**
 * An image format as qemu-img names it: `raw` or `qcow2` for volumes this driver made, anything
 * qemu-img detects (`vmdk`, `vdi`, ...) for files put in the pool by other means, and `unknown`
 * when qemu-img could not read the file at all (then `VolumeInfo.problem` says why).
 */
export type ImageFormat = VolumeFormat | (string & {});

/** One image a volume reads through: its path as the overlay records it, resolved. */
export interface BackingRef {
  path: string;
  format: ImageFormat;
}

/** A volume as `info()` and `list()` report it. */
export interface VolumeInfo {
  name: string;
  /** Absolute path of the volume's file (symlinks inside the pool resolved). */
  path: string;
  format: ImageFormat;
  /** Virtual size the guest sees, in bytes. */
  capacity: number;
  /** Bytes the file occupies on disk (st_blocks × 512). */
  allocation: number;
  /** The images below this one, nearest first; empty when it has no backing file. */
  backingChain: BackingRef[];
  /** True when the image is encrypted (qcow2 with LUKS). */
  encrypted: boolean;
  /** Set when qemu-img could not read the file: why (the volume is still listed). */
  problem?: string;
}

/** Cancellation and progress of a long operation (clone, upload, download). */
export interface OpControl {
  /** Aborting it fails the operation with OPERATION_ABORTED and rolls it back. */
  signal?: AbortSignal;
  /**
   * Called as the operation advances, often (every chunk): a caller that forwards progress
   * (over the wire, to a terminal) throttles it itself.
   */
  onProgress?(doneBytes: number, totalBytes: number): void;
  /**
   * A create or clone calls it once it has checked that the new name is free, before it builds
   * the file (a plain raw create: once its link has taken the name, while the file's fsync runs):
   * the caller may write what it keeps about the volume meanwhile. When it returns a promise (that
   * write), the pool waits for it before it lets go of the new name, and a rejection removes the
   * new volume and fails the operation: no reader of the name (a clone of it) can have started.
   */
  onClaimed?(): Promise<void> | void;
}

/** A passphrase for a LUKS-encrypted qcow2. Never logged, never put on a command line. */
export interface VolumeEncryption {
  passphrase: Uint8Array;
  /**
   * Milliseconds of PBKDF work per key slot at creation (qemu's `encrypt.iter-time`, default
   * 2000). The same time is paid at every open; lower it only for tests.
   */
  iterTimeMs?: number;
}

/** What `create()` makes. */
export interface CreateVolumeSpec {
  name: string;
  format: VolumeFormat;
  capacityBytes: number;
  /** qcow2 only: the image this one reads through until written (absolute path). */
  backing?: { path: string; format: ImageFormat };
  /** qcow2 only: encrypt with LUKS under this passphrase. */
  encryption?: VolumeEncryption;
}

/** How `clone()` copies: `full` makes an independent copy, `thin` a qcow2 overlay of the source. */
export type CloneMode = 'full' | 'thin';

/** Options of `resize()`. */
export interface ResizeOptions {
  /** Allow a capacity below the current one (data past the new end is lost). */
  shrink: boolean;
  /** Needed for an encrypted volume: qemu-img must unlock it to resize it. */
  encryption?: { passphrase: Uint8Array };
}

/** Options of `upload()`. */
export interface UploadOptions {
  /**
   * The number of bytes the caller will send, when it knows it: checked against the volume's
   * size before anything is written, used as progress total, and a stream that ends short of
   * it is an aborted upload (the volume is left unchanged).
   */
  lengthBytes?: number;
  /**
   * Called with each chunk of `data` once its bytes are copied out: its memory may be read into
   * again (ByteStream.recycle, so a socket's reads reuse a few buffers instead of fresh ones).
   */
  recycle?(chunk: Uint8Array): void;
  /**
   * Lets `data`'s source read large chunks straight into the upload's staging buffers: memory for
   * `n` bytes at stream offset `offset`, or undefined (ByteStream.readInto; undefined: no more).
   * A chunk so placed must come out of `data` as a view of that memory, in stream order.
   */
  readInto?(sink: ((offset: number, n: number) => Uint8Array | undefined) | undefined): void;
  /**
   * Called once every byte is in the upload's temp file, before that file replaces the volume's:
   * with the temp file's inode (the volume's from the replacement on) and the format qemu-img
   * reads in it. A throw abandons the upload, the volume unchanged. What the caller records here
   * is on the disk before the volume changes, and tells, after a kill, which file it is about.
   */
  beforeCommit?(staged: StagedUpload): Promise<void>;
}

/** An upload's bytes in their temp file, just before they replace the volume's (UploadOptions.beforeCommit). */
export interface StagedUpload {
  /** The temp file's inode number, in decimal: the volume's once it is replaced. */
  ino: string;
  /** What qemu-img reads in it: 'unknown' when it cannot open it. */
  format: string;
}

/** Options of `download()`. */
export interface DownloadOptions {
  /**
   * Yield chunks from two buffers used in turn, each valid only until the iteration after the
   * next: for a consumer that copies each chunk before asking for more (virtstoraged frames it
   * at once). Reading a volume then allocates nothing per chunk (no garbage to collect, no
   * fresh pages to fault in). Default: a fresh buffer per chunk, the consumer's to keep.
   */
  reuseBuffers?: boolean;
}

/** A volume's bytes being read: iterate it once; `close()` when not iterating to the end. */
export interface VolumeDownload extends AsyncIterable<Uint8Array> {
  /** The file's size when the download was opened: the number of bytes it yields. */
  readonly totalBytes: number;
  close(): Promise<void>;
}

/** What `recover()` found and did. */
export interface RecoverReport {
  /** Names of the temp files and private secret dirs it removed. */
  removed: string[];
}

/**
 * One storage pool, as the storage daemon drives it (DirPool is the `dir` implementation; a
 * fake or another pool type implements the same). Every method throws VirtqError: INVALID_ARG
 * for bad input, NO_STORAGE_POOL / NO_STORAGE_VOL for what is missing, ALREADY_EXISTS, IN_USE
 * (another change of the volume under way, or a volume reading through it), NO_SPACE,
 * OPERATION_ABORTED (signal), OPERATION_FAILED (qemu-img or the filesystem failed).
 */
/**
 * Runs a removal of the volume at `path` (resolved by its pool) while no VM may use it, handing
 * it the confirm to call once the file is moved aside (storaged/in-use.ts's InUseGuard.removing).
 */
export type RemovalGuard = (path: string, remove: (confirm: (() => Promise<void>) | undefined) => Promise<void>) => Promise<void>;

export interface StoragePool {
  readonly config: Readonly<PoolConfig>;
  /** Checks the pool's storage is usable (its directory exists and is a directory). */
  check(): Promise<void>;
  /** Makes the pool's storage (mkdir -p). */
  build(): Promise<void>;
  info(): Promise<PoolInfo>;
  list(): Promise<VolumeInfo[]>;
  /** The absolute path a VM opens for the volume. */
  path(name: string): Promise<string>;
  volumeInfo(name: string): Promise<VolumeInfo>;
  create(spec: CreateVolumeSpec, ctl?: Pick<OpControl, 'onClaimed'>): Promise<VolumeInfo>;
  clone(source: string, name: string, options: { mode: CloneMode }, ctl?: OpControl): Promise<VolumeInfo>;
  resize(name: string, capacityBytes: number, options: ResizeOptions): Promise<VolumeInfo>;
  /**
   * With `confirm`, the file is first moved to a temp name, then `confirm` runs; when it throws,
   * the file is put back under its name and the error passes through (see storaged/in-use.ts).
   * With `guard`, the pool resolves the volume once and the guard runs the removal (and gives it
   * its confirm) for that resolved path. `onGone` (which must not throw) is called once the name
   * is gone, while the directory's fsync runs: the caller may forget what it keeps about the
   * volume meanwhile.
   */
  delete(name: string, confirm?: () => Promise<void>, guard?: RemovalGuard, onGone?: () => void): Promise<void>;
  upload(name: string, data: AsyncIterable<Uint8Array>, ctl?: OpControl, options?: UploadOptions): Promise<VolumeInfo>;
  download(name: string, ctl?: OpControl, options?: DownloadOptions): Promise<VolumeDownload>;
  /** Resolves when the passphrase unlocks the encrypted volume; INVALID_ARG when it does not. */
  checkPassphrase(name: string, passphrase: Uint8Array): Promise<void>;
  /** Removes what a killed daemon left (temp files); call before any other operation. */
  recover(): Promise<RecoverReport>;
}
