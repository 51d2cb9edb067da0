// Telling an OOM kill of QEMU from any other SIGKILL (issue #17, decision 0019). A SIGKILL says
// nothing of who sent it; the kernel's memory cgroup counts the tasks its OOM killer killed
// (`oom_kill` in cgroup v1's memory.oom_control, v2's memory.events), for an OOM of the cgroup's
// own limit as for a host-wide one. So QEMU is moved, right after it is spawned, into a memory
// cgroup of its own under the shim's (`virtq-qemu-PID`), the counter is read then and again when
// QEMU dies of SIGKILL: a count that grew is an OOM kill. Where no cgroup of its own can be made
// (no memory controller, no permission, cgroup v2 with the controller not delegated), the nearest
// cgroup above QEMU that has the counter is watched instead: less precise (another process of it
// killed meanwhile counts too), and said so in the evidence.
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../protocol/index.js';

/** Where a QEMU's OOM kills are counted, and from what count. */
export interface OomArmed {
  /** True when the counter grew since `arm`: the kernel's OOM killer killed a task of the cgroup. */
  killed(): boolean;
  /** What the evidence is, for the stop record: the counter file and whether QEMU had it alone. */
  readonly evidence: { counter: string; own: boolean };
  /** Removes the cgroup made for QEMU (once it has exited). */
  dispose(): void;
}

/** Arms an OOM watch for a just-spawned QEMU; undefined when this host offers no counter. */
export type OomWatch = (qemuPid: number) => OomArmed | undefined;

/** The cgroup file systems of this host (overridable so tests can point at a copy). */
export interface CgroupRoots {
  /** The cgroup v1 memory hierarchy's mount point. */
  v1Memory: string;
  /** The cgroup v2 mount point. */
  v2: string;
  /** /proc. */
  proc: string;
}

export const HOST_CGROUPS: CgroupRoots = { v1Memory: '/sys/fs/cgroup/memory', v2: '/sys/fs/cgroup', proc: '/proc' };

/** The memory cgroup directory `pid` is in, and the name of the file that counts its OOM kills. */
export function memoryCgroupOf(pid: number, roots: CgroupRoots = HOST_CGROUPS): { dir: string; counter: string } | undefined {
  let text: string;
  try {
    text = readFileSync(join(roots.proc, String(pid), 'cgroup'), 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':', 3) as [string, string | undefined, string | undefined];
    if (controllers === undefined || path === undefined) continue;
    if (controllers.split(',').includes('memory')) return { dir: join(roots.v1Memory, path), counter: 'memory.oom_control' };
    if (line.startsWith('0::')) {
      // Pure cgroup v2 (a hybrid host's v2 tree has no memory controller: memory.events is missing there).
      return { dir: join(roots.v2, path), counter: 'memory.events' };
    }
  }
  return undefined;
}

/** The `oom_kill` count in a memory.oom_control / memory.events file, or undefined. */
export function oomKillCount(file: string): number | undefined {
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** The real watch: a memory cgroup per QEMU under the shim's own. */
export function cgroupOomWatch(log: Logger, roots: CgroupRoots = HOST_CGROUPS, self: number = process.pid): OomWatch {
  return (qemuPid) => {
    const parent = memoryCgroupOf(self, roots);
    if (parent === undefined) return undefined;
    sweepStale(parent.dir);
    const own = join(parent.dir, `virtq-qemu-${qemuPid}`);
    let dir = own;
    try {
      mkdirSync(own);
      writeFileSync(join(own, 'cgroup.procs'), String(qemuPid));
    } catch (err) {
      try { rmdirSync(own); } catch { /* never made */ }
      log.debug({ err, msgId: 'OOM_CGROUP_UNAVAILABLE' }, 'cannot give QEMU a memory cgroup of its own; watching the shim\'s');
      dir = parent.dir;
    }
    // Without the counter here (cgroup v2 without the memory controller delegated), the nearest ancestor's.
    let counter = join(dir, parent.counter);
    while (oomKillCount(counter) === undefined && dir.length > roots.v2.length && dir !== roots.v1Memory) {
      dir = join(dir, '..');
      counter = join(dir, parent.counter);
    }
    const base = oomKillCount(counter);
    if (base === undefined) {
      try { rmdirSync(own); } catch { /* not ours or not empty */ }
      return undefined;
    }
    return {
      evidence: { counter, own: dir === own },
      killed: () => (oomKillCount(counter) ?? base) > base,
      dispose: () => { try { rmdirSync(own); } catch { /* not made, or still busy */ } },
    };
  };
}

// A shim killed before its QEMU leaves QEMU's cgroup behind once QEMU exits. The kernel refuses
// to remove a cgroup that still has tasks (EBUSY), so trying every `virtq-qemu-*` removes exactly
// the empty ones, whoever made them.
function sweepStale(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith('virtq-qemu-'));
  } catch {
    return;
  }
  for (const n of names) try { rmdirSync(join(dir, n)); } catch { /* in use */ }
}
