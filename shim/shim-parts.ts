// The parts a shim is assembled from that need nothing of the running shim: how its disks are
// resolved (virtstoraged/virtsecretd, or paths only), its leases (the lock manager) beside the QEMU
// binary's capabilities, its service (sockets, RPC metrics), the name check once its socket is
// bound, and a wait for overlapped start steps.
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  VirtqError, delay, pathsOnly, shimDir, virtqProgram,
  type Clock, type Layout, type Logger, type NormalizedDefinition, type NormalizedDisk, type ResolvedDefinition, type ResolvedDisk,
} from '../protocol/index.js';
import { builtinLockPlugins } from '../drivers/lock/builtin.js';
import { loadLockManager } from '../drivers/lock/loader.js';
import type { LockPluginMap, SpareLifeline } from '../drivers/lock/types.js';
import type { Logs } from '../daemon/log-filters.js';
import type { Registry } from 'prom-client';
import { DaemonService, type SocketPaths } from '../daemon/service.js';
import { rpcMetricsFor } from '../daemon/rpc-metrics.js';
import type { HandoverFds } from './upgrade/handover-wire.js';
import { DiskResolver, type SecretLookup, type VolumeLookup } from './vm/disk-resolver.js';
import { VmLeases } from './vm/leases.js';
import { isLiveQemu } from './vm/qemu-process.js';
import { readRuntimeStateSync, type RuntimeState } from '../daemon/runtime-state.js';
import { probeCapabilities, resolveBinary, type QemuCapabilities } from '../drivers/hypervisor/qemu/capabilities.js';

/** What of the shim's configuration these parts read (a ShimConfig is one). */
export interface PartsConfig {
  layout: Layout;
  clock: Clock;
  logs: Logs;
  mode: { kind: string };
  lockPlugins?: LockPluginMap | undefined;
  /** A warm pool shim's lifeline, locked while it waited (drivers/lock/spare-lifeline.ts). */
  spareLifeline?: SpareLifeline | undefined;
  daemons?: { volumes: VolumeLookup; secrets: SecretLookup; waitMs: number } | undefined;
}

/** What of the configuration the service reads. */
interface ServiceParts {
  version: string;
  clock: Clock;
  logs: Logs;
  handedOver?: { fds: Pick<HandoverFds, 'rw' | 'ro' | 'admin'> } | undefined;
}

/** What of the configuration the QEMU binary's lookup and capabilities read. */
interface CapsConfig {
  qemuBinary: string;
  env: Readonly<Record<string, string | undefined>>;
  knownCaps?: QemuCapabilities | undefined;
}

export function diskResolver(cfg: PartsConfig, vm: string): DiskResolver | undefined {
  const d = cfg.daemons;
  if (d === undefined) return undefined;
  return new DiskResolver({ vm, clock: cfg.clock, volumes: d.volumes, secrets: d.secrets, waitMs: d.waitMs, secretDir: join(shimDir(cfg.layout), `${vm}.secrets`) });
}

export async function resolveDefinition(def: NormalizedDefinition, resolver: DiskResolver | undefined): Promise<ResolvedDefinition> {
  return resolver === undefined ? pathsOnly(def) : resolver.definition(def);
}

export async function pathOnly(disk: NormalizedDisk): Promise<ResolvedDisk> {
  if (disk.path === undefined) throw new VirtqError('NOT_SUPPORTED', `disk ${disk.target} names a volume, and this shim was started without virtstoraged`);
  return { ...disk, path: disk.path };
}

/**
 * The directories, the lock manager and the QEMU binary's capabilities: mostly synchronous calls on local files
 * (issue 15). Both settle before a failure (the lock manager's first) is thrown.
 */
export async function leasesAndCapabilities(cfg: PartsConfig & CapsConfig, def: { name: string; uuid: string }, log: Logger): Promise<[VmLeases, QemuCapabilities]> {
  const leasesReady = Promise.resolve().then(() => { mkdirSync(shimDir(cfg.layout), { recursive: true, mode: 0o755 }); mkdirSync(cfg.layout.log, { recursive: true, mode: 0o755 }); }).then(() => shimLeases(cfg, def, log));
  const capsReady = resolveBinary(cfg.qemuBinary, cfg.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin')
    .then((binary) => probeCapabilities(binary, {
      cacheDir: join(cfg.layout.state, 'cache'), clock: cfg.clock, ...(cfg.knownCaps === undefined ? {} : { known: cfg.knownCaps }),
      onCacheNotWritten: (err) => log.warn({ err, msgId: 'QEMU_CAPS_NOT_CACHED' }, 'cannot cache QEMU\'s capabilities; the next start probes again'),
    }));
  await allDone([leasesReady, capsReady]);
  return [await leasesReady, await capsReady];
}

/** The definition with its volumes found (a successor's was resolved by its predecessor); a failure closes `service`. */
export async function resolvedOrClosed(def: NormalizedDefinition, saved: RuntimeState | undefined, resolver: DiskResolver | undefined, service: Pick<DaemonService, 'close'>): Promise<ResolvedDefinition> {
  try {
    return saved?.definition ?? await resolveDefinition(def, resolver);
  } catch (err) {
    await service.close();
    throw err;
  }
}

/** The VM's service: its sockets (a successor's inherited, then its own to remove), server info, RPC metrics in the VM's registry. */
export function shimService(cfg: ServiceParts, sockets: SocketPaths, registry: Registry, info: () => Record<string, unknown>): DaemonService {
  const h = cfg.handedOver?.fds;
  return new DaemonService({
    daemon: 'virtq-shim', role: 'shim', version: cfg.version, clock: cfg.clock, logs: cfg.logs, sockets,
    ...(h === undefined ? {} : { inherited: { rw: h.rw, ro: h.ro, admin: h.admin }, inheritedOwned: true }),
    info, metrics: { registry, ...rpcMetricsFor(registry, [virtqProgram]) },
  });
}

// The lock manager is loaded before anything else is set up. Fail closed: without it no VM
// starts; a successor attaching to a running QEMU still attaches (refusing would orphan the
// VM), but hot-plug and restarts then refuse, and server info says why.
export async function shimLeases(cfg: PartsConfig, def: { name: string; uuid: string }, log: Logger): Promise<VmLeases> {
  const lock = await loadLockManager(cfg.layout, cfg.lockPlugins ?? builtinLockPlugins(), { host: hostname(), clock: cfg.clock, ...(cfg.spareLifeline === undefined ? {} : { spareLifeline: cfg.spareLifeline }) });
  if (!lock.status.ok) {
    if (cfg.mode.kind === 'start') {
      throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot start VM "${def.name}": lock manager "${lock.status.plugin}" is unavailable: ${lock.status.error ?? 'unknown error'}`, { details: { ...lock.status } });
    }
    log.error({ msgId: 'LOCK_MANAGER_UNAVAILABLE', ...lock.status }, 'lock manager unavailable: hot-plug and restarts are refused');
  }
  return new VmLeases(lock, { vm: def.name, uuid: def.uuid, shimPid: process.pid }, cfg.logs.module('lock'));
}


/**
 * Binds the VM's read-write socket. A shim of this VM whose VM stopped a moment ago may still
 * hold it while it exits (a warm shim can be handed the next start at once), so a socket in use
 * is tried again for up to `graceMs`; still in use after that, another shim serves the VM: NAME_IN_USE.
 */
export async function listenOwnSocket(service: Pick<DaemonService, 'listen'>, name: string, path: string, clock: Clock, graceMs = 2000): Promise<void> {
  const begun = clock.monotonic();
  for (;;) {
    try {
      await service.listen('rw');
      return;
    } catch (err) {
      if (VirtqError.from(err).code !== 'SOCKET_IN_USE') throw err;
      if (clock.monotonic() - begun >= graceMs) throw new VirtqError('NAME_IN_USE', `VM name "${name}" is in use: a shim already serves ${path}`, { cause: err });
    }
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 25));
  }
}

/** How long a reply waits at most for virtqemud to acknowledge the updates sent before it. */
const LISTED_WAIT_MS = 1000;

/**
 * What a reply that reports a state change waits for: the state file written, the journal's events
 * fsync'd (asked now), virtqemud's acknowledgement of the updates sent (at most LISTED_WAIT_MS).
 * Each concerns what was written or sent before the call, so the three overlap (session 24; they ran
 * one after the other, the fsync begun only once the state file was written).
 */
export async function durableWaits(persisting: Promise<void>, journal: { flushed(): Promise<void> }, registrar: { flush(): Promise<void> } | undefined, clock: Clock): Promise<void> {
  const listed = registrar === undefined ? undefined : Promise.race([registrar.flush(), delay(clock, LISTED_WAIT_MS)]);
  await Promise.all([persisting, journal.flushed(), listed]);
}

/** Waits for every one of `steps` (so none is still running when a failure is handled), then rethrows the first failure. */
export async function allDone(steps: ReadonlyArray<Promise<unknown> | undefined>): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

/**
 * The name check of a shim that has bound the VM's socket: a live QEMU recorded in the state file
 * holds the name even with no shim serving it (NAME_IN_USE); a successor needs that QEMU (NO_DOMAIN).
 */
export async function claimName(mode: string, name: string, stateFile: string, saved: RuntimeState | undefined): Promise<void> {
  if (mode === 'attach') {
    if (saved?.qemuPid === undefined || !isLiveQemu(saved.qemuPid, saved.uuid)) {
      throw new VirtqError('NO_DOMAIN', `VM "${name}" is not running (no live QEMU in ${stateFile}); nothing to attach to`);
    }
    return;
  }
  // Read synchronously: QEMU's spawn waits for this check (see readRuntimeStateSync).
  const existing = readRuntimeStateSync(stateFile);
  if (existing?.qemuPid !== undefined && isLiveQemu(existing.qemuPid, existing.uuid)) {
    throw new VirtqError('NAME_IN_USE', `VM "${name}" is still running (QEMU pid ${existing.qemuPid}) without a shim; re-attach with: virtq-shim --attach ${name}`);
  }
}
