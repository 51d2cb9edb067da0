// Why QEMU did not start, in words a person can act on: QEMU's own last lines are kept, and
// the failures virtq can name better (a passphrase that does not unlock a LUKS disk) are named.
import { VirtqError, type ResolvedDefinition } from '../../protocol/index.js';

/** The error for a QEMU of `def` that failed to start with `cause`, its log ending in `tail`. */
export function startFailure(def: ResolvedDefinition, cause: unknown, tail: string): VirtqError {
  const encrypted = def.disks.filter((d) => d.encryption !== undefined);
  if (encrypted.length > 0 && /Invalid password, cannot unlock any keyslot/.test(tail)) {
    const which = encrypted.map((d) => `disk ${d.target} (secret ${d.encryption?.secret ?? '?'})`).join(', ');
    return new VirtqError('OPERATION_FAILED', `QEMU could not unlock the encrypted ${which} of VM "${def.name}": the secret's value is not the volume's passphrase`, {
      cause, details: { disks: encrypted.map((d) => ({ target: d.target, secret: d.encryption?.secret })) },
    });
  }
  return new VirtqError('OPERATION_FAILED', `QEMU failed to start VM "${def.name}": ${VirtqError.from(cause).message}${tail ? `\n${tail}` : ''}`, { cause });
}
