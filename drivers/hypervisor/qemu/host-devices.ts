// The host files a definition names, checked before QEMU is spawned: QEMU blocks forever opening
// a FIFO as its kernel, reads /dev/zero as one, and reports a character device or a socket given
// as a disk only after it has started. Block devices are found here too: QEMU's `file` driver
// refuses them ("'file' driver requires '/dev/loop0' to be a regular file"), so they need
// `host_device`; the result goes into ArgvOptions.hostDevices.
import { stat } from 'node:fs/promises';
import { statSync, type Stats } from 'node:fs';
import { fileKind } from '../../fs/file-kind.js';
import type { ResolvedDefinition } from '../../../protocol/definition.js';
import { VirtqError } from '../../../protocol/errors.js';

/**
 * The subset of `paths` that are block devices (symlinks followed), in input order. Paths that
 * cannot be stat-ed are left out: QEMU then reports the real error when it opens them.
 */
export async function findHostDevices(paths: readonly string[]): Promise<string[]> {
  const kinds = await Promise.all(paths.map((p) => stat(p).then((s) => s.isBlockDevice(), () => false)));
  return paths.filter((_, i) => kinds[i] === true);
}

/** A file a definition names: where it sits in the document, and what it must be. */
export interface HostFile {
  path: string;
  /** The JSON pointer of the field, e.g. `/disks/0/path`. */
  field: string;
  /** Disks may also be block devices; kernels and initrds must be regular files. */
  disk: boolean;
}

/** The kernel, initrd and disk files of `def`. */
export function hostFilesOf(def: Pick<ResolvedDefinition, 'kernel' | 'disks'>): HostFile[] {
  const files: HostFile[] = [];
  if (def.kernel !== undefined) {
    files.push({ path: def.kernel.path, field: '/kernel/path', disk: false });
    if (def.kernel.initrd !== undefined) files.push({ path: def.kernel.initrd, field: '/kernel/initrd', disk: false });
  }
  def.disks.forEach((d, i) => files.push({ path: d.path, field: `/disks/${i}/path`, disk: true }));
  return files;
}

/**
 * Throws INVALID_ARG naming the field when a file does not exist or is of the wrong kind: a disk
 * must be a regular file or a block device, a kernel or initrd a regular file (symlinks followed).
 * `what` names the document in the message ("definition", "arguments of attachDisk").
 */
export async function checkHostFiles(files: readonly HostFile[], what = 'definition'): Promise<void> {
  for (const f of files) {
    let st: Stats;
    try {
      st = await stat(f.path);
    } catch (err) {
      throw unreadable(what, f, err);
    }
    checkKind(what, f, st);
  }
}

/**
 * checkHostFiles and findHostDevices in one pass of synchronous stat(2) calls, for a start: QEMU's
 * spawn waits for them, and on the shim's one thread-pool thread each asynchronous stat was a
 * round trip (~1 ms each on a loaded host; issue 15, session 13). Same checks, same order, same
 * errors. Returns the block devices among the disks, as findHostDevices.
 */
export function checkStartFilesSync(files: readonly HostFile[], what = 'definition'): string[] {
  const devices: string[] = [];
  for (const f of files) {
    let st: Stats;
    try {
      st = statSync(f.path);
    } catch (err) {
      throw unreadable(what, f, err);
    }
    checkKind(what, f, st);
    if (f.disk && st.isBlockDevice()) devices.push(f.path);
  }
  return devices;
}

function unreadable(what: string, f: HostFile, err: unknown): VirtqError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read: ${(err as Error).message}`;
  return invalid(what, f, `${f.path} ${why}`);
}

function checkKind(what: string, f: HostFile, st: Stats): void {
  if (st.isFile() || (f.disk && st.isBlockDevice())) return;
  const expected = f.disk ? 'a disk must be a regular file or a block device' : 'it must be a regular file';
  throw invalid(what, f, `${f.path} is ${fileKind(st)}; ${expected}`);
}

function invalid(what: string, f: HostFile, message: string): VirtqError {
  return new VirtqError('INVALID_ARG', `invalid ${what}: ${f.field}: ${message}`, { details: { path: f.field, file: f.path } });
}
