// The order test files start in (issue: the suite's wall time). With two workers and no cache of
// earlier runs (CI starts fresh), vitest starts the largest files first; the slowest files are
// small ones that boot real guests (the bounded chaos seeds, migration faults), so they started
// late and one worker ran them alone at the end while the other sat idle. Longest first, by what
// each file took, is the classic bound for filling two workers evenly.

/** A test file as the sequencer sees it. */
export interface FileFacts {
  /** Its path relative to the repository, with forward slashes. */
  path: string;
  /** Its size in bytes, the last resort for guessing how long it runs. */
  size: number;
  /** What it took in an earlier run on this machine (vitest's results cache), in ms. */
  cachedMs?: number;
}

/**
 * What the slowest files took in the last CI run on a quiet 2-core machine (session 8), in ms:
 * used when this machine has no duration of its own for them. A file missing here is only
 * ordered worse, never skipped.
 */
export const KNOWN_MS: Readonly<Record<string, number>> = {
  'test/integration/migration-faults.test.ts': 123_000,
  'test/chaos/chaos.test.ts': 91_000,
  'test/chaos/migration-chaos.test.ts': 87_000,
  'test/integration/cluster/fleet-migrate-disks.test.ts': 77_000,
  'test/integration/cluster/fleet-migrate.test.ts': 68_000,
  'test/integration/cluster/quorum-loss-defines.test.ts': 37_000,
  'test/integration/cluster/cluster-stale-claims.test.ts': 33_000,
  'test/integration/snapshots-offline-volumes.test.ts': 28_000,
};

/** Unit tests never start a process that outlives them; they fill the gaps at the end. */
function isUnit(path: string): boolean {
  return path.startsWith('test/unit/');
}

/**
 * Longest first: files with a duration (this machine's cache, else KNOWN_MS), longest first;
 * then the other files that run real processes, largest first; then unit tests, largest first.
 * Ties keep the path order so that two runs start files in the same order.
 */
export function orderFiles<T extends FileFacts>(files: readonly T[], known: Readonly<Record<string, number>> = KNOWN_MS): T[] {
  const ms = (f: T): number | undefined => f.cachedMs ?? known[f.path];
  const tier = (f: T): number => (ms(f) !== undefined ? 0 : isUnit(f.path) ? 2 : 1);
  return [...files].sort((a, b) => {
    const t = tier(a) - tier(b);
    if (t !== 0) return t;
    const d = tier(a) === 0 ? (ms(b) ?? 0) - (ms(a) ?? 0) : b.size - a.size;
    if (d !== 0) return d;
    return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
  });
}
