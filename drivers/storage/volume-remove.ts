// The removal of one resolved volume's file from a dir pool, once the pool has checked nothing
// reads through it: the name is gone (durably: the directory fsynced) when it resolves, the
// file's blocks are freed just after, through `freeAfter`.
import { open } from 'node:fs/promises';
import type { PoolFs } from './pool-fs.js';
import { threadPoolFs } from './pool-fs.js';
import type { ResolvedVolume } from './volume-lookup.js';
import { describe, fsError, fsyncPath, moveAsideConfirmed } from './volume-files.js';

/** Allocated bytes from which a deleted volume's file is freed after the reply rather than in the unlink. */
const HOLD_FREE_BYTES = 16n << 20n;

/**
 * Unlinks a confirmed delete's moved-aside file while the directory's fsync (already issued)
 * waits for the disk. On a local filesystem, when the unlink frees few blocks (a small file such
 * as a thin overlay) or none (a file held open, freed at its close), it is a plain call on the
 * loop's thread, which has nothing else to do until the flush ends: no thread-pool round trip,
 * and the loop wakes once per delete (for the fsync), not twice. An unlink that frees a large
 * file's extents (one that could not be held open) would hold the loop: the thread pool.
 */
function unlinkAside(fs: PoolFs, aside: string, freesLittle: boolean): Promise<void> {
  return fs.direct && freesLittle ? fs.unlink(aside) : threadPoolFs.unlink(aside);
}

/** Where the file is and what removing it may use. */
export interface RemoveContext {
  /** The pool's directory (as configured). */
  dir: string;
  fs: PoolFs;
  tempName: () => string;
  /** Tracks a close or unlink that frees a deleted file's blocks, without waiting for it. */
  freeAfter(freeing: Promise<void>): void;
}

/**
 * Removes `vol`'s name. With `confirm`, the file is first moved to a temp name, then `confirm`
 * runs; when it throws, the file is put back under its name and the error passes through.
 * `onGone` (which must not throw) runs once the name is gone, while the directory's fsync does.
 */
export async function removeVolumeFile(ctx: RemoveContext, vol: ResolvedVolume, confirm?: () => Promise<void>, onGone?: () => void): Promise<void> {
  // Held open across the unlink, so the unlink only drops the name: freeing a 1 GiB file's
  // blocks (~0.3 s here, most of such a delete) happens at the last close, after the reply.
  // The inode is on the filesystem's orphan list meanwhile, so a crash still frees it. A
  // symlink's target keeps its blocks anyway; a file this daemon cannot open is freed inline,
  // and so is a small one (a thin overlay): there the open and close would cost more than they save.
  const small = vol.st.blocks * 512n < HOLD_FREE_BYTES;
  const held = vol.symlink || small ? undefined : await open(vol.entryPath, 'r').catch(() => undefined);
  try {
    // A symlinked volume's target is not moved by moving the link: confirm gets no chance to
    // keep a VM off it, so such a volume is only deleted under the caller's lease.
    if (confirm !== undefined && !vol.symlink) {
      // The name is gone once the rename is durable (the directory's fsync). Unlinking the
      // temp name frees the file's blocks; it is not waited for: info() and clone() wait for it
      // (freeing); a kill first leaves a temp file recover() removes.
      const aside = await moveAsideConfirmed(ctx.dir, vol.entryPath, confirm, ctx.fs, ctx.tempName);
      const synced = fsyncPath(ctx.dir, ctx.fs);
      synced.catch(() => undefined); // awaited below
      ctx.freeAfter(unlinkAside(ctx.fs, aside, held !== undefined || small));
      onGone?.();
      await synced;
      return;
    }
    await ctx.fs.unlink(vol.entryPath);
    const synced = fsyncPath(ctx.dir, ctx.fs);
    synced.catch(() => undefined); // awaited below
    onGone?.();
    await synced;
  } catch (err) {
    throw fsError(err, vol.ref, `deleting ${describe(vol.ref)}`);
  } finally {
    if (held !== undefined) ctx.freeAfter(held.close());
  }
}
