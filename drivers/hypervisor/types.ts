// What a VM needs from a hypervisor, whichever one it is: a way to launch it (the program and its
// arguments; the shim spawns it), a monitor connection once it has dialled in, and the operations
// the lifecycle and hot-plug run over that monitor. QEMU (drivers/hypervisor/qemu/driver.ts) is
// the one real implementation; the shim's Vm sees only this interface.
import type { Socket } from 'node:net';
import type { ResolvedDefinition, ResolvedDisk } from '../../protocol/definition.js';

/** The hypervisor process to spawn. */
export interface LaunchPlan {
  binary: string;
  argv: string[];
}

/** The run state the hypervisor reports (`query-status` in QEMU). */
export interface RunStatus {
  running: boolean;
  status: string;
}

/** I/O counters of one disk, by guest target. */
export interface DiskStats {
  target: string;
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
  flushOps: number;
}

/** What the hypervisor reports on its own; every callback is the VM's. */
export interface HypervisorEvents {
  onShutdown(event: { guest: boolean; reason: string }): void;
  onStop(): void;
  onResume(): void;
  onReset(event: { guest: boolean; reason: string }): void;
  onDeviceDeleted(event: { device: string | undefined }): void;
  onGuestPanicked(): void;
}

/** Waits for the guest to release a device; made by the VM, which sees the events. */
export type WaitDeviceDeleted = (deviceId: string) => { promise: Promise<void>; cancel(): void };

/** A connected monitor. */
export interface HypervisorMonitor {
  readonly isClosed: boolean;
  queryStatus(): Promise<RunStatus>;
  cont(): Promise<void>;
  stop(): Promise<void>;
  systemPowerdown(): Promise<void>;
  systemReset(): Promise<void>;
  quit(): Promise<void>;
  /** A raw monitor command (QMP's JSON in QEMU); the caller taints the VM. */
  raw(command: object): Promise<unknown>;
  /**
   * Checks `disk` can be plugged, calls `beforePlug` (leases), then adds its backend and device,
   * undoing what was added when a step fails.
   */
  plugDisk(def: ResolvedDefinition, disk: ResolvedDisk, beforePlug: () => Promise<void>, passphrase?: Uint8Array): Promise<void>;
  /** Removes the device, waits for the guest to release it, then removes its backend. */
  unplugDisk(target: string, waitDeleted: WaitDeviceDeleted): Promise<void>;
  /** Adds a virtio NIC with `mac` on the (existing) tap `tap`, removing what it added when a step fails. */
  plugNic(def: ResolvedDefinition, nic: { mac: string; tap: string }): Promise<void>;
  /** Removes the NIC with `mac`, waits for the guest to release it, then removes its backend. */
  unplugNic(mac: string, waitDeleted: WaitDeviceDeleted): Promise<void>;
  /** Counters of the definition's disks that the hypervisor knows of. */
  diskStats(disks: readonly ResolvedDisk[]): Promise<DiskStats[]>;
  close(): void;
  /** Stops reading and gives the connection up, open, to another shim (an upgrade); no command may be in flight. */
  handOver(stopReading: (socket: Socket) => void): MonitorHandover;
}

/** A monitor connection handed from one shim to its successor. */
export interface MonitorHandover {
  socket: Socket;
  /** Bytes read but not yet parsed: the successor parses them first. */
  leftover: Buffer;
  /** What the driver needs to continue the session without a new handshake (JSON-serialisable). */
  session: unknown;
}

/** How a monitor reports back to its VM. */
export interface MonitorOptions {
  /** The socket is a handed-over, already negotiated connection: continue it (see MonitorHandover). */
  resume?: { leftover: Buffer; session: unknown };
  events: HypervisorEvents;
  log: { debug(obj: Record<string, unknown>, msg: string): void; warn(obj: Record<string, unknown>, msg: string): void };
  /** The connection closed (the process exited, or it will redial). */
  onClose(): void;
  /** After each answered command (for the latency histogram). */
  onCommandDone?: (command: string, seconds: number, ok: boolean) => void;
  /** Every event as the hypervisor sent it (QMP's JSON object), after `events` saw it: the shared QMP socket fans them out. */
  onRawEvent?: (event: Record<string, unknown>) => void;
}

/** What a launch needs besides the definition. */
export interface LaunchOptions {
  /** For each encrypted disk, by target: a 0600 file holding its passphrase, removed once the process is up. */
  secretFiles?: ReadonlyMap<string, string>;
  /** Start waiting for a saved or migrated state (`-incoming defer`) instead of booting. */
  incoming?: boolean;
}

/** A hypervisor as the shim's Vm uses it. */
export interface HypervisorDriver {
  /** Checks the host files the definition names and builds the process to spawn. */
  prepareLaunch(def: ResolvedDefinition, options?: LaunchOptions): Promise<LaunchPlan>;
  /** Takes the monitor connection the launched process dialled in on. */
  connectMonitor(socket: Socket, options: MonitorOptions): Promise<HypervisorMonitor>;
}
