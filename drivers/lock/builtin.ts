// The lock plugins built into virtq, as one literal map: `lockfile` (the default), `etcd` (the
// default under a virtqemud run with --cluster) and `nop` (the explicit opt-out). Anything else is
// a plugin module named by absolute path.
import { etcdLockPlugin } from './etcd.js';
import { lockfileLockPlugin } from './lockfile.js';
import { nopLockPlugin } from './nop.js';
import type { LockPluginMap } from './types.js';

/** The plugin used when `etc/lock.json` does not exist. */
export const DEFAULT_LOCK_PLUGIN = 'lockfile';

/** The plugin used when `etc/lock.json` does not exist and virtqemud runs with --cluster. */
export const FLEET_LOCK_PLUGIN = 'etcd';

/** The built-in plugins by name. */
export function builtinLockPlugins(): LockPluginMap {
  return { lockfile: lockfileLockPlugin, etcd: etcdLockPlugin, nop: nopLockPlugin };
}
