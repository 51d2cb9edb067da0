// The QEMU hypervisor driver: the command line from argv.ts, the monitor from qmp/, hot-plug
// from hotplug.ts, behind the HypervisorDriver interface the shim's Vm uses.
import type { Clock } from '../../../protocol/clock.js';
import type { HypervisorDriver, HypervisorMonitor } from '../types.js';
import { buildQemuArgv, type Accel } from './argv.js';
import { checkStartFilesSync, hostFilesOf } from './host-devices.js';
import { diskStats, plugDisk, unplugDisk } from './hotplug.js';
import { plugNic, unplugNic } from './hotplug-nic.js';
import { QmpMonitor, type QmpGreeting, type QmpMonitorOptions } from './qmp/monitor.js';

/** How this host runs QEMU for one VM. */
export interface QemuDriverOptions {
  clock: Clock;
  binary: string;
  accel: Accel;
  sandbox: boolean;
  monitorSocket: string;
  consoleSocket: string;
}

/** The QEMU driver for one VM. */
export function qemuDriver(o: QemuDriverOptions): HypervisorDriver {
  return {
    async prepareLaunch(def, options = {}) {
      // Refused here, naming the field, rather than by QEMU after it has started (or hung on a FIFO).
      // Synchronous stat(2) calls: QEMU's spawn waits for them (host-devices.ts says why).
      const hostDevices = checkStartFilesSync(hostFilesOf(def));
      const argv = buildQemuArgv(def, {
        monitorSocket: o.monitorSocket, consoleSocket: o.consoleSocket, accel: o.accel, sandbox: o.sandbox, hostDevices,
        ...(options.secretFiles === undefined ? {} : { secretFiles: options.secretFiles }),
        ...(options.incoming === true ? { incoming: true } : {}),
      });
      return { binary: o.binary, argv };
    },
    async connectMonitor(socket, { events, log, onClose, onCommandDone, onRawEvent, resume }) {
      const options: QmpMonitorOptions = {
        clock: o.clock, log, onClose, onRawEvent,
        callbacks: {
          onShutdown: (e) => events.onShutdown(e),
          onStop: () => events.onStop(),
          onResume: () => events.onResume(),
          onReset: (e) => events.onReset(e),
          onDeviceDeleted: (e) => events.onDeviceDeleted(e),
          onGuestPanicked: () => events.onGuestPanicked(),
        },
        ...(onCommandDone === undefined ? {} : { onCommandDone }),
      };
      const mon = resume === undefined ? await QmpMonitor.attach(socket, options) : QmpMonitor.resume(socket, resume.session as QmpGreeting, resume.leftover, options);
      return qemuMonitor(mon);
    },
  };
}

function qemuMonitor(mon: QmpMonitor): HypervisorMonitor {
  return {
    get isClosed() { return mon.isClosed; },
    queryStatus: () => mon.queryStatus(),
    cont: () => mon.cont(),
    stop: () => mon.stop(),
    systemPowerdown: () => mon.systemPowerdown(),
    systemReset: () => mon.systemReset(),
    quit: () => mon.quit(),
    raw: (command) => mon.raw(command),
    plugDisk: (def, disk, beforePlug, passphrase) => plugDisk(mon, def, disk, beforePlug, passphrase),
    unplugDisk: (target, waitDeleted) => unplugDisk(mon, target, waitDeleted),
    plugNic: (def, nic) => plugNic(mon, def, nic),
    unplugNic: (mac, waitDeleted) => unplugNic(mon, mac, waitDeleted),
    diskStats: (disks) => diskStats(mon, disks),
    close: () => mon.close(),
    handOver: (stopReading) => {
      const { socket, leftover, greeting } = mon.handOver(stopReading);
      return { socket, leftover, session: greeting };
    },
  };
}
