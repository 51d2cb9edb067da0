// Who writes a VM's journal: the `writer` file in its directory names a process by pid and start
// time. The VM's shim claims it when it opens the journal and is the only writer while it lives;
// virtqemud appends (a stop it found, a lost shim) only when the named writer is gone, so the
// sequence numbers never fork (decision 0019 covers the one narrow race and how readers survive it).
import { readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { processStart } from '../host/proc.js';

/** A process by pid and start time (a reused pid is never mistaken for it). */
export interface WriterId {
  pid: number;
  start: number;
}

/** This process's identity, or undefined when /proc cannot tell it. */
export function selfWriter(pid: number): WriterId | undefined {
  const start = processStart(pid);
  return start === undefined ? undefined : { pid, start };
}

/** The writer named in `dir`, if any. */
export function readWriter(dir: string): WriterId | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'writer'), 'utf8')) as Partial<WriterId>;
    return Number.isSafeInteger(v.pid) && typeof v.start === 'number' ? { pid: v.pid as number, start: v.start } : undefined;
  } catch {
    return undefined;
  }
}

/** True when the writer named in `dir` runs and is not `self`. */
export function otherWriterAlive(dir: string, self: WriterId | undefined): boolean {
  const w = readWriter(dir);
  if (w === undefined || (self !== undefined && w.pid === self.pid && w.start === self.start)) return false;
  return processStart(w.pid) === w.start;
}

/** Names `self` the writer of `dir` (replaced atomically). */
export function claimWriter(dir: string, self: WriterId): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.writer.${self.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(self), { mode: 0o600 });
  renameSync(tmp, join(dir, 'writer'));
}
