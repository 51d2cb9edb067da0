// A plain raw volume (no backing, no encryption) is a sparse file of the right length: no data
// blocks, so the one fsync of the file after its link makes all of it durable (volume-files.ts,
// commitTemp's metadataOnly). On a local filesystem (pool-fs.ts, `direct`) it is made with as few
// calls as the loop's thread can make before that flush, and the rest of a create's work runs
// while the flush is in the thread pool.
//
// Why: on this project's hosts (PTI without PCID, a PVM guest) every system call flushes the TLB,
// and each return to JavaScript after one costs a daemon ~20–40 µs on top of the call itself
// (issue #13, session 27: a create raw's steps timed inside virtstoraged). A create made 14 of them
// in turn before the flush and 3 more before its reply; here the pool's lstat, the open, ftruncate,
// link and unlink come before it, and the record's line, the pool's real path and the new file's
// lstat overlap it.
import { closeSync, fsync as fsyncCb, ftruncateSync, linkSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { closeSoon, type PoolFs } from './pool-fs.js';
import { buildVolumeFile, fsError, type VolumeRef } from './volume-files.js';

const fsyncFd = promisify(fsyncCb);

/** Where and what: the pool's directory and calls, a fresh temp name, the volume and its length. */
export interface SparseVolumeTarget {
  dir: string;
  fs: PoolFs;
  tempName: () => string;
  ref: VolumeRef;
  /** The file's length (whole sectors). */
  bytes: number;
  mode: number;
  /** For messages: "creating volume … in pool …". */
  what: string;
}

/**
 * Makes `t.ref.name` a sparse file of `t.bytes` under a temp name, links it into place (never over
 * anything: ALREADY_EXISTS when the name is taken, the link being the check) and fsyncs it.
 * `meanwhile` runs once the name is the volume's, alongside the fsync on a local filesystem (after it
 * elsewhere); the result is its value, once both are done. When either fails, the volume is removed
 * again and the error thrown.
 */
export async function makeSparseVolume<T>(t: SparseVolumeTarget, meanwhile: () => Promise<T>): Promise<T> {
  const tmp = t.tempName();
  if (!t.fs.direct) {
    // Every call a thread-pool hop (NFS, FUSE...): the general path, then the rest.
    await buildVolumeFile(t.dir, t.ref, 'new', t.what, (tmpPath) => t.fs.sparseFile(tmpPath, t.bytes, t.mode), true, t.fs, () => tmp);
    return removedOnFailure(t, meanwhile);
  }
  const tmpPath = join(t.dir, tmp);
  const path = join(t.dir, t.ref.name);
  let fd: number;
  try {
    fd = openSync(tmpPath, 'wx', t.mode);
  } catch (err) {
    throw fsError(err, t.ref, t.what);
  }
  let linked = false;
  try {
    ftruncateSync(fd, t.bytes);
    linkSync(tmpPath, path);
    linked = true;
    unlinkSync(tmpPath);
    // By the descriptor still open: the file's fsync carries its new directory entry (commitTemp).
    // meanwhile runs from a promise, so nothing it throws can leave the fsync unawaited (and its
    // descriptor closed under it).
    const [flushed, value] = await Promise.allSettled([fsyncFd(fd), Promise.resolve().then(meanwhile)]);
    if (flushed.status === 'rejected') throw flushed.reason;
    if (value.status === 'rejected') throw value.reason;
    closeSoon(fd);
    return value.value;
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(tmpPath);
    if (linked) unlinkQuietly(path);
    throw fsError(err, t.ref, t.what);
  }
}

/** `meanwhile()`, removing the volume just made when it fails. */
async function removedOnFailure<T>(t: SparseVolumeTarget, meanwhile: () => Promise<T>): Promise<T> {
  try {
    return await meanwhile();
  } catch (err) {
    await t.fs.unlink(join(t.dir, t.ref.name)).catch(() => undefined);
    throw fsError(err, t.ref, t.what);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone, or never made
  }
}
