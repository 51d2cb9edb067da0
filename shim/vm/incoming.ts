// The one way a VM starts without booting: its QEMU is spawned with `-incoming defer` and, once
// its monitor is up, is fed its state by `load` — a save image (restore, managed save) or a live
// migration's stream from another host (shim/vm/migration-incoming.ts) — or, when the source is
// known before QEMU runs (a restore's image), spawned with `-incoming URI` so QEMU loads from its
// start while the shim is still connecting its monitor. Vm.start takes one.
import { VirtqError } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';

/** How a QEMU waiting with `-incoming defer` gets its state, and how the VM is reported meanwhile. */
export interface IncomingStart {
  /**
   * Whether the disks are leased when QEMU spawns. A restore leases them as a boot would; an
   * incoming migration may not (the source runs on them until switchover): only the lifeline.
   */
  leasesDisks: boolean;
  /**
   * The shim's descriptors QEMU inherits for its state (a restore: the checked image, so QEMU
   * reads the file itself and no byte passes through the shim); after the lease lifelines.
   */
  fds?: readonly number[];
  /**
   * The URI QEMU loads from at its start (`-incoming URI` instead of `defer`), given `fds` as
   * numbered in QEMU; `load` then only waits. Absent: QEMU waits and `load` sends `migrate-incoming`.
   */
  uri?(qemuFds: readonly number[]): string;
  /** More arguments QEMU starts with, beside `uri` (an incoming migration's `-global migration.x-events=on`). */
  qemuArgs?: readonly string[];
  /** Feeds QEMU its state; `qemuFds` are `fds` as numbered in QEMU. Resolves when the VM may be reported started (loaded, or listening). */
  load(mon: HypervisorMonitor, qemuFds: readonly number[]): Promise<void>;
  /** Closes the shim's copies of `fds`; called once QEMU has them, or the start failed. */
  release?(): Promise<void>;
  /** The reason the started VM is reported with. */
  reason: string;
}

/**
 * QEMU's argv and the numbers its inherited incoming fds get (from 3, after `leaseFds` lease
 * lifelines): with a start that names its source up front, `-incoming defer` is replaced by it.
 */
export function incomingSpawn(argv: readonly string[], incoming: IncomingStart | undefined, leaseFds: number): { argv: readonly string[]; fds: number[] } {
  const fds = (incoming?.fds ?? []).map((_, i) => 3 + leaseFds + i);
  const uri = incoming?.uri?.(fds);
  const extra = incoming?.qemuArgs ?? [];
  return { argv: uri === undefined ? [...argv, ...extra] : [...withIncomingUri(argv, uri), ...extra], fds };
}

/** `argv` (built with `-incoming defer`) with the deferred source replaced by `uri`. */
export function withIncomingUri(argv: readonly string[], uri: string): string[] {
  const at = argv.indexOf('-incoming');
  if (at < 0 || argv[at + 1] !== 'defer') throw new VirtqError('INTERNAL', 'the QEMU argv has no -incoming defer to replace');
  return [...argv.slice(0, at + 1), uri, ...argv.slice(at + 2)];
}
