// Builds a shim's object graph from its options: layout, clock, logs, spawner, registrar. The
// only place where real implementations are chosen; tests build Shim with their own.
import { join } from 'node:path';
import { daemonSockets, randomUuid, rootLayout, sessionLayout, systemClock, systemLayout, type Layout } from '../protocol/index.js';
import type { QemuCapabilities } from '../drivers/hypervisor/qemu/capabilities.js';
import { LineLogHub } from '../daemon/line-log.js';
import type { Logs } from '../daemon/log-filters.js';
import { childSpawner, qemuEnv } from './vm/qemu-process.js';
import { connectRegistrar } from './registration.js';
import { Shim, type ShimConfig, type ShimMode } from './shim.js';
import { networkLookup, secretLookup, storageLookup } from './daemon-lookups.js';
import { cgroupOomWatch } from './vm/oom-watch.js';
import type { HostQmpProxyOptions } from './qmp-proxy/config.js';
import type { SpareLifeline } from '../drivers/lock/types.js';
import type { QemuLauncher } from './vm/qemu-launcher.js';
import type { HandoverFds } from './upgrade/handover-wire.js';
import type { HandedOver, RelaunchCommand } from './upgrade/parts.js';

/** Parsed command-line options of virtq-shim. */
export interface ShimOptions {
  root: string | undefined;
  /** Without a root: the system or session layout (default: system for root, else session). */
  placement: 'system' | 'session' | undefined;
  mode: ShimMode;
  /** VM name, for the log file name. */
  name: string;
  register: boolean;
  registerTimeoutMs: number;
  embed: boolean;
  qemuBinary: string;
  logFilters: string | undefined;
  logStderr: boolean;
  metricsAddress: string | undefined;
  /** virtstoraged and virtsecretd for volume and encrypted disks (default: those of the shim's own root or mode). */
  storageUri: string | undefined;
  secretUri: string | undefined;
  /** virtnetworkd for network interfaces (default: the one of the shim's own root or mode). */
  networkUri: string | undefined;
  /** How long a start waits for those daemons (and a volume's pool) to come up. */
  daemonWaitMs: number;
  /** The shared QMP socket's host-wide options (--no-qmp-proxy, --qmp-proxy-allow). */
  qmpProxy?: HostQmpProxyOptions;
  /** The successor of an upgrading shim: its sockets' fds (see shim/upgrade/). */
  handover?: HandoverFds;
  /** How an upgrade starts this shim's successor. */
  relaunch?: RelaunchCommand;
  /** A lease lifeline locked while a warm pool shim waited for its definition (shim/warm-up.ts). */
  spareLifeline?: SpareLifeline;
  /** QEMU's launcher, started by a warm pool shim beside its spare lifeline (shim/vm/qemu-launcher.ts). */
  qemuLauncher?: QemuLauncher;
  /** The QEMU capabilities a warm pool shim read from the cache while it waited (rechecked against the binary at the start). */
  knownCaps?: QemuCapabilities;
}

/** The URI of `scheme`'s daemon beside a shim placed under `root`, or in the system or session layout. */
export function besideUri(scheme: 'storage' | 'secret' | 'network', root: string | undefined, placement: 'system' | 'session' | undefined, uid: number): string {
  if (root !== undefined) return `${scheme}:///system?root=${root}`;
  return `${scheme}:///${(placement ?? (uid === 0 ? 'system' : 'session'))}`;
}

/** The layout for `root`, or the default for this user. */
export function layoutFor(root: string | undefined, placement: 'system' | 'session' | undefined, env: NodeJS.ProcessEnv, uid: number): Layout {
  if (root !== undefined) return rootLayout(root);
  return (placement ?? (uid === 0 ? 'system' : 'session')) === 'system' ? systemLayout() : sessionLayout(env);
}

/** Starts a shim with real dependencies. */
export async function composeShim(opts: ShimOptions, env: NodeJS.ProcessEnv, version: string, handedOver?: HandedOver): Promise<{ shim: Shim; logs: Logs }> {
  const layout = layoutFor(opts.root, opts.placement, env, process.getuid?.() ?? 0);
  const clock = systemClock();
  const logs = new LineLogHub({
    name: 'virtq-shim', bindings: { vm: opts.name }, filters: opts.logFilters ?? env['LOG_FILTERS'],
    file: join(layout.log, `${opts.name}.log`), stderr: opts.logStderr,
  });
  const register = opts.register && !opts.embed;
  const uid = process.getuid?.() ?? 0;
  const uris = {
    storage: opts.storageUri ?? besideUri('storage', opts.root, opts.placement, uid),
    secret: opts.secretUri ?? besideUri('secret', opts.root, opts.placement, uid),
    network: opts.networkUri ?? besideUri('network', opts.root, opts.placement, uid),
    clock, connectWaitMs: opts.daemonWaitMs,
  };
  const oom = cgroupOomWatch(logs.module('oom'));
  const plain = childSpawner(oom, qemuEnv(env));
  const config: ShimConfig = {
    layout, mode: opts.mode, qemuBinary: opts.qemuBinary, clock, logs, spawner: opts.qemuLauncher?.spawner(plain, oom) ?? plain, env,
    newUuid: randomUuid, version, private: opts.embed,
    ...(handedOver === undefined ? {} : { handedOver }), ...(opts.relaunch === undefined ? {} : { relaunch: opts.relaunch }),
    ...(opts.metricsAddress === undefined ? {} : { metricsAddress: opts.metricsAddress }),
    ...(opts.qmpProxy === undefined ? {} : { qmpProxy: opts.qmpProxy }),
    ...(opts.spareLifeline === undefined ? {} : { spareLifeline: opts.spareLifeline }),
    ...(opts.knownCaps === undefined ? {} : { knownCaps: opts.knownCaps }),
    daemons: { volumes: storageLookup(uris), secrets: secretLookup(uris), ports: networkLookup(uris), waitMs: opts.daemonWaitMs },
    ...(register ? { connectRegistrar: (log) => connectRegistrar(daemonSockets(layout).rw, clock, log, opts.registerTimeoutMs) } : {}),
  };
  try {
    return { shim: await Shim.start(config), logs };
  } finally {
    opts.qemuLauncher?.discard(); // a no-op once it runs QEMU; killed when the start did not use it
  }
}
