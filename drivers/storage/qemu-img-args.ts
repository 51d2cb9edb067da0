// The qemu-img command lines the driver runs, built from plain values (pure, unit-tested).
// A passphrase never appears here: only the `--object secret,...,file=PATH` naming its file.
import type { ImageFormat, VolumeFormat } from './types.js';

/** The qemu `--object` argument and image option that name a secret held in a file. */
export interface SecretArgs {
  /** `secret,id=ID,file=PATH,format=raw`: goes after `--object`. */
  object: string;
  /** The secret's id, for `encrypt.key-secret=ID`. */
  id: string;
}

/** Escapes a value for qemu's `key=value,...` option syntax (a comma is doubled). */
export function optValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Arguments of `qemu-img create`. */
export interface CreateArgs {
  path: string;
  format: VolumeFormat;
  capacityBytes: number;
  backing?: { path: string; format: ImageFormat };
  /** LUKS encryption through this secret. */
  secret?: SecretArgs;
  iterTimeMs?: number;
}

/** `qemu-img create -q -f FMT [-b B -F BFMT] [--object secret -o encrypt...] PATH SIZE`. */
export function createArgs(a: CreateArgs): string[] {
  const args = ['create', '-q', '-f', a.format];
  if (a.backing !== undefined) args.push('-b', a.backing.path, '-F', a.backing.format);
  if (a.secret !== undefined) {
    const opts = ['encrypt.format=luks', `encrypt.key-secret=${a.secret.id}`];
    if (a.iterTimeMs !== undefined) opts.push(`encrypt.iter-time=${a.iterTimeMs}`);
    args.push('--object', a.secret.object, '-o', opts.join(','));
  }
  args.push(a.path, String(a.capacityBytes));
  return args;
}

/**
 * `qemu-img convert -p -f SRCFMT -O FMT SRC DST`: a standalone copy (the chain flattened). With
 * `direct`, the target is written with O_DIRECT (`-t none`), out of order (`-W`) by 16
 * coroutines (`-m 16`), so the bytes are on the disk when it exits (see direct-io.ts).
 */
export function convertArgs(src: string, srcFormat: ImageFormat, dst: string, format: VolumeFormat, direct = false): string[] {
  return ['convert', '-p', ...(direct ? ['-t', 'none', '-W', '-m', '16'] : []), '-f', srcFormat, '-O', format, src, dst];
}

/** Arguments of `qemu-img resize`. */
export interface ResizeArgs {
  path: string;
  format: ImageFormat;
  capacityBytes: number;
  shrink: boolean;
  /** For an encrypted image: open it through `--image-opts` with this secret. */
  secret?: SecretArgs;
}

/** `qemu-img resize -q [--shrink] (-f FMT PATH | --object S --image-opts ...) SIZE`. */
export function resizeArgs(a: ResizeArgs): string[] {
  const args = ['resize', '-q'];
  if (a.shrink) args.push('--shrink');
  if (a.secret === undefined) {
    args.push('-f', a.format, a.path);
  } else {
    const opts = `driver=${optValue(a.format)},file.filename=${optValue(a.path)},encrypt.key-secret=${a.secret.id}`;
    args.push('--object', a.secret.object, '--image-opts', opts);
  }
  args.push(String(a.capacityBytes));
  return args;
}

/** `qemu-img check` of an encrypted image through its secret: proves the passphrase opens it. */
export function checkEncryptedArgs(path: string, format: ImageFormat, secret: SecretArgs): string[] {
  return ['check', '-q', '--object', secret.object, '--image-opts', `driver=${optValue(format)},file.filename=${optValue(path)},encrypt.key-secret=${secret.id}`];
}
