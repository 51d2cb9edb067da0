// The shim's save procedures (save, managedSave) and the restore step of a start from an image:
// the VM's job pauses it, save-image.ts writes the image, and the VM stops with reason `saved`.
import { asDefined, VirtqError, type Clock, type Handlers, type Layout, type Logger, type VirtqProgram } from '../../protocol/index.js';
import type { IncomingStart } from '../vm/incoming.js';
import { managedSaveFile, openSaveImage } from '../../drivers/hypervisor/qemu/save-image-header.js';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Vm } from '../vm/vm.js';
import { removeSuperseded, saveSocketPath, saveToFile, waitLoaded } from '../vm/save-image.js';
import { VmSnapshots } from '../vm/snapshots.js';
import type { OverlayVolumes } from '../vm/external-snapshot.js';
import type { VmLeases } from '../vm/leases.js';
import { SnapshotStore } from '../../drivers/hypervisor/qemu/snapshot-store.js';

/** What the save handlers need. */
export interface SaveHandlerDeps {
  vm: Vm;
  clock: Clock;
  layout: Layout;
  monitorSocket: string;
  /** Settles once every state change so far is in the state file. */
  persisted(): Promise<void>;
  /** The VM's leases (external snapshots lease their overlays). */
  leases: Pick<VmLeases, 'diskHooks' | 'downgrade' | 'upgrade'>;
  /** virtstoraged, for a volume disk's overlay; undefined without it. */
  volumes: OverlayVolumes | undefined;
  log: Logger;
}

/** The handlers for save, managedSave and the snapshot procedures. */
export function saveHandlers(d: SaveHandlerDeps): Handlers<VirtqProgram> {
  const { vm } = d;
  const mine = (name: string): void => {
    if (name !== vm.def.name) throw new VirtqError('NO_DOMAIN', `this shim runs VM "${vm.def.name}", not "${name}"`);
  };
  const saveTo = async (op: 'save' | 'managedSave', file: string) => {
    let superseded: string | undefined;
    try {
      await vm.saveAndStop(op, async (mon, wasRunning) => {
        ({ superseded } = await saveToFile({ mon, clock: d.clock, file, socket: saveSocketPath(d.monitorSocket), meta: { definition: asDefined(vm.def), running: wasRunning, savedAt: d.clock.now() } }));
      });
      await d.persisted();
    } finally {
      // The image this save replaced is freed once the reply is out, not before (save-image.ts).
      removeSuperseded(superseded, (err) => d.log.warn({ err, msgId: 'SAVE_OLD_IMAGE_LEFT', file: superseded }, 'cannot remove the image a save replaced'));
    }
    return { state: vm.state, reason: vm.reason };
  };
  const hooks = d.leases.diskHooks(vm);
  const snapshots = new VmSnapshots(vm, new SnapshotStore(d.layout.state, vm.def.name), d.clock, {
    hooks, volumes: d.volumes, log: d.log,
    upgrade: (disk, pid) => d.leases.upgrade(disk, pid),
    // An overlay merged away is given back like a detached disk (unless another disk uses it).
    release: async (disk) => { await hooks.afterDetach?.(disk); },
    // The snapshot is taken by then: a lease that stays exclusive until QEMU exits is only logged.
    downgrade: (disk, pid) => d.leases.downgrade(disk, pid).catch((err: unknown) => d.log.warn({ err, msgId: 'LEASE_DOWNGRADE_FAILED', path: disk.path }, 'the image under a new overlay keeps an exclusive lease')),
  });
  return {
    snapshotCreate: async ({ name, snapshot, noMemory, diskOnly }) => {
      mine(name);
      const info = await snapshots.create(snapshot, { noMemory: noMemory === true, diskOnly: diskOnly === true });
      await d.persisted();
      return info;
    },
    snapshotRevert: async ({ name, snapshot }) => { mine(name); await snapshots.revert(snapshot); await d.persisted(); return { state: vm.state, reason: vm.reason }; },
    snapshotDelete: async ({ name, snapshot, metadata, bandwidth }) => { mine(name); await snapshots.delete(snapshot, metadata === true, bandwidth); await d.persisted(); return {}; },
    save: async ({ name, file }) => { mine(name); return saveTo('save', file); },
    managedSave: async ({ name }) => {
      mine(name);
      const file = managedSaveFile(d.layout.state, name);
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      return saveTo('managedSave', file);
    },
  };
}

/**
 * For a start from a save image: the step whose QEMU loads it from its start (`-incoming fd:N`). The image is checked again here (virtqemud checked it too): the shim never
 * feeds QEMU a file it has not read the header of, and a definition it was not started with.
 * QEMU inherits the descriptor the header was read from and reads the stream itself.
 */
export async function restoreStep(file: string, vm: Vm, clock: Clock): Promise<IncomingStart> {
  const { image, handle } = await openSaveImage(file);
  const saved = image.definition as { uuid?: unknown; name?: unknown };
  if (saved.uuid !== vm.def.uuid || saved.name !== vm.def.name) {
    await handle.close();
    throw new VirtqError('INVALID_SAVE_IMAGE', `${file} holds VM "${String(saved.name)}" (${String(saved.uuid)}), not "${vm.def.name}" (${vm.def.uuid})`, { details: { file, reason: 'other-vm' } });
  }
  // QEMU is spawned reading the image (`-incoming fd:N`): its load runs while the shim connects
  // the monitor, not after the greeting and a migrate-incoming round trip (bench/RESULTS.md,
  // session 12). The shim still only waits for QEMU to report the load completed.
  return {
    leasesDisks: true, reason: 'restored', fds: [handle.fd],
    uri: ([qemuFd]) => {
      if (qemuFd === undefined) throw new VirtqError('INTERNAL', `QEMU of VM "${vm.def.name}" was not given the save image`);
      return `fd:${qemuFd}`;
    },
    load: (mon) => waitLoaded(mon, clock, file),
    release: () => handle.close(),
  };
}
