// The shim's runtime state file (run/shims/NAME.json, 0600, written atomically): everything a
// successor shim or a restarted virtqemud needs to find and re-attach to the running QEMU.
import { readFile } from 'node:fs/promises';
import type { DomainState, NormalizedDefinition } from '../protocol/index.js';
import { writeFileAtomic } from '../drivers/fs/atomic-file.js';

/** Paths of one shim's sockets. */
export interface ShimSocketPaths {
  rw: string;
  ro: string;
  admin: string;
  monitor: string;
  console: string;
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
  definition: NormalizedDefinition;
  state: DomainState;
  reason: string;
  details?: Record<string, unknown>;
  tainted: boolean;
  /** Embedded VMs are private to their application and never registered. */
  private: boolean;
  updatedAt: number;
}

/** Writes the state file atomically. */
export function writeRuntimeState(file: string, state: RuntimeState): Promise<void> {
  return writeFileAtomic(file, `${JSON.stringify(state)}\n`, 0o600);
}

/** Reads a state file; undefined when it is missing or unreadable. */
export async function readRuntimeState(file: string): Promise<RuntimeState | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<RuntimeState>;
    if (parsed.format !== 1 || typeof parsed.name !== 'string' || typeof parsed.definition !== 'object') return undefined;
    return parsed as RuntimeState;
  } catch {
    return undefined;
  }
}
