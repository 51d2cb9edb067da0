// Temporary roots for tests: a fresh directory under the OS temp dir, short enough for unix
// socket paths, removed when the test is done.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary directory; call `remove()` in afterEach. */
export interface TmpRoot {
  dir: string;
  path(...parts: string[]): string;
  remove(): void;
}

/** Creates a temporary root (`/tmp/vq-XXXXXX`). */
export function tmpRoot(prefix = 'vq-'): TmpRoot {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    path: (...parts) => join(dir, ...parts),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A temporary root on its own small tmpfs (`size` as mount takes it, e.g. "8m"), so that its disk can be filled; needs root. */
export function tmpfsRoot(size: string): TmpRoot {
  const root = tmpRoot();
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', root.dir], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount -t tmpfs (needs root): ${m.stderr}`);
  return {
    ...root,
    remove: () => {
      if (spawnSync('umount', [root.dir]).status !== 0) spawnSync('umount', ['-l', root.dir]);
      root.remove();
    },
  };
}
