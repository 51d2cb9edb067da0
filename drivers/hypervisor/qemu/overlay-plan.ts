// Which disks an external disk-only snapshot covers and where their overlays go, checked before
// anything is made: used by the shim (running VM) and virtqemud (shut-off VM) alike.
import { access } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { VirtqError } from '../../../protocol/errors.js';
import type { ResolvedDisk } from '../../../protocol/definition.js';

/** The name libvirt gives an overlay: the image's name with its extension replaced by the snapshot's. */
export function overlayName(image: string, snapshot: string): string {
  const ext = extname(image);
  return `${basename(image, ext)}.${snapshot}`;
}

/** Where a disk on a file gets its overlay: beside its image. */
export function overlayFile(image: string, snapshot: string): string {
  return join(dirname(image), overlayName(image, snapshot));
}

const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false);

/**
 * The writable disks an external snapshot covers; refusals before anything is made. Without
 * `storage` (no virtstoraged to make a volume's overlay) a volume disk is refused.
 */
export async function externalDisks(vmName: string, snapshot: string, disks: readonly ResolvedDisk[], storage: boolean): Promise<ResolvedDisk[]> {
  const writable = disks.filter((d) => !d.readonly);
  if (writable.length === 0) throw new VirtqError('OPERATION_INVALID', `cannot snapshot VM "${vmName}": it has no writable disk to put an overlay on`);
  for (const d of writable) {
    if (d.encryption !== undefined) throw new VirtqError('OPERATION_INVALID', `cannot take external snapshot "${snapshot}" of VM "${vmName}": disk ${d.target} is encrypted, and an overlay on an encrypted image is not supported; use an internal snapshot`, { details: { target: d.target } });
    if (d.shareable) throw new VirtqError('OPERATION_INVALID', `cannot take external snapshot "${snapshot}" of VM "${vmName}": disk ${d.target} is shareable (other VMs write it too)`, { details: { target: d.target } });
    if (d.source !== undefined && !storage) throw new VirtqError('NOT_SUPPORTED', `disk ${d.target} names a volume, and this shim was started without virtstoraged`);
    if (d.source === undefined) {
      const file = overlayFile(d.path, snapshot);
      if (await exists(file)) throw new VirtqError('ALREADY_EXISTS', `cannot take external snapshot "${snapshot}" of VM "${vmName}": overlay file ${file} of disk ${d.target} already exists`, { details: { target: d.target, file } });
    }
  }
  return writable;
}
