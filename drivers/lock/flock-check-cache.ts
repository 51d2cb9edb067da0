// The lockfile plugin's self-check (can flock(1) lock the lockspace with the options leases use?)
// costs a flock(1) child per shim start: ~8 ms of fork/exec, and more under load (issue #15).
// Its answer only changes when the flock binary, the lockspace directory or the boot changes, so
// it is run once per such identity and remembered in a host-local marker file under the runtime
// dir. What the check would catch later (flock replaced by an old util-linux without -E) changes
// the binary's identity and so runs it again; a lockspace that stops being writable is still
// caught on every start by the access(2) check before this one.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic-file.js';

/** Where a bare `flock` is looked for when keying the cache (it is never cached when not found). */
const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * What the self-check's answer depends on, or undefined when it cannot be pinned down. Synchronous
 * (a few stat(2)s and a tiny read, microseconds each): a start waits for it (issue 15).
 */
export function flockCheckKey(flock: string, lockspace: string, bootIdFile = '/proc/sys/kernel/random/boot_id'): string | undefined {
  try {
    const candidates = flock.includes('/') ? [flock] : SYSTEM_PATH.map((d) => join(d, flock));
    let bin: { path: string; dev: number; ino: number; size: number; mtimeMs: number } | undefined;
    for (const path of candidates) {
      const s = statSync(path, { throwIfNoEntry: false });
      if (s?.isFile() === true) { bin = { path, dev: s.dev, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs }; break; }
    }
    if (bin === undefined) return undefined;
    const dir = statSync(lockspace);
    const boot = readFileSync(bootIdFile, 'utf8').trim();
    return JSON.stringify({ boot, flock, bin, lockspace, dir: { dev: dir.dev, ino: dir.ino } });
  } catch {
    return undefined;
  }
}

/** Runs `check` unless the marker in `markerDir` says it passed for this same key; remembers a pass. */
export async function checkOncePerIdentity(key: string | undefined, markerDir: string, check: () => Promise<void>): Promise<'cached' | 'checked'> {
  const marker = join(markerDir, 'flock-checked.json');
  if (key !== undefined && readMarker(marker) === key) return 'cached';
  await check();
  // A marker that cannot be written only costs the next start the check again.
  if (key !== undefined) await writeFileAtomic(marker, key, 0o600, { durable: false }).catch(() => undefined);
  return 'checked';
}

function readMarker(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined; // none yet, or unreadable: check again
  }
}
