// Starts shims detached from virtqemud (own session, no inherited pipes once ready) so they and
// their VMs outlive it, through the one shim bootstrap contract (daemon/shim-bootstrap.ts).
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { withShimCodeCache } from '../daemon/shim-code-cache-env.js';
import { startRequestText, type Clock, type IncomingState, type Layout, type NormalizedDefinition } from '../protocol/index.js';
import { runShimTask, spawnShim, type ShimReady } from '../daemon/shim-bootstrap.js';
import { ShimPool } from '../daemon/shim-pool.js';

/** At the latest, the pool refills this long after a migration's destination took its shim. */
const REFILL_AFTER_INCOMING_MS = 60_000;

/**
 * The pool refills this long after a start settled, not at once. Spawning the refill blocks
 * virtqemud's event loop until the new process has exec'd (fork, then libuv's wait for the exec):
 * 9 ms traced on a quiet host, 30–45 under load. At once, that landed just after the start's
 * reply, so the caller's next call (a create, then a list: 32 ms p50 against 1.2 ms later,
 * bench/RESULTS.md session 18) waited for it. A start right behind another finds the pool empty
 * either way (its shim would still be loading) and spawns its own, as it does now.
 */
export const REFILL_AFTER_START_MS = 50;

/** What a shim reported once it started its VM. */
export type ShimStarted = Pick<ShimReady, 'shimPid' | 'qemuPid' | 'socket' | 'state' | 'incomingUri' | 'reports'>;

/** Starts shims; injected so tests can count or replace them. */
export interface ShimSpawner {
  /** `incoming`: the shim loads a save image or waits for a migration instead of booting. */
  start(def: NormalizedDefinition, opts: { paused: boolean; incoming?: IncomingState; spawnedSince?: (ticks: number) => void }): Promise<ShimStarted>;
  /** Asks a shim to stop VM `name`'s QEMU `pid` that no shim runs and no state file records (only shims kill QEMU). */
  reap(name: string, uuid: string, pid: number): Promise<void>;
  /**
   * Starts keeping warm shims (docs/decisions/0026-warm-shim-pool.md), if it has a pool; refills it
   * when short — `afterMs` later when given.
   */
  warm?(afterMs?: number): void;
  /** Kills the idle warm shims; started VMs and their shims are not touched. */
  close?(): void;
  /** The warm pool's size and its idle members now (virtqemud's serverInfo details list them). */
  pool?(): ShimPoolInfo;
}

/** What serverInfo says of the warm pool: idle shims are alive by design, not orphans. */
export interface ShimPoolInfo {
  size: number;
  /** Pids of the idle shims, none of them a VM's yet. */
  idle: number[];
}

/**
 * The real spawner: runs the virtq-shim binary with `placement` (`--root DIR` or `--mode M`).
 * Every start, warm or cold, runs the same command line and hands the shim the whole start on
 * stdin (`--start-request`: definition, paused, incoming), so a warm shim started before anyone
 * knew which start it would serve can take any of them: a plain or paused start, a restore, a
 * migration's destination (docs/decisions/0026-warm-shim-pool.md).
 */
export function processShimSpawner(shimBinary: string, placement: readonly string[], layout: Layout, env: NodeJS.ProcessEnv, clock: Clock, timeoutMs = 120_000, poolSize = 0): ShimSpawner {
  const args = [...placement, '--definition', '-', '--start-request'];
  // Where shims keep the V8 code cache of their bundle (shim/code-cache.ts): the root's cache dir.
  env = withShimCodeCache(env, layout);
  // Starts in flight here (a queued start waits in virtqemud's worker slots before it comes in).
  let inflight = 0;
  const pool = poolSize > 0 ? new ShimPool({ size: poolSize, command: shimBinary, args, env, logDir: layout.log, clock, busy: () => inflight > 0 }) : undefined;
  /**
   * Counts `started` in flight; once it settles the pool refills `afterMs` later (REFILL_AFTER_START_MS,
   * or REFILL_AFTER_INCOMING_MS for a migration's destination), which it does only when no other start
   * is in flight: the last start of a burst refills, so pool shims never load while the burst's own
   * shims and QEMUs need the CPU.
   */
  const track = (started: Promise<ShimStarted>, afterMs = REFILL_AFTER_START_MS): Promise<ShimStarted> => {
    inflight++;
    void started.finally(() => {
      inflight--;
      if (pool !== undefined) clock.setTimeout(() => pool.fill(), afterMs);
    }).catch(() => undefined);
    return started;
  };
  return {
    warm: (afterMs) => { if (afterMs === undefined) pool?.fill(); else clock.setTimeout(() => pool?.fill(), afterMs); },
    close: () => pool?.close(),
    pool: () => ({ size: poolSize, idle: pool?.pids() ?? [] }),
    start(def, { paused, incoming, spawnedSince }) {
      const request = startRequestText(def, paused, incoming);
      const logHint = `see ${join(layout.log, `${def.name}.shim-stderr.log`)}`;
      const warm = pool?.take(def.name);
      if (warm !== undefined) {
        // Refilled once this start is over (REFILL_AFTER_START_MS), so the new shim's load does not compete with it. A
        // migration's destination is "started" when its QEMU listens, which is when the transfer
        // begins: a new Node process loading then took a third of a core from QEMU's loading of
        // the guest's memory (bench/RESULTS.md), so it waits for the switchover (warm(), called by
        // migrateSwitchover) or, when the migration ends otherwise, for REFILL_AFTER_INCOMING_MS.
        // A warm shim's QEMU may be as old as the shim (its launcher, shim/vm/qemu-launcher.ts): a
        // failed start's check of which QEMU it spawned goes back to the shim's own spawn.
        if (warm.since !== undefined) spawnedSince?.(warm.since);
        return track(warm.shim.hand(request, { name: def.name, clock, timeoutMs, logHint }), incoming?.kind === 'migration' ? REFILL_AFTER_INCOMING_MS : undefined);
      }
      const errLog = join(layout.log, `${def.name}.shim-stderr.log`);
      const errFd = openSync(errLog, 'a', 0o600);
      // The shim is spawned (and has its own copy of the descriptor) before spawnShim returns.
      const started = spawnShim({ command: shimBinary, args, definition: request, name: def.name, stderr: errFd, env, clock, timeoutMs, logHint });
      closeSync(errFd);
      // A cold start also ends a burst: a refill skipped while it ran happens after it.
      return track(started);
    },
    async reap(name, uuid, pid) {
      await runShimTask({ command: shimBinary, args: [...placement, '--reap', name, '--qemu-pid', String(pid), '--uuid', uuid], what: `reaping QEMU pid ${pid} of VM "${name}"`, clock, timeoutMs: 15_000, env });
    },
  };
}
