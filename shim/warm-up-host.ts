// The fourth part of a pool shim's rehearsal (shim/warm-up.ts): the host reads a start makes
// right after its definition arrives, run once before it (issue 15 target 1, session 17: first-time
// code on the path from the hand-off to QEMU's exec): the lock plugin's checks, the memory cgroup
// lookup of QEMU's OOM watch and the journal writer's process identity. Read-only: it opens no file
// of any VM and writes nothing; its answers are dropped, and the start asks again.
import { join } from 'node:path';
import { builtinLockPlugins } from '../drivers/lock/builtin.js';
import { checkLockPlugin } from '../drivers/lock/loader.js';
import { selfWriter } from '../drivers/journal/writer-lock.js';
import { memoryCgroupOf, oomKillCount } from './vm/oom-watch.js';

/** Runs the rehearsal; throws nothing a caller must handle beyond what warmUp already catches. */
export function rehearseHost(): void {
  const plugins = builtinLockPlugins();
  checkLockPlugin(plugins['lockfile'], 'lockfile');
  const cgroup = memoryCgroupOf(process.pid);
  if (cgroup !== undefined) oomKillCount(join(cgroup.dir, cgroup.counter));
  selfWriter(process.pid);
}
