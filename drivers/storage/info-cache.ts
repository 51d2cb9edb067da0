// Remembers what qemu-img said about each volume file, keyed by the file's identity and
// version (inode, size, mtime in ns): a file that has not changed is not inspected again,
// so listing a pool of hundreds of volumes costs a readdir and a stat per volume.
import type { BigIntStats } from 'node:fs';
import type { ImageInfo } from './image-info.js';

/** What makes a cached answer still true: the same file, unchanged. */
export interface FileVersion {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

/** The version of the file `st` describes. */
export function fileVersion(st: BigIntStats): FileVersion {
  return { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
}

const sameVersion = (a: FileVersion, b: FileVersion): boolean => a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;

/** One pool's cache: volume name → the image info of one version of its file. */
export class InfoCache {
  private readonly entries = new Map<string, { version: FileVersion; info: ImageInfo }>();

  /** The cached info of `name` when its file is still at `version`. */
  get(name: string, version: FileVersion): ImageInfo | undefined {
    const entry = this.entries.get(name);
    return entry !== undefined && sameVersion(entry.version, version) ? entry.info : undefined;
  }

  set(name: string, version: FileVersion, info: ImageInfo): void {
    this.entries.set(name, { version, info });
  }

  delete(name: string): void {
    this.entries.delete(name);
  }

  /** Drops every entry whose name is not in `names` (volumes gone since the last listing). */
  retainOnly(names: ReadonlySet<string>): void {
    for (const name of this.entries.keys()) if (!names.has(name)) this.entries.delete(name);
  }

  get size(): number {
    return this.entries.size;
  }
}
