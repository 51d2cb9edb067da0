// What a test sees of virtqemud's warm shim pool (docs/decisions/0026-warm-shim-pool.md): the idle
// shims it lists in admin serverInfo (details.shimPool), and waiting for that list to change.
import { readdirSync, readFileSync } from 'node:fs';
import { RpcClient, delay, shimStateFile } from '../../protocol/index.js';
import type { DaemonHarness } from './daemon-harness.js';

/**
 * Shim processes under `rootDir` waiting for a definition: `virtq-shim ... --definition -` that is
 * neither ended nor one of `owned` (the shims state files name). A process a shim has forked and
 * not yet exec'd (a QEMU launcher, a lease holder) has that shim's command line for the moment:
 * it is the child of a shim, not another shim, and is left out (a CI run counted one as a second
 * idle shim).
 */
export function idleShimPids(rootDir: string, owned: ReadonlySet<number>): number[] {
  const shims = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      if (!cmd.some((a) => a.endsWith('virtq-shim.js')) || !cmd.includes(rootDir) || !cmd.includes('--definition')) continue;
      // The state letter and the parent pid: the fields after the command name's closing parenthesis.
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state !== 'Z' && state !== 'X') shims.set(pid, Number(parent));
    } catch {
      continue;
    }
  }
  return [...shims].filter(([pid, parent]) => !owned.has(pid) && !shims.has(parent)).map(([pid]) => pid);
}

/** The idle shims virtqemud itself lists (admin serverInfo, details.shimPool), sorted. */
export async function listedPool(h: DaemonHarness): Promise<{ size: number; idle: number[] }> {
  const admin = await RpcClient.connect(h.sockets.admin, { clock: h.clock, defaultTimeoutMs: 30_000 });
  try {
    const info = await admin.call('admin', 'serverInfo', {}) as { details: { shimPool: { size: number; idle: number[] } } };
    return { size: info.details.shimPool.size, idle: [...info.details.shimPool.idle].sort((a, b) => a - b) };
  } finally {
    admin.close();
  }
}

/** Polls `get` (a deadline, no fixed sleep) until it gives a value. */
export async function until<T>(h: DaemonHarness, what: string, get: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = h.clock.monotonic() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (h.clock.monotonic() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(h.clock, 20);
  }
}

/** The one idle shim virtqemud lists once its pool (of one) has refilled. */
export async function idleShim(h: DaemonHarness, ms = 30_000): Promise<number> {
  return until(h, 'virtqemud to list an idle shim', async () => (await listedPool(h)).idle[0], ms);
}

/** The state file's keys and the values that do not name a process, a time or an identity: equal for a warm and a cold shim. */
export function stateShape(h: DaemonHarness, name: string): unknown {
  const s = JSON.parse(readFileSync(shimStateFile(h.layout, name), 'utf8')) as Record<string, unknown>;
  const varying = new Set(['shimPid', 'qemuPid', 'qemuStart', 'shimStart', 'startedAt', 'updatedAt', 'uuid', 'definition', 'name', 'sockets', 'since', 'seq']);
  return Object.fromEntries(Object.keys(s).sort().map((k) => [k, varying.has(k) || /(At|Pid)$/.test(k) ? typeof s[k] : s[k]]));
}
