// The shim's runtime state file (run/shims/NAME.json, 0600, written atomically): everything a
// successor shim or a restarted virtqemud needs to find and re-attach to the running QEMU.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DomainState, ResolvedDefinition } from '../protocol/index.js';
import { writeFileAtomic, writeFileAtomicSync } from '../drivers/fs/atomic-file.js';
import { withSpaceReserve, withSpaceReserveSync } from './space-reserve.js';

/** Paths of one shim's sockets. */
export interface ShimSocketPaths {
  rw: string;
  ro: string;
  admin: string;
  monitor: string;
  console: string;
  /** The shared QMP socket, when the shim serves one (absent in older files and when it is turned off). */
  qmpProxy?: string;
}

/** The runtime state file's content. */
export interface RuntimeState {
  format: 1;
  name: string;
  uuid: string;
  shimPid: number;
  qemuPid: number | undefined;
  /** Milliseconds since the epoch when QEMU was spawned. */
  qemuStartedAt: number | undefined;
  accel: string;
  sockets: ShimSocketPaths;
  /** The live definition, including hot-plugged disks. */
  definition: ResolvedDefinition;
  state: DomainState;
  reason: string;
  details?: Record<string, unknown>;
  tainted: boolean;
  /** Embedded VMs are private to their application and never registered. */
  private: boolean;
  /** Whether the shim registers with virtqemud; a successor does as its predecessor did (absent in older files: it did). */
  registered?: boolean;
  updatedAt: number;
}

/**
 * Writes the state file atomically, without fsync: it describes a shim and a QEMU that a host
 * crash removes anyway, and rename alone survives any crash of a process, the one kind of crash
 * after which the file is read to re-attach (docs/decisions/0026-warm-shim-pool.md). That saves
 * two fsyncs (~12 ms each under load) per start and one per state change. On a full disk the
 * space reserve beside it is given up for the write (space-reserve.ts); true when it was.
 */
export function writeRuntimeState(file: string, state: RuntimeState): Promise<boolean> {
  return withSpaceReserve(dirname(file), () => writeFileAtomic(file, `${JSON.stringify(state)}\n`, 0o600, { durable: false }));
}

/**
 * The same write, done at once on the calling thread: the shim's, whose every state change
 * (and the ready line of a start) waits for it. A few KiB with no fsync cost microseconds as
 * system calls, against five thread-pool round trips (a shim runs one pool thread) that a loaded
 * host makes milliseconds each. The event journal's append is a synchronous write(2) likewise.
 */
export function writeRuntimeStateSync(file: string, state: RuntimeState): boolean {
  return withSpaceReserveSync(dirname(file), () => writeFileAtomicSync(file, `${JSON.stringify(state)}\n`, 0o600));
}

/**
 * The one reader of state files, for shims, virtqemud and the client library alike: undefined
 * when the file is missing or is not a state file; other read errors (EACCES, EIO) are thrown.
 */
export async function loadRuntimeState(file: string): Promise<RuntimeState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseRuntimeState(text);
}

/** Reads a state file; undefined when it is missing or unreadable for any reason. */
export function readRuntimeState(file: string): Promise<RuntimeState | undefined> {
  return loadRuntimeState(file).catch(() => undefined);
}

/**
 * readRuntimeState in one synchronous read, on the calling thread: missing or unreadable gives
 * undefined, as readRuntimeState. For the shim's name check at start (QEMU's spawn waits for it)
 * and a restarted virtqemud's recovery (it reads every VM's state file before it serves anything):
 * fs/promises' readFile is one thread-pool round trip for a missing file and several (open, fstat,
 * read, close) for an existing one, each ~1 ms on a loaded two-core host (issue 15, session 13).
 */
export function readRuntimeStateSync(file: string): RuntimeState | undefined {
  try {
    return parseRuntimeState(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** A state file's content, or undefined when it is not one this format knows. */
export function parseRuntimeState(text: string): RuntimeState | undefined {
  let parsed: Partial<RuntimeState> | null;
  try {
    parsed = JSON.parse(text) as Partial<RuntimeState> | null;
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.format !== 1 || typeof parsed.name !== 'string' || typeof parsed.uuid !== 'string') return undefined;
  if (typeof parsed.definition !== 'object' || parsed.definition === null) return undefined;
  const s = parsed.sockets;
  if (typeof s !== 'object' || s === null || typeof s.rw !== 'string' || typeof s.ro !== 'string' || typeof s.admin !== 'string') return undefined;
  return parsed as RuntimeState;
}
