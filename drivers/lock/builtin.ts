// The lock plugins built into virtq, as one literal map: `lockfile` (the default) and `nop`
// (the explicit opt-out). Anything else is a plugin module named by absolute path.
import { lockfileLockPlugin } from './lockfile.js';
import { nopLockPlugin } from './nop.js';
import type { LockPluginMap } from './types.js';

/** The plugin used when `etc/lock.json` does not exist. */
export const DEFAULT_LOCK_PLUGIN = 'lockfile';

/** The built-in plugins by name. */
export function builtinLockPlugins(): LockPluginMap {
  return { lockfile: lockfileLockPlugin, nop: nopLockPlugin };
}
