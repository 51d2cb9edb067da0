// virtqemud's side of save and restore: `restore` reads and checks a save image's header (and
// the definition in it) before any shim or QEMU runs, claims the VM's name (or finds the
// defined VM it belongs to) and starts a shim that loads the image; `start` of a VM with a
// managed save image resumes from it and then removes it; managedSaveRemove forgets one.
import { access, rm } from 'node:fs/promises';
import { VirtqError, normalizeDefinition, randomUuid, type DomainRow, type Handlers, type IncomingState, type NormalizedDefinition, type VirtqProgram } from '../../protocol/index.js';
import { managedSaveFile, readSaveImage, type SaveImage } from '../../drivers/hypervisor/qemu/save-image-header.js';
import type { DomainRecord } from '../registry.js';
import { SnapshotStore } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import type { Layout } from '../../protocol/index.js';
import type { DomainRegistry } from '../registry.js';

/** What these handlers need of virtqemud (host-handlers.ts passes it; no import back, no cycle). */
export interface SaveHostDeps {
  registry: DomainRegistry;
  layout: Layout;
}

/** Starts `record`'s shim from `def`, loading `incoming` when given (host-handlers.ts's startShim). */
export type StartShim = (record: DomainRecord, def: NormalizedDefinition, paused: boolean, incoming?: IncomingState) => Promise<DomainRow>;


// The definition inside a checked image, validated as any definition is.
function imageDefinition(image: SaveImage): NormalizedDefinition {
  try {
    const def = normalizeDefinition(image.definition, randomUuid);
    if ((image.definition as { uuid?: unknown }).uuid !== def.uuid) throw new VirtqError('INVALID_ARG', 'the definition has no uuid');
    return def;
  } catch (err) {
    throw new VirtqError('INVALID_SAVE_IMAGE', `${image.file} holds no valid VM definition: ${VirtqError.from(err).message}`, { details: { file: image.file, reason: 'definition' }, cause: err });
  }
}

const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false);

/**
 * For `start`: when VM `r` has a managed save image, resumes it from there (the image's own
 * definition, whose UUID must be the VM's) and removes the image once the VM runs; undefined
 * when there is none. A bad image refuses the start, naming managedsave-remove.
 */
export async function startFromManagedSave(d: SaveHostDeps, startShim: StartShim, r: DomainRecord, paused: boolean): Promise<DomainRow | undefined> {
  const file = managedSaveFile(d.layout.state, r.name);
  if (!await exists(file)) return undefined;
  let image: SaveImage;
  let def: NormalizedDefinition;
  try {
    image = await readSaveImage(file);
    def = imageDefinition(image);
    if (def.uuid !== r.uuid || def.name !== r.name) throw new VirtqError('INVALID_SAVE_IMAGE', `${file} holds VM "${def.name}" (${def.uuid}), not this one (${r.uuid})`, { details: { file, reason: 'other-vm' } });
  } catch (err) {
    const e = VirtqError.from(err);
    throw new VirtqError(e.code, `cannot resume VM "${r.name}" from its managed save image: ${e.message}; remove it with: virtq managedsave-remove ${r.name}`, { details: { ...e.details }, cause: err });
  }
  const row = await startShim(r, def, paused || !image.running, { kind: 'image', file });
  await rm(file, { force: true });
  return row;
}

/** The host's save handlers. */
export function saveHostHandlers(d: SaveHostDeps, startShim: StartShim): Handlers<VirtqProgram> {
  const { registry } = d;
  return {
    restore: async ({ file, paused }) => {
      const image = await readSaveImage(file);
      const def = imageDefinition(image);
      let r = registry.get(def.name);
      if (r !== undefined && r.uuid !== def.uuid) {
        throw new VirtqError('NAME_IN_USE', `cannot restore ${file}: VM name "${def.name}" belongs to another VM here (uuid ${r.uuid}); the image holds uuid ${def.uuid}`, { details: { file, uuid: def.uuid } });
      }
      // A defined VM of the same UUID is restored into; otherwise the VM comes back transient.
      r ??= registry.claim({ name: def.name, uuid: def.uuid, persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: 'restoring' });
      return startShim(r, def, paused === true || !image.running, { kind: 'image', file });
    },
    snapshotList: async ({ name }) => ({ snapshots: await new SnapshotStore(d.layout.state, registry.require(name).name).list() }),
    snapshotInfo: async ({ name, snapshot }) => new SnapshotStore(d.layout.state, registry.require(name).name).get(snapshot),
    managedSaveRemove: async ({ name }) => {
      registry.require(name);
      const file = managedSaveFile(d.layout.state, name);
      if (!await exists(file)) throw new VirtqError('OPERATION_INVALID', `VM "${name}" has no managed save image`);
      await rm(file, { force: true });
      return {};
    },
  };
}

/** For `undefine`: a VM's managed save image goes with its definition. */
export async function removeManagedSave(d: Pick<SaveHostDeps, 'layout'>, name: string): Promise<void> {
  await rm(managedSaveFile(d.layout.state, name), { force: true });
}

/**
 * For `undefine`: a VM with snapshots keeps its definition unless `forget` (as virsh's
 * --snapshots-metadata), which removes their metadata; the snapshots stay inside the disks.
 */
export async function checkSnapshotsOnUndefine(d: Pick<SaveHostDeps, 'layout'>, name: string, forget: boolean): Promise<void> {
  const store = new SnapshotStore(d.layout.state, name);
  const snaps = await store.list();
  if (snaps.length === 0) return;
  if (!forget) {
    throw new VirtqError('OPERATION_INVALID', `VM "${name}" has ${snaps.length} snapshot(s) (${snaps.map((s) => s.name).join(', ')}): delete them, or undefine with --snapshots-metadata to forget their metadata (the snapshots stay inside the disks)`, { details: { snapshots: snaps.map((s) => s.name) } });
  }
  await store.removeAll();
}
