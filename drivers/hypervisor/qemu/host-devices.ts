// Which disk paths are block devices: QEMU's `file` driver refuses them ("'file' driver requires
// '/dev/loop0' to be a regular file"), so they need `host_device`. The one stat-ing step before
// the pure argv builder; its result goes into ArgvOptions.hostDevices.
import { stat } from 'node:fs/promises';

/**
 * The subset of `paths` that are block devices (symlinks followed), in input order. Paths that
 * cannot be stat-ed are left out: QEMU then reports the real error when it opens them.
 */
export async function findHostDevices(paths: readonly string[]): Promise<string[]> {
  const kinds = await Promise.all(paths.map((p) => stat(p).then((s) => s.isBlockDevice(), () => false)));
  return paths.filter((_, i) => kinds[i] === true);
}
