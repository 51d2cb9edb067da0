// The QEMU object ids virtq gives what it creates: disks (disk-, proto-, fmt-), their secrets
// (sec-), PCIe root ports (rp-), NICs (nicN/netN from the command line, nic-/net- when
// hot-plugged) and the monitor and console chardevs. Anything else in QEMU with one of these ids
// is virtq's by construction, so the shared QMP socket never lets another tool add or remove it.
import { CONSOLE_CHARDEV, MONITOR_CHARDEV } from './argv.js';

const OWNED = /^(?:(?:disk|proto|fmt|sec|rp|nic|net)-.+|nic\d+|net\d+)$/;

/** True when `id` (an id, or a QOM path whose last element is one) names something virtq made. */
export function isVirtqOwnedId(id: string): boolean {
  const last = id.startsWith('/') ? id.slice(id.lastIndexOf('/') + 1) : id;
  return OWNED.test(last) || last === MONITOR_CHARDEV || last === CONSOLE_CHARDEV;
}

/** True when a QOM path names something virtq made, or something inside it (`/objects/sec-vda`, `/machine/peripheral/disk-vda/...`). */
export function qomPathTouchesOwned(path: string): boolean {
  return path.split('/').some((part) => part !== '' && isVirtqOwnedId(part));
}
