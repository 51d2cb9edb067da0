// The pieces of a running shim that an upgrade moves (decision 0021): the shim exposes them
// through Shim.handoverParts(), the predecessor side (predecessor.ts) hands them over, and a
// successor built with ShimConfig.handedOver serves them again.
import type { Clock, Logger } from '../../protocol/index.js';
import type { ShimSocketPaths } from '../../daemon/runtime-state.js';
import type { DaemonService } from '../../daemon/service.js';
import type { ConsoleHub } from '../vm/console.js';
import type { MonitorListener } from '../vm/monitor-listener.js';
import type { Vm } from '../vm/vm.js';
import { socketFromFd } from '../../drivers/host/fd-handover.js';
import type { HandoverFds } from './handover-wire.js';

/** How a shim starts its successor: the node binary and the shim's script as they are on disk now. */
export interface RelaunchCommand {
  execPath: string;
  /** Node's own options (heap limits), kept for the successor. */
  execArgv: readonly string[];
  script: string;
  /** The shim's own command-line arguments (the successor's are derived from them). */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
}

/** What a successor is given. */
export interface HandedOver {
  fds: HandoverFds;
  /** QMP bytes the predecessor read but did not parse. */
  leftover: Buffer;
  /** The negotiated QMP session (the driver's; QEMU's greeting). */
  session: unknown;
}

/** A running shim's parts, as an upgrade sees them. */
export interface HandoverParts {
  vm: Vm;
  service: DaemonService;
  sockets: ShimSocketPaths;
  console: ConsoleHub;
  monitors: MonitorListener;
  log: Logger;
  clock: Clock;
  relaunch: RelaunchCommand | undefined;
  /** True once the shim is stopping (SIGTERM), its VM has ended, or it handed the VM over. */
  stopping(): boolean;
  /** Settles once the shim has brought its VM up (started QEMU, or re-attached to it): before, it has nothing to hand over. */
  up: Promise<void>;
  /** Stops what must not run twice (metrics polling and HTTP, the registration) and waits for the state file. */
  freeze(): Promise<void>;
  /** The upgrade was rolled back: metrics and registration again. */
  thaw(): Promise<void>;
  /** The successor serves the VM: this shim is done (nothing is unlinked, QEMU is left alone). */
  handedOver(): void;
}

/** The successor's side: QEMU's monitor and console connections, continued where the predecessor stopped. */
export function adoptQemuConnections(h: HandedOver, console: ConsoleHub, monitors: MonitorListener): void {
  if (h.fds.console !== undefined) console.adoptQemu(h.fds.console);
  monitors.offer(socketFromFd(h.fds.qmp), { leftover: h.leftover, session: h.session });
}
