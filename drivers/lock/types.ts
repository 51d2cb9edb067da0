// The lock-manager plugin interface (versioned, like libvirt's lock drivers): what a plugin
// declares, what virtq requires of it, and the lease calls the shim makes around QEMU's life.
// A plugin that fails its checks is never used, and then no VM may start (fail closed).
import type { Clock } from '../../protocol/clock.js';

/**
 * The lock ABI this virtq speaks. A plugin declares the ABI it was written for; any other value
 * is refused, because the meaning of a call may have changed.
 * @since 0.1
 */
export const LOCK_ABI_VERSION = 1;

/**
 * Guarantees virtq relies on from every enforcing plugin:
 * - `exclusive`: a writable disk is leased to one QEMU at a time;
 * - `shared`: read-only and shareable disks are leased to any number of QEMUs, never beside an
 *   exclusive lease;
 * - `hotplug`: a lease can be taken for a QEMU that already runs, and given back on detach;
 * - `outlives-shim`: a lease lives as long as the QEMU process, not the shim that started it.
 * @since 0.1
 */
export const REQUIRED_LOCK_FEATURES = ['exclusive', 'shared', 'hotplug', 'outlives-shim'] as const;

/**
 * What virtq offers a plugin. `inherit-fds`: the fds of `StartLeases.inheritFds` are inherited
 * by QEMU as fds 3, 4, ... in order, and stay open for its whole life. `pause-on-lease-loss`: the
 * shim subscribes to `LockManager.watchLeases` and pauses its VM's vCPUs when told its leases may
 * be lost, resuming them only when told they are held again (fencing, docs/decisions/0030).
 * @since 0.1 (`pause-on-lease-loss` since 0.3)
 */
export const HOST_LOCK_CAPABILITIES = ['inherit-fds', 'pause-on-lease-loss'] as const;

/** How a disk is leased: writable disks exclusively, read-only and shareable ones shared. */
export type LeaseMode = 'exclusive' | 'shared';

/** One disk to lease. `path` is as the definition gives it; the plugin canonicalises it. */
export interface LeaseRequest {
  path: string;
  mode: LeaseMode;
}

/** Who holds a lease: recorded by the plugin so a conflict names the holder. */
export interface LeaseOwner {
  vm: string;
  uuid: string;
  shimPid: number;
}

/** A holder as a conflict reports it. */
export interface LeaseHolder {
  vm: string;
  uuid: string;
  host: string;
  mode: LeaseMode;
  qemuPid?: number;
}

/** Leases taken before QEMU is spawned. */
export interface StartLeases {
  /** Fds QEMU must inherit (as fds 3, 4, ... in order) for the leases to live as long as it does. */
  readonly inheritFds: readonly number[];
  /** QEMU was spawned as `qemuPid` holding `inheritFds`: record it and drop the plugin's own copies. */
  spawned(qemuPid: number): Promise<void>;
  /** QEMU was not spawned: give every lease back. */
  abort(): Promise<void>;
}

/** Leases readied by `armForRunning`: taken at most once, or let go. */
export interface ArmedLeases {
  /** Takes every lease, all or nothing: LOCK_CONFLICT naming the holder, with nothing kept. */
  acquire(): Promise<void>;
  /** Lets go of what was readied and not taken (nothing taken is given back). */
  disarm(): void;
}

/** A loaded, checked lock manager. Every acquire throws LOCK_CONFLICT naming the holder. */
export interface LockManager {
  /** The identity of the resource behind `path`: the same for every path that names it. */
  resourceKey(path: string): Promise<string>;
  /**
   * Leases `requests` for a QEMU about to start; nothing is held when it throws. `armLater`: the
   * QEMU's disks will be leased through `armForRunning` (a migration's destination), which may
   * keep what it readied for them meanwhile (the lockfile plugin: a warm shim's idle holder).
   */
  acquireForStart(owner: LeaseOwner, requests: readonly LeaseRequest[], opts?: { armLater?: boolean }): Promise<StartLeases>;
  /** Leases one more disk for the running QEMU `qemuPid` (hot-plug). */
  acquireForRunning(owner: LeaseOwner, qemuPid: number, request: LeaseRequest): Promise<void>;
  /** Gives back the lease on `path` (detach, or a failed hot-plug). */
  release(owner: LeaseOwner, path: string): Promise<void>;
  /**
   * QEMU has exited (or never started, or handed its disks over in a migration): resolves once
   * every lease on `paths` is given back. With `qemuPid`, a lease recorded for another QEMU of the
   * same VM (the destination of a migration on this host) is left alone.
   */
  releaseAll(owner: LeaseOwner, paths: readonly string[], qemuPid?: number): Promise<void>;
  /**
   * A migration's switchover, the guest paused (docs/decisions/0018, 0030): like `releaseAll`
   * for this host, but a lease that also lives beyond it (the etcd plugin's keys) is not given
   * back: it stays held, marked for the same VM's QEMU on the destination to take over atomically
   * (`acquireForRunning`), so no instant leaves the disk leased by neither host. All or nothing:
   * nothing is handed over when it throws. Optional: without it the shim calls `releaseAll`.
   * @since 0.4
   */
  handOver?(owner: LeaseOwner, paths: readonly string[]): Promise<void>;
  /**
   * A migration's destination, during the transfer: readies what `acquireForRunning` of each of
   * `requests` would do for `qemuPid` (the lockfile plugin spawns its holders, waiting for a go),
   * so that taking the leases at switchover, the guest paused, costs less. Nothing is held until
   * `acquire`. Optional: without it the shim calls `acquireForRunning` at switchover.
   * @since 0.5
   */
  armForRunning?(owner: LeaseOwner, qemuPid: number, requests: readonly LeaseRequest[]): Promise<ArmedLeases>;
  /**
   * Runs `fn` holding `path`'s resource exclusively, as a VM would, so that no VM can lease it
   * meanwhile: virtstoraged deletes or shrinks a volume under it. Throws LOCK_CONFLICT naming
   * the holders when a VM uses the disk. Optional: without it, virtstoraged refuses such changes.
   * @since 0.2
   */
  holdExclusive?<T>(path: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Fencing, for plugins whose leases can be lost while QEMU runs (the etcd plugin's keys die with
   * the host's etcd lease): `watch` is told, while `owner` holds leases, when they may be lost (the
   * shim pauses the VM at once) and when they are held again (it resumes what it paused). Optional:
   * a plugin without it never loses a lease behind QEMU's back.
   * @since 0.3
   */
  watchLeases?(owner: LeaseOwner, watch: LeaseWatch): { dispose(): void };
}

/** What a plugin tells the shim about leases it may lose (LockManager.watchLeases). */
export interface LeaseWatch {
  /** The leases may be lost (or will be before anything else could be done): stop writing now. */
  lost(reason: string): Promise<void>;
  /** Every lease is held again. */
  regained(): Promise<void>;
  /** Another holder took a lease while it was lost: the VM must stay paused; `message` says who. */
  takenOver(message: string): void;
}

/** What the host gives a plugin when it creates its manager. */
export interface LockEnv {
  /** Where a plugin keeps host-local state, e.g. the default lockspace (`lib/lockspace`). */
  stateDir: string;
  /** Host-local runtime files (tmpfs on a real system). */
  runtimeDir: string;
  /** This host's name, recorded with each lease. */
  host: string;
  clock: Clock;
  /**
   * A lease lifeline already locked by the host (a warm pool shim locks one while it waits for
   * its definition), for a plugin that binds leases to one; others ignore it.
   * @since 0.4
   */
  spareLifeline?: SpareLifeline;
}

/** An exclusively locked lifeline, taken at most once: its fd (the shim's own description), or undefined once taken or discarded. */
export interface SpareLifeline {
  take(): number | undefined;
  /** Its fd while neither taken nor discarded (a warm shim's QEMU launcher inherits it as its fd 3), without taking it. */
  held(): number | undefined;
  /** Closes it unless taken (a start that did not need it). */
  discard(): void;
}

/**
 * A lock-manager plugin: what a built-in plugin is and what a plugin module exports (as
 * `lockPlugin` or `default`). Checked against LOCK_ABI_VERSION and the feature lists on load.
 * @since 0.1
 */
export interface LockPlugin {
  readonly name: string;
  readonly abiVersion: number;
  /** The guarantees it gives; an enforcing plugin must list every REQUIRED_LOCK_FEATURES entry. */
  readonly features: readonly string[];
  /** Host capabilities it relies on; refused when virtq does not offer one of them. */
  readonly requires?: readonly string[];
  /** False only for an explicit opt-out (nop): every lease is granted and nothing is guaranteed. */
  readonly enforcing: boolean;
  /** Builds the manager from the rest of `etc/lock.json`; throws when the config is unusable. */
  create(config: Readonly<Record<string, unknown>>, env: LockEnv): Promise<LockManager>;
}

/** Built-in plugins by name (a literal map: see builtin.ts). */
export type LockPluginMap = Readonly<Record<string, LockPlugin>>;

/** The lock manager's state as server info shows it. */
export interface LockStatus {
  plugin: string;
  ok: boolean;
  /** Why the plugin is unusable (only when `ok` is false). */
  error?: string;
}
