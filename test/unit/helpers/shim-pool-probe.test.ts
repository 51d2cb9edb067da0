// The idle-shim count of the warm pool's tests must not count a shim's child caught between its
// fork and its exec, when it still has the shim's command line (a CI run of shim-pool.test.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idleShimPids } from '../../helpers/shim-pool-probe.js';

/** Processes whose command line holds `marker`. */
function withArg(marker: string): number[] {
  return readdirSync('/proc').map(Number).filter((pid) => {
    if (!Number.isInteger(pid)) return false;
    try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes(marker); } catch { return false; }
  });
}

describe('idleShimPids', () => {
  const started: ChildProcess[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    // The forked copy is in the parent's process group; both go.
    for (const c of started.splice(0)) if (c.pid !== undefined) try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('counts a waiting shim once, not its forked child that has not exec\'d yet, and never an owned one', async () => {
    const root = mkdtempSync(join(tmpdir(), 'vq-idle-probe-'));
    dirs.push(root);
    // perl's fork keeps the command line, as a shim's fork does until its child execs.
    const shim = spawn('perl', ['-e', 'fork; sleep 30', '/x/virtq-shim.js', '--root', root, '--definition', '-'], { stdio: 'ignore', detached: true });
    started.push(shim);
    for (let i = 0; i < 200 && withArg(root).length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    expect(withArg(root)).toHaveLength(2);
    expect(idleShimPids(root, new Set())).toEqual([shim.pid]);
    // An owned shim's child is its child too, not an idle shim.
    expect(idleShimPids(root, new Set([shim.pid as number]))).toEqual([]);
    expect(idleShimPids(`${root}-other`, new Set())).toEqual([]);
  });
});
