// CPU per process role during one migration round (issue 16, session 13): on two cores the
// daemons' and shims' CPU competes with the two QEMUs' migration threads, so a round's figures say
// who used how much of the cores between the call and its answer. Processes are found by their
// command line naming one of the round's directories (a root, the raw floor's shared dir) and are
// sampled every `everyMs` from /proc/PID/stat (utime + stime, which keep the CPU of threads that
// already ended, such as QEMU's migration thread; the unit is the clock tick, 10 ms here). A
// process that exits between two samples loses at most one interval's CPU: direction only.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10;

function ticks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command's closing parenthesis
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

function roleOf(cmd, dirs) {
  for (const [side, dir] of Object.entries(dirs)) {
    if (!cmd.includes(dir)) continue;
    if (cmd.includes('virtqemud')) return `${side}.virtqemud`;
    if (cmd.includes('virtq-shim')) return `${side}.shim`;
    if (cmd.includes('qemu-system')) return `${side}.qemu`;
    return `${side}.other`;
  }
  return null;
}

/**
 * Starts sampling the processes whose command line names one of `dirs` (side → path); stop()
 * answers CPU ms per role since the start (processes born meanwhile count from zero).
 */
export function cpuSampler(dirs, everyMs = 50) {
  const known = new Map(); // pid → { role, looks, base, last } (role null: not ours)
  const scan = (first) => {
    let pids = [];
    try {
      pids = readdirSync('/proc').filter((p) => p.charCodeAt(0) <= 57);
    } catch {
      return;
    }
    for (const pid of pids) {
      let k = known.get(pid);
      // A child caught between fork and exec still shows its parent's command line (a shim's QEMU
      // looks like the shim, the bench's raw QEMU like the bench): a process is classified again
      // on the next scan after it was first seen, and ours on every scan, until the role holds.
      if (k === undefined || k.looks < 2 || k.role !== null) {
        let cmd = '';
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
        } catch {
          continue;
        }
        const role = roleOf(cmd, dirs);
        if (k === undefined) {
          const t = role === null ? undefined : ticks(pid);
          known.set(pid, { role, looks: 1, base: first ? t ?? 0 : 0, last: t ?? 0 });
          continue;
        }
        k.looks++;
        k.role = role;
      }
      if (k.role === null) continue;
      const t = ticks(pid);
      if (t !== undefined) k.last = t;
    }
  };
  scan(true);
  const timer = setInterval(() => scan(false), everyMs);
  return {
    stop() {
      clearInterval(timer);
      scan(false);
      const out = {};
      for (const k of known.values()) {
        if (k.role === null) continue;
        out[k.role] = (out[k.role] ?? 0) + (k.last - k.base) * TICK_MS;
      }
      return out;
    },
  };
}
