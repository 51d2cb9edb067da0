// The QEMU capabilities probe dies with whoever started it. A chaos run found one left behind for
// good: a shim killed while it probed, before it sent `quit`, and QMP on stdio does not end QEMU at
// its end of file.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { procState } from '../../drivers/host/proc.js';

const PROBE_LIB = new URL('../../dist/lib/drivers/hypervisor/qemu/capabilities-probe.js', import.meta.url).pathname;

/** The pids whose parent is `ppid`. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      // The field after the command (which may hold spaces) in parentheses: state, then ppid.
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const alive = (pid: number): boolean => {
  const state = procState(pid);
  return state !== undefined && state !== 'Z' && state !== 'X';
};

describe('the capabilities probe', () => {
  const leftovers: number[] = [];
  afterEach(() => {
    for (const pid of leftovers.splice(0)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  });

  it('takes its QEMU down when its starter is killed before it sends quit', async () => {
    // A starter that spawns the probe and never writes to it: QEMU's QMP greeting tells it is up.
    const script = `import { spawnProbe, probeArgs } from ${JSON.stringify(PROBE_LIB)};
const p = spawnProbe('/usr/bin/qemu-system-x86_64', probeArgs(false));
p.stdout.once('data', () => console.log('up'));`;
    const starter = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => starter.once('exit', resolve));
    await new Promise<void>((resolve) => createInterface({ input: starter.stdout }).once('line', () => resolve()));
    const qemus = childrenOf(starter.pid as number);
    leftovers.push(...qemus);
    expect(qemus).toHaveLength(1);
    expect(readFileSync(`/proc/${qemus[0] as number}/cmdline`, 'latin1')).toContain('qemu-system-x86_64');
    starter.kill('SIGKILL');
    await exited;
    await expect.poll(() => qemus.filter(alive), { timeout: 5000 }).toEqual([]);
  });
});
