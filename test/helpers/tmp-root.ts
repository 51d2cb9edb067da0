// Temporary roots for tests: a fresh directory under the OS temp dir, short enough for unix
// socket paths, removed when the test is done.
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
