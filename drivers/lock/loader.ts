// Loads the lock plugin a root configures in `etc/lock.json` (default: lockfile), checks its ABI
// version and feature lists, and builds its manager. Never throws: a failure is a status with
// the reason, and the caller must then refuse to start any VM (fail closed).
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { systemClock, type Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { importModule } from '../../protocol/dynamic-import.js';
import { builtinLockPlugins, DEFAULT_LOCK_PLUGIN, FLEET_LOCK_PLUGIN } from './builtin.js';
import { hostLeaseFile } from './etcd-host-lease.js';
import {
  HOST_LOCK_CAPABILITIES, LOCK_ABI_VERSION, REQUIRED_LOCK_FEATURES,
  type LockEnv, type LockManager, type LockPlugin, type LockPluginMap, type LockStatus,
} from './types.js';

/** The directories of a root the loader needs (a protocol Layout fits). */
export interface LockDirs {
  config: string;
  state: string;
  runtime: string;
}

/** A loaded lock manager: `manager` is set exactly when `status.ok`. */
export interface LoadedLock {
  status: LockStatus;
  manager: LockManager | undefined;
}

/** The config file, under the root's config dir. */
export function lockConfigFile(dirs: Pick<LockDirs, 'config'>): string {
  return join(dirs.config, 'lock.json');
}

/** Reads `etc/lock.json`; absent means `{"plugin":"lockfile"}`. Throws LOCK_MANAGER_UNAVAILABLE. */
export async function readLockConfig(dirs: Pick<LockDirs, 'config'>): Promise<Record<string, unknown> & { plugin: string }> {
  const file = lockConfigFile(dirs);
  let text: string;
  try {
    text = readFileSync(file, 'utf8'); // tiny and local, and a start waits for it (issue 15)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { plugin: DEFAULT_LOCK_PLUGIN };
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `${file} must hold a JSON object`);
  const plugin = (value as { plugin?: unknown }).plugin ?? DEFAULT_LOCK_PLUGIN;
  if (typeof plugin !== 'string' || plugin === '') throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `${file}: "plugin" must be a plugin name or an absolute module path`);
  return { ...(value as Record<string, unknown>), plugin };
}

/**
 * Checks that `candidate` is a lock plugin this virtq may use: the same lock ABI, every required
 * feature (unless it is an explicit opt-out), and no host capability virtq lacks. Returns it, or
 * throws LOCK_MANAGER_UNAVAILABLE saying why.
 */
export function checkLockPlugin(candidate: unknown, name: string): LockPlugin {
  const fail = (why: string): never => { throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `lock plugin "${name}" ${why}`); };
  if (typeof candidate !== 'object' || candidate === null) return fail('is not a lock plugin (no plugin object exported)');
  const p = candidate as Partial<LockPlugin>;
  if (typeof p.abiVersion !== 'number') return fail('declares no abiVersion');
  if (p.abiVersion !== LOCK_ABI_VERSION) return fail(`was written for lock ABI version ${p.abiVersion}; this virtq speaks lock ABI version ${LOCK_ABI_VERSION}`);
  if (typeof p.name !== 'string' || typeof p.create !== 'function' || typeof p.enforcing !== 'boolean') return fail('is not a lock plugin (needs name, enforcing and create)');
  if (!Array.isArray(p.features) || p.features.some((f) => typeof f !== 'string')) return fail('declares no feature list');
  const offered: readonly string[] = HOST_LOCK_CAPABILITIES;
  const lacking = (p.requires ?? []).filter((c) => !offered.includes(c));
  if (lacking.length > 0) return fail(`requires host capabilities this virtq lacks: ${lacking.join(', ')}`);
  const missing = REQUIRED_LOCK_FEATURES.filter((f) => !(p.features ?? []).includes(f));
  if (p.enforcing && missing.length > 0) return fail(`lacks required features: ${missing.join(', ')}`);
  return p as LockPlugin;
}

async function resolvePlugin(name: string, plugins: LockPluginMap): Promise<unknown> {
  if (Object.hasOwn(plugins, name)) return plugins[name];
  if (!isAbsolute(name)) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `unknown lock plugin "${name}" (built in: ${Object.keys(plugins).join(', ')}; or give the absolute path of a plugin module)`);
  }
  let mod: { lockPlugin?: unknown; default?: unknown };
  try {
    mod = await importModule<typeof mod>(pathToFileURL(name).href);
  } catch (err) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot load lock plugin module ${name}: ${(err as Error).message}`, { cause: err });
  }
  return mod.lockPlugin ?? mod.default;
}

/** Loads, checks and creates the configured lock manager of a root. */
export async function loadLockManager(dirs: LockDirs, plugins: LockPluginMap, env: Pick<LockEnv, 'host' | 'clock' | 'spareLifeline'>): Promise<LoadedLock> {
  let name = DEFAULT_LOCK_PLUGIN;
  try {
    const { plugin: configured, ...config } = await readLockConfig(dirs);
    // Under a virtqemud run with --cluster the default is fleet-wide; an explicit choice stands.
    const fleet = !existsSync(lockConfigFile(dirs)) && existsSync(hostLeaseFile(dirs.runtime));
    const plugin = fleet ? FLEET_LOCK_PLUGIN : configured;
    name = plugin;
    const checked = checkLockPlugin(await resolvePlugin(plugin, plugins), plugin);
    const manager = await checked.create({ plugin, ...config }, { stateDir: dirs.state, runtimeDir: dirs.runtime, host: env.host, clock: env.clock, ...(env.spareLifeline === undefined ? {} : { spareLifeline: env.spareLifeline }) });
    return { status: { plugin: name, ok: true }, manager };
  } catch (err) {
    const e = VirtqError.from(err);
    return { status: { plugin: name, ok: false, error: e.message }, manager: undefined };
  }
}

/**
 * The lock manager status of a root, as server info shows it: loads and checks the configured
 * plugin (for virtqemud's server info; a shim reports its own).
 */
export async function lockManagerStatus(dirs: LockDirs, plugins: LockPluginMap = builtinLockPlugins()): Promise<LockStatus> {
  return (await loadLockManager(dirs, plugins, { host: hostname(), clock: systemClock() })).status;
}
