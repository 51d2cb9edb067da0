// The operations that make or change a volume's file: create, clone (thin overlay or full
// copy), resize and upload. Each builds under a temp name and commits (volume-files.ts), so a
// failure, an abort or a kill leaves the final name as it was.
import { constants, type BigIntStats } from 'node:fs';
import { chmod, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname, basename, isAbsolute } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { supportsDirectIo } from './direct-io.js';
import type { FileCopier } from './file-copy.js';
import { probedFormat, type ImageInfo } from './image-info.js';
import { convertArgs, createArgs, resizeArgs, type SecretArgs } from './qemu-img-args.js';
import { checkQcow2Capacity, writeQcow2 } from './qcow2-create.js';
import { abortedError, type QemuImg } from './qemu-img.js';
import { writeStream } from './transfer.js';
import type { CloneMode, CreateVolumeSpec, OpControl, ResizeOptions, UploadOptions, VolumeFormat } from './types.js';
import { buildVolumeFile, describe, type VolumeRef } from './volume-files.js';
import { makeSparseVolume } from './sparse-volume.js';
import type { ResolvedVolume } from './volume-lookup.js';
import type { PoolFs } from './pool-fs.js';
import { checkVolumeName } from './volume-name.js';

/** open(2) flags of an upload's temp file where the pool takes O_DIRECT ('wx' plus O_DIRECT; see staged-writer.ts). */
const O_CREATE_DIRECT = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT;

/** Mode of the files this driver makes: the VM's QEMU runs as the daemon's user. */
export const VOLUME_FILE_MODE = 0o600;

/** What the operations need of their pool. */
export interface OpsContext {
  pool: string;
  dir: string;
  qemuImg: QemuImg;
  /** Makes a full clone's byte-for-byte copies (cp). */
  copier: FileCopier;
  /** The pool's metadata calls (pool-fs.ts). */
  fs: PoolFs;
  /** Fresh temp names for the pool's directory (volume-files.ts's TempNames). */
  tempName: () => string;
  /** Runs `fn` with a passphrase held in a private file (secret-file.ts). */
  withSecret<T>(passphrase: Uint8Array, fn: (secret: SecretArgs) => Promise<T>): Promise<T>;
}

const isFormat = (f: unknown): f is VolumeFormat => f === 'raw' || f === 'qcow2';

function checkCapacity(bytes: unknown, field: string): asserts bytes is number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw new VirtqError('INVALID_ARG', `${field} must be a whole number of bytes ≥ 0, got ${String(bytes)}`, { details: { field } });
  }
}

/** Throws INVALID_ARG naming the field when `spec` cannot be created. */
export function checkCreateSpec(spec: CreateVolumeSpec): void {
  checkVolumeName(spec.name);
  if (!isFormat(spec.format)) throw new VirtqError('INVALID_ARG', `format must be "raw" or "qcow2", got ${JSON.stringify(spec.format)}`, { details: { field: 'format' } });
  checkCapacity(spec.capacityBytes, 'capacityBytes');
  if (spec.format === 'qcow2') checkQcow2Capacity(spec.capacityBytes);
  if (spec.backing !== undefined) {
    if (spec.format !== 'qcow2') throw new VirtqError('INVALID_ARG', `volume ${JSON.stringify(spec.name)}: only a qcow2 volume can have a backing image`, { details: { field: 'backing' } });
    if (typeof spec.backing.path !== 'string' || !isAbsolute(spec.backing.path)) {
      throw new VirtqError('INVALID_ARG', `backing.path must be an absolute path, got ${JSON.stringify(spec.backing.path)}`, { details: { field: 'backing.path' } });
    }
    if (typeof spec.backing.format !== 'string' || !/^[a-z0-9]+$/.test(spec.backing.format)) {
      throw new VirtqError('INVALID_ARG', `backing.format must be a qemu format name, got ${JSON.stringify(spec.backing.format)}`, { details: { field: 'backing.format' } });
    }
  }
  if (spec.encryption !== undefined) {
    if (spec.format !== 'qcow2') throw new VirtqError('INVALID_ARG', `volume ${JSON.stringify(spec.name)}: only a qcow2 volume can be encrypted`, { details: { field: 'encryption' } });
    if (!(spec.encryption.passphrase instanceof Uint8Array) || spec.encryption.passphrase.length === 0) {
      throw new VirtqError('INVALID_ARG', 'encryption.passphrase must be a non-empty byte array', { details: { field: 'encryption.passphrase' } });
    }
    const iter = spec.encryption.iterTimeMs;
    if (iter !== undefined && (!Number.isSafeInteger(iter) || iter < 1)) {
      throw new VirtqError('INVALID_ARG', `encryption.iterTimeMs must be a whole number of milliseconds ≥ 1, got ${String(iter)}`, { details: { field: 'encryption.iterTimeMs' } });
    }
  }
}

/** qemu-img rounds every virtual size up to whole 512-byte sectors. */
const sectors = (bytes: number): number => Math.ceil(bytes / 512) * 512;

/** A plain raw volume (no backing image, no encryption): a sparse file, made by createSparseVolume. */
export function isSparseRaw(spec: CreateVolumeSpec): boolean {
  return spec.format === 'raw' && spec.encryption === undefined && spec.backing === undefined;
}

/**
 * Makes plain raw volume `spec.name` (isSparseRaw): a sparse file of the right length, no qemu-img
 * spawn (most of a create's time), with no data blocks, so one fsync after the link makes it durable.
 * `meanwhile` is given what the new file is and runs alongside that fsync (sparse-volume.ts).
 */
export function createSparseVolume<T>(ctx: OpsContext, spec: CreateVolumeSpec, meanwhile: (known: ImageInfo) => Promise<T>): Promise<T> {
  const ref = { pool: ctx.pool, name: spec.name };
  const bytes = sectors(spec.capacityBytes);
  const known: ImageInfo = { format: 'raw', capacity: bytes, backingChain: [], encrypted: false, selfContained: true };
  return makeSparseVolume({ dir: ctx.dir, fs: ctx.fs, tempName: ctx.tempName, ref, bytes, mode: VOLUME_FILE_MODE, what: `creating ${describe(ref)}` }, () => meanwhile(known));
}

/**
 * Makes any other volume (qcow2, LUKS) in a temp file and commits it as `spec.name` (never over a
 * file). Returns what the new image is when that is known without asking qemu-img (no backing image).
 */
export async function createVolumeFile(ctx: OpsContext, spec: CreateVolumeSpec): Promise<ImageInfo | undefined> {
  if (isSparseRaw(spec)) throw new VirtqError('INTERNAL', 'a plain raw volume is made by createSparseVolume');
  const ref = { pool: ctx.pool, name: spec.name };
  const what = `creating ${describe(ref)}`;
  const enc = spec.encryption;
  await buildVolumeFile(ctx.dir, ref, 'new', what, async (tmp) => {
    // A plain qcow2 (with or without backing) is written here (qcow2-create.ts): the same bytes
    // qemu-img writes, without its ~25 ms process start. LUKS stays with qemu-img.
    if (enc === undefined) {
      await writeQcow2(tmp, VOLUME_FILE_MODE, spec.capacityBytes, spec.backing === undefined ? undefined : { name: spec.backing.path, format: spec.backing.format });
      return;
    }
    const base = { path: tmp, format: spec.format, capacityBytes: spec.capacityBytes, backing: spec.backing };
    await ctx.withSecret(enc.passphrase, (secret) => runLuksCreate(ctx.qemuImg, createArgs({ ...base, secret, iterTimeMs: enc.iterTimeMs }), what));
    await chmod(tmp, VOLUME_FILE_MODE);
  }, false, ctx.fs, ctx.tempName);
  if (spec.backing !== undefined) return undefined;
  return { format: spec.format, capacity: sectors(spec.capacityBytes), backingChain: [], encrypted: spec.encryption !== undefined, selfContained: true };
}

/**
 * How often a LUKS create is tried when QEMU's PBKDF benchmark measured no CPU time. On this
 * machine class 5–20% of `qemu-img create` runs fail so, seemingly independently, each within
 * ~25 ms (a success takes 2–5 s of benchmark); CI once met three in a row. Ten tries leave ~1e-7.
 */
export const LUKS_CREATE_TRIES = 10;

/**
 * Runs a LUKS `qemu-img create`. QEMU 7.2 times its PBKDF benchmark by the main thread's user CPU
 * time and gives up ("Unable to get accurate CPU usage") when a round measured 0 ms. With the
 * tick-based accounting of these kernels, a thread whose ticks have all fallen in the kernel so far
 * (exec, page faults) has all of its run time reported as system time, which is the likely cause.
 * The failure is transient and retried. (QEMU's current source treats a 0 ms round as too short.)
 */
async function runLuksCreate(qemuImg: QemuImg, args: string[], what: string): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await qemuImg.run(args, { what });
      return;
    } catch (err) {
      if (!(err instanceof VirtqError) || !err.message.includes('Unable to get accurate CPU usage')) throw err;
      if (attempt >= LUKS_CREATE_TRIES) {
        throw new VirtqError(err.code, `${err.message} (${LUKS_CREATE_TRIES} tries in a row: QEMU's PBKDF benchmark could not time itself on this host; the fault is QEMU 7.2's and passes, so try again)`, { details: { ...err.details, tries: LUKS_CREATE_TRIES }, cause: err });
      }
    }
  }
}

/**
 * Clones `src` as `name`. `thin`: a qcow2 overlay whose backing image is the source (refused for
 * an encrypted source: the overlay's writes would be stored in clear). `full`: an independent
 * copy in the source's format, its chain flattened by qemu-img convert; an encrypted source
 * without backing image is copied byte for byte (it stays encrypted under the same passphrase).
 */
export async function cloneVolumeFile(ctx: OpsContext, src: ResolvedVolume, srcInfo: ImageInfo, name: string, mode: CloneMode, ctl: OpControl): Promise<ImageInfo | undefined> {
  const ref = { pool: ctx.pool, name };
  const what = `cloning ${describe(src.ref)} to ${JSON.stringify(name)}`;
  if (srcInfo.problem !== undefined) throw new VirtqError('OPERATION_INVALID', `${what}: the source cannot be read: ${srcInfo.problem}`);
  if (mode === 'thin') {
    if (srcInfo.encrypted) throw new VirtqError('OPERATION_INVALID', `${what}: the source is encrypted and a thin clone would store its writes in clear; make a full clone`);
    const backing = { path: src.path, format: srcInfo.format };
    await buildVolumeFile(ctx.dir, ref, 'new', what, async (tmp) => {
      // Written here (qcow2-create.ts), not by qemu-img: a few syscalls, so an abort is only
      // honoured when it came before (the commit is as quick as the build).
      if (ctl.signal?.aborted === true) throw abortedError(what);
      await writeQcow2(tmp, VOLUME_FILE_MODE, srcInfo.capacity, { name: backing.path, format: backing.format });
    }, false, ctx.fs, ctx.tempName);
    // Known without asking qemu-img again: that spawn would be most of a thin clone's time.
    return { format: 'qcow2', capacity: sectors(srcInfo.capacity), backingChain: [backing, ...srcInfo.backingChain], encrypted: false };
  }
  if (mode !== 'full') throw new VirtqError('INVALID_ARG', `clone mode must be "full" or "thin", got ${JSON.stringify(mode)}`, { details: { field: 'mode' } });
  if (srcInfo.encrypted && srcInfo.backingChain.length > 0) throw new VirtqError('NOT_SUPPORTED', `${what}: a full clone of an encrypted volume with a backing image is not supported`);
  // A raw source, a self-contained qcow2 or an encrypted image (which stays encrypted under the
  // same passphrase) is copied byte for byte, in the kernel (file-copy.ts): the same image as a
  // convert would make, at the disk's speed. A chain is flattened by a real convert.
  const bytes = srcInfo.encrypted || (srcInfo.format === 'qcow2' && srcInfo.selfContained === true);
  const asIs = bytes || srcInfo.format === 'raw';
  const srcFormat = bytes ? 'raw' : srcInfo.format;
  const format: VolumeFormat = bytes ? 'raw' : srcInfo.format === 'qcow2' ? 'qcow2' : 'raw';
  const total = srcInfo.capacity;
  await buildVolumeFile(ctx.dir, ref, 'new', what, async (tmp) => {
    ctl.onProgress?.(0, total);
    // The progress of a byte copy is in file bytes (a qcow2's file is not its capacity), scaled.
    const onCopied = (done: number, of: number): void => ctl.onProgress?.(of === 0 ? total : Math.min(total, Math.round((done / of) * total)), total);
    const copied = asIs && (await ctx.copier.copy(src.path, tmp, { what, signal: ctl.signal, totalBytes: Number(src.st.size), onProgress: onCopied })) === 'copied';
    if (!copied) {
      // A source a VM may be writing (or a chain): qemu-img convert, which takes QEMU's locks.
      if (asIs) await rm(tmp, { force: true });
      const onPercent = (p: number): void => ctl.onProgress?.(Math.min(total, Math.round((p / 100) * total)), total);
      await ctx.qemuImg.run(convertArgs(src.path, srcFormat, tmp, format, await supportsDirectIo(ctx.dir)), { what, signal: ctl.signal, onPercent });
    }
    await chmod(tmp, VOLUME_FILE_MODE);
  }, false, ctx.fs, ctx.tempName);
  if (!asIs) return undefined;
  // Known without asking qemu-img: the copy is the source's image (a raw one's too), minus nothing.
  return { ...srcInfo, backingChain: [] };
}

/**
 * Resizes `vol` in place (qemu-img resize changes metadata or the file's length, never data
 * below the smaller size). Refuses a smaller capacity unless `opts.shrink`, with both sizes.
 */
export async function resizeVolumeFile(ctx: OpsContext, vol: ResolvedVolume, info: ImageInfo, capacityBytes: number, opts: ResizeOptions): Promise<void> {
  checkCapacity(capacityBytes, 'capacityBytes');
  const what = `resizing ${describe(vol.ref)}`;
  if (capacityBytes < info.capacity && !opts.shrink) {
    throw new VirtqError('INVALID_ARG', `${what}: ${capacityBytes} bytes is below its capacity of ${info.capacity} bytes; pass shrink to cut it (data past the new end is lost)`, { details: { capacityBytes, currentBytes: info.capacity } });
  }
  if (capacityBytes === info.capacity) return;
  const base = { path: vol.path, format: info.format, capacityBytes, shrink: capacityBytes < info.capacity };
  if (!info.encrypted) {
    await ctx.qemuImg.run(resizeArgs(base), { what });
    return;
  }
  if (opts.encryption === undefined) throw new VirtqError('INVALID_ARG', `${what}: the volume is encrypted; give its passphrase to resize it`, { details: { field: 'encryption' } });
  await ctx.withSecret(opts.encryption.passphrase, (secret) => ctx.qemuImg.run(resizeArgs({ ...base, secret }), { what }));
}

/**
 * Replaces the bytes of `vol` with `data`: written to a temp file beside it, fsynced, renamed
 * over it (its mode and owner kept). More bytes than the file holds is INVALID_ARG; an abort,
 * a stream error or a short stream leave the volume as it was.
 */
export async function uploadVolumeFile(ctx: OpsContext, vol: ResolvedVolume, data: AsyncIterable<Uint8Array>, ctl: OpControl, opts: UploadOptions, capacity = 0): Promise<number> {
  const what = `uploading to ${describe(vol.ref)}`;
  // As libvirt: up to the volume's capacity (a fresh qcow2's file is far smaller), or its file if larger.
  const maxBytes = Math.max(Number(vol.st.size), capacity);
  if (opts.lengthBytes !== undefined) {
    checkCapacity(opts.lengthBytes, 'lengthBytes');
    if (opts.lengthBytes > maxBytes) {
      throw new VirtqError('INVALID_ARG', `${what}: ${opts.lengthBytes} bytes is longer than the volume (${maxBytes} bytes); resize it first`, { details: { lengthBytes: opts.lengthBytes, maxBytes } });
    }
  }
  // A symlinked volume is replaced where its file lives, so the link keeps pointing at it.
  const fileRef: VolumeRef = { pool: ctx.pool, name: basename(vol.path) };
  let written = 0;
  const direct = await supportsDirectIo(dirname(vol.path));
  // Held open so that the rename does not free the replaced file's blocks (~0.3 s for 1 GiB
  // here): the last close does, after the caller has its answer.
  const old = await open(vol.path, 'r');
  try {
    await buildVolumeFile(dirname(vol.path), fileRef, 'replace', what, async (tmp) => {
      const fh = await open(tmp, direct ? O_CREATE_DIRECT : 'wx', VOLUME_FILE_MODE);
      try {
        const target = { fh, direct, reopenBuffered: () => open(tmp, 'r+') };
        written = await writeStream(target, data, { maxBytes, lengthBytes: opts.lengthBytes, what, recycle: opts.recycle, readInto: opts.readInto }, ctl);
        const st = await keepOwnership(fh, vol);
        if (opts.beforeCommit !== undefined) {
          await opts.beforeCommit({ ino: String(st.ino), format: await probedFormat(ctx.qemuImg, tmp, what) });
        }
      } finally {
        await fh.close();
      }
    }, false, undefined, ctx.tempName);
  } finally {
    void old.close().catch(() => undefined);
  }
  return written;
}

/** Gives the new file the old one's mode and, when it can, its owner (a non-root daemon cannot). */
async function keepOwnership(fh: FileHandle, vol: ResolvedVolume): Promise<BigIntStats> {
  await fh.chmod(Number(vol.st.mode) & 0o7777);
  const now = await fh.stat({ bigint: true });
  if (now.uid === vol.st.uid && now.gid === vol.st.gid) return now;
  await fh.chown(Number(vol.st.uid), Number(vol.st.gid)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPERM') throw err;
  });
  return now;
}
