// The VM's monitor connection: taken through the hypervisor driver, and taken again when the
// monitor drops while the process still runs (QEMU redials within a second, reconnect=1).
import type { Socket } from 'node:net';
import type { Clock, Logger } from '../../protocol/index.js';
import type { HypervisorDriver, HypervisorEvents, HypervisorMonitor, MonitorHandover } from '../../drivers/hypervisor/types.js';
import { VirtqError } from '../../protocol/index.js';
import type { MonitorListener } from './monitor-listener.js';
import type { QemuProcess } from './qemu-process.js';

/** What the link needs. */
export interface MonitorLinkDeps {
  clock: Clock;
  log: Logger;
  driver: HypervisorDriver;
  monitors: MonitorListener;
  events: HypervisorEvents;
  /** The process the monitor belongs to, while there is one. */
  process(): QemuProcess | undefined;
  onCommandDone?: (command: string, seconds: number, ok: boolean) => void;
}

/** One VM's current monitor, if connected. */
export class MonitorLink {
  private mon: HypervisorMonitor | undefined;
  private handedOver = false;
  private socket: Socket | undefined;

  constructor(private readonly d: MonitorLinkDeps) {}

  get current(): HypervisorMonitor | undefined {
    return this.mon;
  }

  /** Takes `socket` as the monitor, closing any previous one. */
  async attach(socket: Socket): Promise<void> {
    this.mon?.close();
    this.handedOver = false;
    const resume = this.d.monitors.resumeOf(socket);
    this.socket = socket;
    const monitor = await this.d.driver.connectMonitor(socket, {
      ...(resume === undefined ? {} : { resume }),
      events: this.d.events,
      log: this.d.log.child({ module: 'qemu.qmp' }),
      ...(this.d.onCommandDone === undefined ? {} : { onCommandDone: this.d.onCommandDone }),
      onClose: () => {
        if (this.handedOver) return; // the connection lives on in the successor
        if (this.mon === monitor) this.mon = undefined;
        const proc = this.d.process();
        proc?.poke();
        if (proc !== undefined) void this.redial(proc);
      },
    });
    this.mon = monitor;
  }

  /** The connected monitor's socket (a shim upgrade passes its fd to the successor). */
  get currentSocket(): Socket | undefined {
    return this.mon === undefined || this.mon.isClosed ? undefined : this.socket;
  }

  /** A shim upgrade: gives the open connection up (no redial); OPERATION_INVALID when there is none. */
  handOver(stopReading: (socket: Socket) => void): MonitorHandover {
    const mon = this.mon;
    if (mon === undefined || mon.isClosed) throw new VirtqError('OPERATION_INVALID', 'the VM has no monitor connection to hand over');
    this.handedOver = true;
    try {
      const out = mon.handOver(stopReading);
      this.mon = undefined;
      return out;
    } catch (err) {
      this.handedOver = false;
      throw err;
    }
  }

  close(): void {
    this.mon?.close();
    this.mon = undefined;
  }

  private async redial(proc: QemuProcess): Promise<void> {
    try {
      const socket = await this.d.monitors.next(this.d.clock, 5000, proc.exited);
      if (this.d.process() === proc) await this.attach(socket);
    } catch {
      // The process exited: the VM's exit handling takes over.
    }
  }
}
