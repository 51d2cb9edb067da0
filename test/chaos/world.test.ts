// Invariant 7 of chaos.ts can fail: what a chaos root starts is found by the variable in its
// environment, down to a grandchild whose command line names no root, and another root's is not.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { processesOfRoot, rootEnv } from './world.js';

describe('processesOfRoot', () => {
  const started: number[] = [];
  afterEach(() => {
    for (const pid of started.splice(0)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  });

  it('finds a root\'s processes by their environment, not their command line', async () => {
    const root = `/tmp/vq-chaos-world-test-${process.pid}`;
    const sh = spawn('sh', ['-c', 'sleep 30 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'], env: rootEnv(root) });
    started.push(sh.pid as number);
    const sleeper = Number(await new Promise<string>((resolve) => createInterface({ input: sh.stdout }).once('line', resolve)));
    started.push(sleeper);
    expect(processesOfRoot(root).map((p) => p.pid).sort()).toEqual([sh.pid, sleeper].sort());
    expect(processesOfRoot(`${root}-other`)).toEqual([]);
    expect(processesOfRoot(root.slice(0, -1))).toEqual([]);
  });
});
