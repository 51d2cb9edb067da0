// Whether a VM's shared QMP socket is served and what it allows: the host's word (virtq-shim's
// --no-qmp-proxy and --qmp-proxy-allow, which virtqemud passes on to every shim) and the VM's
// (`qmpProxy` in its definition). Off anywhere is off; the allow-lists add up.
import type { Logger, QmpProxySpec } from '../../protocol/index.js';
import type { HypervisorDriver } from '../../drivers/hypervisor/types.js';
import type { Vm } from '../vm/vm.js';
import { QmpProxyServer, type ProxyLimits } from './server.js';
import { isShimOwnedCommand } from './policy.js';

/** The host-wide options. */
export interface HostQmpProxyOptions {
  enabled: boolean;
  allow: readonly string[];
}

/** The default: served, and only read-only commands. */
export const DEFAULT_HOST_QMP_PROXY: HostQmpProxyOptions = { enabled: true, allow: [] };

/** The effective allow-list, or undefined when the socket is off. */
export function effectiveAllow(host: HostQmpProxyOptions, vm: QmpProxySpec | undefined): Set<string> | undefined {
  if (!host.enabled || vm?.enabled === false) return undefined;
  return new Set([...host.allow, ...(vm?.allow ?? [])]);
}

/** Taps every monitor event the driver's monitors see, without the VM knowing. */
export function withEventTap(driver: HypervisorDriver, tap: (event: Record<string, unknown>) => void): HypervisorDriver {
  return {
    prepareLaunch: (def, options) => driver.prepareLaunch(def, options),
    connectMonitor: (socket, options) => driver.connectMonitor(socket, {
      ...options,
      onRawEvent: (event) => {
        options.onRawEvent?.(event);
        tap(event);
      },
    }),
  };
}

/** The VM's shared QMP socket, or undefined when the host or the definition turned it off. */
export function qmpProxyFor(host: HostQmpProxyOptions | undefined, vm: Vm, o: { path: string; log: Logger; onChanged(command: string): void; limits?: Partial<ProxyLimits> }): QmpProxyServer | undefined {
  const allow = effectiveAllow(host ?? DEFAULT_HOST_QMP_PROXY, vm.def.qmpProxy);
  if (allow === undefined) return undefined;
  const ignored = [...allow].filter(isShimOwnedCommand);
  if (ignored.length > 0) o.log.warn({ msgId: 'QMP_PROXY_ALLOW_IGNORED', commands: ignored }, 'shared QMP socket: the allow-list names commands the shim keeps for itself; they stay refused');
  return new QmpProxyServer({
    path: o.path, log: o.log, allow,
    monitor: () => vm.monitor(),
    runJob: (name, fn) => vm.jobs.run(name, fn),
    onChanged: (command) => o.onChanged(command),
    ...(o.limits === undefined ? {} : { limits: o.limits }),
  });
}
