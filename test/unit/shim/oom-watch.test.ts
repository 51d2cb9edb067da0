import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { classifyExit } from '../../../shim/vm/exit-policy.js';
import { cgroupOomWatch, memoryCgroupOf, oomKillCount, type CgroupRoots } from '../../../shim/vm/oom-watch.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;

// A copy of /proc and the cgroup trees, as files: the shim's pid 10 in v1's /a or v2's /b.
function world(root: TmpRoot, kind: 'v1' | 'v2'): CgroupRoots {
  const roots = { v1Memory: root.path('mem'), v2: root.path('unified'), proc: root.path('proc') };
  mkdirSync(join(roots.proc, '10'), { recursive: true });
  if (kind === 'v1') {
    writeFileSync(join(roots.proc, '10', 'cgroup'), '9:name=systemd:/\n4:memory:/a\n0::/\n');
    mkdirSync(join(roots.v1Memory, 'a'), { recursive: true });
    writeFileSync(join(roots.v1Memory, 'a', 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n');
  } else {
    writeFileSync(join(roots.proc, '10', 'cgroup'), '0::/b/c\n');
    mkdirSync(join(roots.v2, 'b', 'c'), { recursive: true });
    writeFileSync(join(roots.v2, 'b', 'memory.events'), 'low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n');
  }
  return roots;
}

describe('OOM evidence', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => root.remove());

  it('finds the memory cgroup of a pid and reads its oom_kill count (v1 and v2)', () => {
    const v1 = world(root, 'v1');
    expect(memoryCgroupOf(10, v1)).toEqual({ dir: join(v1.v1Memory, 'a'), counter: 'memory.oom_control' });
    expect(oomKillCount(join(v1.v1Memory, 'a', 'memory.oom_control'))).toBe(3);
    expect(oomKillCount(join(v1.v1Memory, 'missing'))).toBeUndefined();
    expect(memoryCgroupOf(11, v1)).toBeUndefined();
  });

  it('moves QEMU into a cgroup of its own under the shim\'s; without a counter there, watches the shim\'s (v1)', () => {
    const roots = world(root, 'v1');
    const own = join(roots.v1Memory, 'a', 'virtq-qemu-77');
    const armed = cgroupOomWatch(silent, roots, 10)(77);
    // A plain directory stands in for the kernel: the pid was written to cgroup.procs, but no counter appeared.
    expect(readFileSync(join(own, 'cgroup.procs'), 'utf8')).toBe('77');
    expect(armed?.evidence).toEqual({ counter: join(roots.v1Memory, 'a', 'memory.oom_control'), own: false });
    writeFileSync(join(roots.v1Memory, 'a', 'memory.oom_control'), 'oom_kill 4\n');
    expect(armed?.killed()).toBe(true);
  });

  it('falls back to the nearest cgroup with a counter, and says it is not QEMU\'s own (v2)', () => {
    const roots = world(root, 'v2');
    const armed = cgroupOomWatch(silent, roots, 10)(77);
    expect(armed?.evidence).toEqual({ counter: join(roots.v2, 'b', 'memory.events'), own: false });
    expect(armed?.killed()).toBe(false);
    writeFileSync(join(roots.v2, 'b', 'memory.events'), 'oom_kill 2\n');
    expect(armed?.killed()).toBe(true);
  });

  it('classifies an OOM-killed QEMU as crashed/oom-killed, unless the shim meant to stop it', () => {
    const oom = { code: null, signal: 'SIGKILL' as const, known: true, oom: { counter: '/x', own: true } };
    expect(classifyExit({ intent: undefined, state: 'running', guestShutdown: false }, oom)).toMatchObject({ state: 'crashed', reason: 'oom-killed', details: { oomKilled: true, signal: 'SIGKILL' } });
    expect(classifyExit({ intent: undefined, state: 'shutting-down', guestShutdown: true }, oom)).toMatchObject({ reason: 'oom-killed' });
    expect(classifyExit({ intent: 'destroyed', state: 'running', guestShutdown: false }, oom)).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    expect(classifyExit({ intent: undefined, state: 'running', guestShutdown: false }, { code: null, signal: 'SIGKILL', known: true })).toMatchObject({ state: 'crashed', reason: 'signal-SIGKILL' });
  });
});
