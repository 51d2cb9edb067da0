// The lockspace directory: one lock file per resource, `<sha256 of the canonical path>.lock`,
// and beside it one holder record per VM, `<same hash>.<vm uuid>.holder`. Records are separate
// files because a shared lease has many holders and because SMB makes a locked file unreadable.
import { readdirSync, readFileSync, realpathSync, unlinkSync } from 'node:fs';
import { readdir, readFile, realpath, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeFileAtomicSync } from '../fs/atomic-file.js';
import type { LeaseMode } from './types.js';
import { sha256Hex } from '../../protocol/node-crypto.js';

/** What a holder record says (JSON, one file per holder). */
export interface HolderRecord {
  format: 1;
  /** The canonical path of the resource. */
  resource: string;
  mode: LeaseMode;
  host: string;
  vm: string;
  uuid: string;
  shimPid: number;
  /** Set once QEMU is spawned. */
  qemuPid?: number;
  /** The process keeping the lease's lock open, with its start time. */
  holderPid: number;
  holderStart: number;
  /** Milliseconds since the epoch. */
  since: number;
}

/**
 * The canonical path of a disk: symlinks and `.`/`..` resolved, so every path naming one image
 * leases the same resource. A path that does not exist yet is only normalised (QEMU will fail).
 */
export async function canonicalPath(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return resolve(path);
  }
}

/** canonicalPath as one synchronous call (a realpath(3) on local files takes microseconds). */
export function canonicalPathSync(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** The key of a canonical path: the hex SHA-256 of its bytes (`hash`: another implementation of it). */
export function resourceKey(canonical: string, hash: (s: string) => string = sha256Hex): string {
  return hash(canonical);
}

/** The name of the lock file of a canonical path. */
export function lockFileName(canonical: string, hash?: (s: string) => string): string {
  return `${resourceKey(canonical, hash)}.lock`;
}

/** One lockspace directory. */
export class Lockspace {
  constructor(readonly dir: string) {}

  /** The lock file of resource `key`. */
  lockFile(key: string): string {
    return join(this.dir, `${key}.lock`);
  }

  /** The record of `uuid`'s lease on `key`. */
  recordFile(key: string, uuid: string): string {
    return join(this.dir, `${key}.${uuid}.holder`);
  }

  /**
   * Writes (atomically replaces) a holder record, not durably: a record only describes a flock and
   * its holder process, and a host crash ends both, so a record from before a crash describes
   * nothing (its removal was never fsync'd either, and every reader checks records against the
   * lock: a sweep drops them, a conflict skips dead holders). Its two fsyncs were in every start
   * and in a migration's switchover, with the guest paused.
   */
  async writeRecord(key: string, record: HolderRecord): Promise<void> {
    await writeFileAtomic(this.recordFile(key, record.uuid), `${JSON.stringify(record)}\n`, 0o644, { durable: false });
  }

  /**
   * writeRecord, records, readRecord and removeRecord as synchronous calls, for a migration's
   * claim and release: the source's guest is paused until they are done, and each shim has nothing else to do meanwhile, while
   * each awaited file call is a round trip through libuv's thread pool, a scheduling wait each on a
   * loaded host (bench/RESULTS.md, session 13). Microseconds each on a local lockspace; on a network
   * one they block the shim's loop for as long as the awaited calls would have held up the claim.
   */
  writeRecordSync(key: string, record: HolderRecord): void {
    writeFileAtomicSync(this.recordFile(key, record.uuid), `${JSON.stringify(record)}\n`, 0o644);
  }

  recordsSync(key: string): HolderRecord[] {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: HolderRecord[] = [];
    for (const n of names.filter((name) => isRecordOf(key, name))) {
      let text: string | undefined;
      try {
        text = readFileSync(join(this.dir, n), 'utf8');
      } catch {
        continue; // removed meanwhile
      }
      const r = parseRecord(text);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  readRecordSync(key: string, uuid: string): HolderRecord | undefined {
    try {
      return parseRecord(readFileSync(this.recordFile(key, uuid), 'utf8'));
    } catch {
      return undefined;
    }
  }

  removeRecordSync(key: string, uuid: string): void {
    try {
      unlinkSync(this.recordFile(key, uuid));
    } catch {
      // absent is fine
    }
  }

  /** The record of `uuid` on `key`, or undefined. */
  async readRecord(key: string, uuid: string): Promise<HolderRecord | undefined> {
    return parseRecord(await readFile(this.recordFile(key, uuid), 'utf8').catch(() => undefined));
  }

  /** Every readable record on `key`. */
  async records(key: string): Promise<HolderRecord[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const mine = names.filter((name) => isRecordOf(key, name));
    const texts = await Promise.all(mine.map((n) => readFile(join(this.dir, n), 'utf8').catch(() => undefined)));
    return texts.map(parseRecord).filter((r): r is HolderRecord => r !== undefined);
  }

  /** Removes `uuid`'s record on `key` (absent is fine). */
  async removeRecord(key: string, uuid: string): Promise<void> {
    await unlink(this.recordFile(key, uuid)).catch(() => undefined);
  }
}

/** Whether the lockspace entry `name` is a holder record of resource `key`. */
function isRecordOf(key: string, name: string): boolean {
  return name.startsWith(`${key}.`) && name.endsWith('.holder');
}

function parseRecord(text: string | undefined): HolderRecord | undefined {
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<HolderRecord>;
    if (typeof r.vm !== 'string' || typeof r.uuid !== 'string' || typeof r.host !== 'string' || typeof r.holderPid !== 'number' || typeof r.holderStart !== 'number') return undefined;
    return r as HolderRecord;
  } catch {
    return undefined;
  }
}
