// Reads under one sysfs root without ever throwing for what sysfs does routinely: an attribute
// that is missing, unreadable (EACCES) or refuses to answer (EINVAL on a down link's `speed`),
// and a device directory that vanishes between listing it and reading it (ENOENT races).
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';

/** The file operations the driver needs; injected so tests can make a read fail on purpose. */
export interface SysfsIo {
  /** The whole content of a file. */
  readFile(path: string): string;
  /** The names in a directory. */
  readDir(path: string): string[];
  /** The target of a symbolic link, as stored. */
  readLink(path: string): string;
  /** The canonical absolute path, every link resolved. */
  realPath(path: string): string;
}

/** The real filesystem. */
export function nodeSysfsIo(): SysfsIo {
  return {
    readFile: (path) => readFileSync(path, 'utf8'),
    readDir: (path) => readdirSync(path),
    readLink: (path) => readlinkSync(path),
    realPath: (path) => realpathSync.native(path),
  };
}

// What sysfs answers for an attribute or directory that is absent, gone, unreadable or not
// meaningful right now. Anything else (EMFILE, ENOMEM...) is a real failure and is reported.
const TOLERATED = new Set([
  'ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EINVAL', 'EIO', 'ENODEV', 'ENXIO', 'EAGAIN',
  'EOPNOTSUPP', 'ENOTSUP', 'ENODATA', 'ELOOP', 'ETIMEDOUT', 'EBUSY',
]);

function tolerated(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TOLERATED.has(code);
}

/** Relative-path access to one sysfs tree; every read answers undefined (or []) instead of failing. */
export class Sysfs {
  readonly root: string;
  private readonly io: SysfsIo;
  private canonicalRoot: string | undefined;

  constructor(root: string, io: SysfsIo) {
    this.root = root;
    this.io = io;
  }

  /** Fails with OPERATION_FAILED when the root itself cannot be read (sysfs not mounted, wrong root). */
  checkRoot(): void {
    try {
      this.io.readDir(this.root);
    } catch (err) {
      throw new VirtqError('OPERATION_FAILED', `cannot read the sysfs root ${this.root}: ${(err as Error).message}; mount sysfs there or pass the right root`, { cause: err });
    }
  }

  /** The absolute path of `rel`. */
  abs(rel: string): string {
    return join(this.root, rel);
  }

  /** An attribute's text without its trailing newline; undefined when absent, unreadable or empty. */
  attr(rel: string): string | undefined {
    const text = this.guard(rel, () => this.io.readFile(this.abs(rel)));
    const trimmed = text?.trim();
    return trimmed === undefined || trimmed === '' ? undefined : trimmed;
  }

  /** An attribute as a finite integer (decimal, or hex with 0x). */
  int(rel: string): number | undefined {
    const text = this.attr(rel);
    if (text === undefined || !/^(-?\d+|0x[0-9a-fA-F]+)$/.test(text)) return undefined;
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : undefined;
  }

  /** The last component of a link's target (a driver's or IOMMU group's name). */
  linkName(rel: string): string | undefined {
    const target = this.guard(rel, () => this.io.readLink(this.abs(rel)));
    return target === undefined ? undefined : basename(target);
  }

  /** The names in a directory, sorted; [] when it is absent or gone. */
  list(rel: string): string[] {
    return (this.guard(rel, () => this.io.readDir(this.abs(rel))) ?? []).sort();
  }

  /** The canonical path of `rel` relative to the root (`devices/pci0000:00/...`); undefined when gone. */
  real(rel: string): string | undefined {
    const root = this.canonicalRootPath();
    const full = this.guard(rel, () => this.io.realPath(this.abs(rel)));
    if (root === undefined || full === undefined) return undefined;
    const r = relative(root, full);
    return r.startsWith('..') ? undefined : r.split(sep).join('/');
  }

  private canonicalRootPath(): string | undefined {
    this.canonicalRoot ??= this.guard('', () => this.io.realPath(this.root));
    return this.canonicalRoot;
  }

  private guard<T>(rel: string, read: () => T): T | undefined {
    try {
      return read();
    } catch (err) {
      if (tolerated(err)) return undefined;
      throw new VirtqError('OPERATION_FAILED', `cannot read ${this.abs(rel)}: ${(err as Error).message}`, { cause: err });
    }
  }
}
