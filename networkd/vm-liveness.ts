// Whether the VM a port belongs to still runs, without asking virtqemud or the shim (both may be
// dead while QEMU runs on): the VM's runtime state file under the same root names its QEMU and
// shim pids, and /proc says whether they live. A VM of another root (no state file here) is
// looked for by its `-uuid` in /proc. When in doubt (an unreadable state file) the VM is alive.
import { shimStateFile, type Layout } from '../protocol/index.js';
import { loadRuntimeState } from '../daemon/runtime-state.js';
import { findLiveQemu, isLiveQemu } from '../drivers/host/proc.js';
import type { NetworkPort } from '../drivers/network/types.js';

/** The binary name in a shim's command line (`node .../virtq-shim.js ...`). */
const SHIM_MARKER = 'virtq-shim';

/** The liveness check of ports under `layout`. */
export function vmLiveness(layout: Layout): (port: NetworkPort) => Promise<boolean> {
  return async (port) => {
    if (port.vmName !== undefined) {
      let state;
      try {
        state = await loadRuntimeState(shimStateFile(layout, port.vmName));
      } catch {
        return true;
      }
      if (state !== undefined && state.uuid.toLowerCase() === port.vmUuid) {
        if (state.qemuPid !== undefined && isLiveQemu(state.qemuPid, state.uuid)) return true;
        // A live shim may be between two QEMUs (a crashed VM restarting) or about to release the port itself.
        if (isLiveQemu(state.shimPid, SHIM_MARKER)) return true;
      }
    }
    return findLiveQemu(port.vmUuid) !== undefined;
  };
}
