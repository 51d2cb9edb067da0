// A small file of zeros beside the shims' state files (run/shims/.space-reserve), given up when a
// state file cannot be written for want of space, so that a VM's state — above all how it ended —
// is still recorded on a full disk. The state file is the VM's only record once its shim is gone:
// a shim that waited in vain for space and was then killed, on a virtqemud killed before the disk
// had room again, left a VM that had run listed with no reason at all (chaos seed 27270).
// virtqemud makes the reserve at start and again at each reconciliation once there is room; any
// writer of a state file may give it up. The idea is a database's "ballast file".
import { closeSync, mkdirSync, openSync, renameSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { VirtqError } from '../protocol/errors.js';

/** The reserve's size: a state file is one page; replacing one needs a second page for a moment. */
export const SPACE_RESERVE_BYTES = 256 * 1024;

const RESERVE_NAME = '.space-reserve';
/** The reserve is made only while its filesystem has this many times its size free. */
const ROOM_FACTOR = 4;

/** The reserve of the filesystem holding `dir` (the shims' state directory). */
export function spaceReserveIn(dir: string): string {
  return join(dir, RESERVE_NAME);
}

/**
 * Makes the reserve in `dir` (and `dir`) unless it is there, whole; false when it cannot (less than
 * ROOM_FACTOR times its size free): tried again later. Made under a temp name, so a partial one never counts.
 */
export function ensureSpaceReserve(dir: string, bytes = SPACE_RESERVE_BYTES): boolean {
  const file = spaceReserveIn(dir);
  try {
    if (statSync(file).size === bytes) return true;
  } catch {
    // missing: made below
  }
  // One name (only virtqemud, one per root, makes it): one a kill left is simply written over.
  const tmp = `${file}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // Not made from the last free space: a state file written meanwhile would find none.
    const fs = statfsSync(dir);
    if (fs.bavail * fs.bsize < ROOM_FACTOR * bytes) return false;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      const zeros = Buffer.alloc(bytes);
      for (let off = 0; off < bytes;) off += writeSync(fd, zeros, off, bytes - off);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    return true;
  } catch {
    try { unlinkSync(tmp); } catch { /* never made */ }
    return false;
  }
}

/** Gives the reserve in `dir` up; true when there was one to give. */
export function releaseSpaceReserve(dir: string): boolean {
  try {
    unlinkSync(spaceReserveIn(dir));
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `write`; when it fails for want of space (NO_SPACE), gives up the reserve in `dir` and runs
 * it once more. Resolves with whether the reserve was used (for the caller's log line).
 */
export async function withSpaceReserve(dir: string, write: () => void | Promise<void>): Promise<boolean> {
  try {
    await write();
    return false;
  } catch (err) {
    if (!(err instanceof VirtqError) || err.code !== 'NO_SPACE' || !releaseSpaceReserve(dir)) throw err;
  }
  await write();
  return true;
}

/** withSpaceReserve, on the calling thread (the shim's state writes). */
export function withSpaceReserveSync(dir: string, write: () => void): boolean {
  try {
    write();
    return false;
  } catch (err) {
    if (!(err instanceof VirtqError) || err.code !== 'NO_SPACE' || !releaseSpaceReserve(dir)) throw err;
  }
  write();
  return true;
}
