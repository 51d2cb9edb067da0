// The `lockfile` plugin (the default): leases are flocks on lock files in a lockspace directory,
// by default `lib/lockspace` under the root, or any directory given as `lockspace` (which may be
// on shared storage, see docs/locking.md). Config: `{"plugin":"lockfile","lockspace":"/abs"}`;
// `perl` (default /usr/bin/perl, false: none) runs the in-process lease holders (perl-holder.ts).
import { accessSync, constants, mkdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { checkFlock } from './flock.js';
import { DEFAULT_PERL } from './perl-holder.js';
import { checkOncePerIdentity, flockCheckKey } from './flock-check-cache.js';
import { LockfileManager } from './lockfile-manager.js';
import { Lockspace } from './lockspace.js';
import { LOCK_ABI_VERSION, REQUIRED_LOCK_FEATURES, type LockEnv, type LockManager, type LockPlugin } from './types.js';

const OPTIONS = new Set(['plugin', 'lockspace', 'flock', 'perl']);

/** The lockspace a config names, or the default under the state dir. */
export function lockspaceDir(config: Readonly<Record<string, unknown>>, env: Pick<LockEnv, 'stateDir'>): string {
  const dir = config['lockspace'];
  if (dir === undefined) return join(env.stateDir, 'lockspace');
  if (typeof dir !== 'string' || !isAbsolute(dir)) throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `"lockspace" must be an absolute path, not ${JSON.stringify(dir)}`);
  return dir;
}

async function create(config: Readonly<Record<string, unknown>>, env: LockEnv): Promise<LockManager> {
  const unknown = Object.keys(config).filter((k) => !OPTIONS.has(k));
  if (unknown.length > 0) throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `unknown lockfile option(s): ${unknown.join(', ')}`);
  const flock = config['flock'] ?? 'flock';
  if (typeof flock !== 'string') throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', '"flock" must be the path of util-linux flock(1)');
  const dir = lockspaceDir(config, env);
  // Synchronous, as the self-check cache's reads below: a starting shim waits for each of these, and
  // as thread-pool round trips awaited in turn each cost a scheduling wait on a loaded host (issue 15).
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `lockspace ${dir} is not a writable directory: ${(err as Error).message}`, { cause: err });
  }
  const lifelineDir = join(env.runtimeDir, 'leases');
  mkdirSync(lifelineDir, { recursive: true, mode: 0o700 });
  await checkOncePerIdentity(flockCheckKey(flock, dir), lifelineDir, () => checkFlock(flock, dir));
  const perlPath = config['perl'] ?? DEFAULT_PERL;
  if (perlPath !== false && (typeof perlPath !== 'string' || !isAbsolute(perlPath))) throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', '"perl" must be the absolute path of perl, or false for flock(1) holders');
  const perl = perlPath === false ? undefined : perlOrWarn(perlPath);
  return new LockfileManager({ space: new Lockspace(dir), lifelineDir, host: env.host, clock: env.clock, flock, perl, spare: env.spareLifeline });
}

/**
 * `perl` when it can be run (in-process lease holders, perl-holder.ts), else undefined after a
 * warning: leases are then taken by flock(1) children, as safe and slower (docs/decisions/0004).
 */
export function perlOrWarn(perl: string): string | undefined {
  try {
    accessSync(perl, constants.X_OK);
    return perl;
  } catch {
    process.emitWarning(`${perl} not found: disk leases are taken through flock(1) children (slower starts and migrations); install perl-base`, { code: 'VIRTQ_LOCK_NO_PERL' });
    return undefined;
  }
}

/** The lockfile plugin. @since 0.1 */
export const lockfileLockPlugin: LockPlugin = {
  name: 'lockfile',
  abiVersion: LOCK_ABI_VERSION,
  features: [...REQUIRED_LOCK_FEATURES, 'holder-identity'],
  requires: ['inherit-fds'],
  enforcing: true,
  create,
};
