// The `nop` lock plugin: the explicit opt-out. Grants every lease and records nothing; QEMU's
// own image locking (docs/decisions/0003-qemu-argv.md) is then the only protection left.
import { resolve } from 'node:path';
import { LOCK_ABI_VERSION, type LockManager, type LockPlugin } from './types.js';

/** A manager that grants everything. */
function nopManager(): LockManager {
  return {
    resourceKey: async (path) => resolve(path),
    acquireForStart: async () => ({ inheritFds: [], spawned: async () => undefined, abort: async () => undefined }),
    acquireForRunning: async () => undefined,
    release: async () => undefined,
    releaseAll: async () => undefined,
    holdExclusive: (_path, fn) => fn(),
  };
}

/** The nop plugin. @since 0.1 */
export const nopLockPlugin: LockPlugin = {
  name: 'nop',
  abiVersion: LOCK_ABI_VERSION,
  features: [],
  enforcing: false,
  create: async () => nopManager(),
};
