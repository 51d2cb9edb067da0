// Definition → QEMU command line, as a pure function: same input, same argv, no I/O. Owns the
// command-line policy (always -S, -no-shutdown, client chardevs for monitor and console, JSON
// -blockdev/-device, q35 root ports); see docs/decisions/0003-qemu-argv.md.
import { derivedMac, type ResolvedDefinition, type ResolvedInterface } from '../../../protocol/definition.js';
import { VirtqError } from '../../../protocol/errors.js';
import { blockdevNodesFor, deviceFor, secretId, isQ35, rootPortFor } from './disk-devices.js';

/** An accelerator QEMU is told to use. */
export type Accel = 'kvm' | 'tcg';

/** Everything the command line needs besides the definition. */
export interface ArgvOptions {
  /** The shim's listening socket for QMP; QEMU dials it (and redials a replacement shim). */
  monitorSocket: string;
  /** The shim's listening socket for the serial console; QEMU dials it too. */
  consoleSocket: string;
  /** The accelerator already chosen (see `chooseAccel` in capabilities.ts). */
  accel: Accel;
  /** Adds QEMU's seccomp sandbox; only when the binary reports `sandbox` support. */
  sandbox: boolean;
  /** QEMU writes its pid here. */
  pidfile?: string;
  /** Disk paths the caller found to be block devices (stat): they get the `host_device` driver. */
  hostDevices?: readonly string[];
  /** Spare pcie-root-ports `rp1..rpN` for hot-plug on q35 (default 4). */
  hotplugPorts?: number;
  /** For each encrypted disk, by target: the 0600 file holding its passphrase. */
  secretFiles?: ReadonlyMap<string, string>;
  /** Wait for an incoming state (`-incoming defer`; the shim sends `migrate-incoming`): restore and migration. */
  incoming?: boolean;
}

/** The chardev id of the QMP monitor socket. */
export const MONITOR_CHARDEV = 'mon0';
/** The chardev id of the serial console socket. */
export const CONSOLE_CHARDEV = 'ser0';
/** Default number of spare q35 root ports. */
export const DEFAULT_HOTPLUG_PORTS = 4;
/** First pcie.0 slot used for root ports (0 is the host bridge; 1 is left free; 0x1f is ICH9). */
const FIRST_ROOT_PORT_SLOT = 2;

/** One pcie-root-port on q35. */
export interface RootPort {
  id: string;
  chassis: number;
  addr: string;
  /** The cold-plugged device it was made for, or undefined for a spare hot-plug port. */
  holds: string | undefined;
}

/**
 * Builds QEMU's argv (without the binary) for `def`. QEMU always starts paused (-S): the shim
 * issues `cont` once it holds the monitor. Throws INVALID_ARG for disks QEMU cannot serve.
 */
export function buildQemuArgv(def: ResolvedDefinition, opts: ArgvOptions): string[] {
  const argv: string[] = [
    '-name', `guest=${qemuOpt(def.name)},debug-threads=on`,
    '-uuid', def.uuid,
    '-machine', qemuOpt(def.machine),
    '-accel', opts.accel,
  ];
  if (def.cpu !== undefined) argv.push('-cpu', qemuOpt(def.cpu));
  argv.push('-m', String(def.memoryMiB), '-smp', String(def.vcpus));
  argv.push('-nodefaults', '-no-user-config', '-display', 'none', '-S', '-no-shutdown');
  // Without -no-reboot QEMU resets the guest itself; otherwise it stops and the shim decides.
  if (def.onReboot !== 'restart') argv.push('-no-reboot');
  argv.push('-msg', 'timestamp=on');
  if (opts.sandbox) argv.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  if (opts.pidfile !== undefined) argv.push('-pidfile', opts.pidfile);
  if (opts.incoming === true) argv.push('-incoming', 'defer');
  argv.push(
    '-chardev', `socket,id=${MONITOR_CHARDEV},path=${qemuOpt(opts.monitorSocket)},reconnect=1`,
    '-mon', `chardev=${MONITOR_CHARDEV},mode=control`,
    '-chardev', `socket,id=${CONSOLE_CHARDEV},path=${qemuOpt(opts.consoleSocket)},reconnect=1`,
    '-serial', `chardev:${CONSOLE_CHARDEV}`,
  );
  if (def.kernel !== undefined) {
    argv.push('-kernel', def.kernel.path);
    if (def.kernel.initrd !== undefined) argv.push('-initrd', def.kernel.initrd);
    if (def.kernel.cmdline !== undefined) argv.push('-append', def.kernel.cmdline);
  }
  if (isQ35(def.machine)) {
    for (const port of rootPortsFor(def, opts.hotplugPorts)) argv.push('-device', json(rootPortDevice(port)));
  }
  const hostDevices = new Set(opts.hostDevices ?? []);
  for (const disk of def.disks) {
    if (disk.encryption !== undefined) {
      // The passphrase is read from a 0600 file the shim removes once QEMU is up: never on the command line.
      const file = opts.secretFiles?.get(disk.target);
      if (file === undefined) throw new VirtqError('INVALID_ARG', `disk ${disk.target} is encrypted but no passphrase file was given for it`, { details: { target: disk.target } });
      argv.push('-object', `secret,id=${secretId(disk.target)},file=${qemuOpt(file)},format=raw`);
    }
    for (const node of blockdevNodesFor(disk, { hostDevice: hostDevices.has(disk.path) })) argv.push('-blockdev', json(node));
    argv.push('-device', json(deviceFor(disk, def.machine)));
  }
  def.interfaces.forEach((iface, i) => {
    argv.push('-netdev', netdevFor(iface, i), '-device', json(nicFor(def, iface, i)));
  });
  return argv;
}

/**
 * The q35 root ports of `def`: one per cold-plugged PCI device (so it can be unplugged later),
 * then `hotplugPorts` spares `rp1..rpN`. Eight functions per pcie.0 slot, so even a maximal
 * definition fits in the root complex.
 */
export function rootPortsFor(def: ResolvedDefinition, hotplugPorts = DEFAULT_HOTPLUG_PORTS): RootPort[] {
  const held = [
    ...def.disks.filter((d) => d.bus === 'virtio').map((d) => d.target),
    ...def.interfaces.map((_, i) => nicId(i)),
  ];
  const ids: { id: string; holds: string | undefined }[] = [
    ...held.map((name) => ({ id: rootPortFor(name), holds: name })),
    ...Array.from({ length: hotplugPorts }, (_, i) => ({ id: `rp${i + 1}`, holds: undefined })),
  ];
  return ids.map(({ id, holds }, k) => ({
    id,
    chassis: k + 1,
    addr: `0x${(FIRST_ROOT_PORT_SLOT + (k >> 3)).toString(16)}.${k & 7}`,
    holds,
  }));
}

/** The ids of the spare root ports a q35 VM has for hot-plug (empty on other machines). */
export function hotplugPortIds(def: ResolvedDefinition, hotplugPorts = DEFAULT_HOTPLUG_PORTS): string[] {
  if (!isQ35(def.machine)) return [];
  return rootPortsFor(def, hotplugPorts).filter((p) => p.holds === undefined).map((p) => p.id);
}

/** The guest MAC of interface `index`: the definition's, else derived from the UUID (stable across restarts). */
export function macFor(def: Pick<ResolvedDefinition, 'uuid'>, iface: ResolvedInterface, index: number): string {
  if (iface.mac !== undefined) return iface.mac.toLowerCase();
  return derivedMac(def.uuid, index);
}

/** Escapes a value for QEMU's key=value option syntax (a comma is doubled). */
export function qemuOpt(value: string): string {
  return value.replaceAll(',', ',,');
}

function nicId(index: number): string {
  return `nic${index}`;
}

function rootPortDevice(port: RootPort): Record<string, unknown> {
  const multifunction = port.addr.endsWith('.0') ? { multifunction: true } : {};
  return { driver: 'pcie-root-port', id: port.id, chassis: port.chassis, bus: 'pcie.0', addr: port.addr, ...multifunction };
}

function netdevFor(iface: ResolvedInterface, index: number): string {
  const id = `net${index}`;
  if (iface.type === 'user') return `user,id=${id}`;
  // A network interface opens the tap of the port virtnetworkd made for it (persistent, on the bridge).
  const ifname = iface.type === 'tap' ? iface.ifname : iface.port?.tap;
  if (ifname === undefined) {
    throw new VirtqError('INVALID_ARG', `interface ${index} (network "${iface.type === 'network' ? iface.network : '?'}") has no port: virtnetworkd gives one when the VM starts`, { details: { path: `/interfaces/${index}` } });
  }
  // script=no: virtq never runs helper scripts (the sandbox denies spawning anyway).
  return `tap,id=${id},ifname=${qemuOpt(ifname)},script=no,downscript=no`;
}

function nicFor(def: ResolvedDefinition, iface: ResolvedInterface, index: number): Record<string, unknown> {
  const bus = isQ35(def.machine) ? { bus: rootPortFor(nicId(index)) } : {};
  return { driver: 'virtio-net-pci', netdev: `net${index}`, mac: macFor(def, iface, index), id: nicId(index), ...bus };
}

function json(value: object): string {
  return JSON.stringify(value);
}
