// QEMU's launcher (shim/vm/qemu-launcher.ts): a warm pool shim starts /bin/sh while it idles and a
// start makes it exec QEMU. What QEMU gets must be exactly what a direct spawn gives it: the same
// argv (any bytes), fd 3 = the lifeline's own description, stdout/stderr appended to the log
// (created 0600 by the shim), stdin /dev/null, the launcher's pid; anything else is a plain spawn.
import { closeSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execLine, shQuote, startQemuLauncher, type QemuLauncher } from '../../../shim/vm/qemu-launcher.js';
import type { QemuProcess, Spawner } from '../../../shim/vm/qemu-process.js';
import { procState } from '../../../drivers/host/proc.js';

let dir = '';
let fds: number[] = [];
let launchers: QemuLauncher[] = [];
beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-launcher-')));
  fds = [];
  launchers = [];
});
afterEach(() => {
  for (const l of launchers) l.discard();
  for (const fd of fds) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

function lifeline(name = 'x.lifeline'): number {
  const fd = openSync(join(dir, name), 'w+', 0o600);
  fds.push(fd);
  return fd;
}

function launcher(fd: number): QemuLauncher {
  const l = startQemuLauncher(fd, { PATH: process.env['PATH'] ?? '/usr/bin:/bin', VIRTQ_T: 'env kept' });
  if (l === undefined) throw new Error('no launcher');
  launchers.push(l);
  return l;
}

const gone = async (pid: number): Promise<boolean> => {
  for (let i = 0; i < 200; i++) {
    const s = procState(pid);
    if (s === undefined || s === 'Z') return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
};

/** A spawner that only records that it was asked. */
function recorder(): Spawner & { calls: number } {
  const r = {
    calls: 0,
    spawn(): QemuProcess {
      r.calls++;
      return { pid: 1, exited: new Promise(() => undefined), isChild: true, kill: () => undefined, poke: () => undefined };
    },
  };
  return r;
}

describe('shQuote', () => {
  it('makes any argument one word that sh reads back unchanged', () => {
    const args = ["it's", 'a b', '$HOME `id` "q" \\n', 'line1\nline2', '', "''", '-name', 'guest=x,debug-threads=on'];
    const r = spawnSync('/bin/sh', ['-c', `for a in ${args.map(shQuote).join(' ')}; do printf '%s\\0' "$a"; done`], { encoding: 'utf8' });
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(args);
  });
});

describe('startQemuLauncher', () => {
  it('runs the spawn in the launcher: same pid, argv, fd 3, log (0600, appended), stdin /dev/null, environment', async () => {
    const fd = lifeline();
    const l = launcher(fd);
    const out = join(dir, 'out');
    const log = join(dir, 'q.log');
    writeFileSync(log, 'earlier\n', { mode: 0o600 });
    const plain = recorder();
    const script = `readlink /proc/self/fd/3 > ${out}; readlink /proc/self/fd/0 >> ${out}; echo "$VIRTQ_T" >> ${out}; printf '%s|' "$@" >> ${out}; echo to-log; echo err >&2`;
    const p = l.spawner(plain).spawn('/bin/sh', ['-c', script, 'argv0', "it's", 'a b'], { logFile: log, inheritFds: [fd] });
    expect(p.pid).toBe(l.pid);
    expect(p.isChild).toBe(true);
    expect((await p.exited).code).toBe(0);
    expect(plain.calls).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(`${join(dir, 'x.lifeline')}\n/dev/null\nenv kept\nit's|a b|`);
    expect(readFileSync(log, 'utf8')).toBe('earlier\nto-log\nerr\n');
  });

  it('creates the QEMU log with mode 0600, as a direct spawn does', async () => {
    const fd = lifeline();
    const log = join(dir, 'new.log');
    const p = launcher(fd).spawner(recorder()).spawn('/bin/true', [], { logFile: log, inheritFds: [fd] });
    await p.exited;
    expect(statSync(log).mode & 0o777).toBe(0o600);
  });

  it('reports the exit status and signal of what it ran', async () => {
    const fd = lifeline();
    const p = launcher(fd).spawner(recorder()).spawn('/bin/sh', ['-c', 'kill -TERM $$'], { logFile: join(dir, 'l'), inheritFds: [fd] });
    expect(await p.exited).toMatchObject({ signal: 'SIGTERM', known: true });
    const fd2 = lifeline('y.lifeline');
    const q = launcher(fd2).spawner(recorder()).spawn('/no/such/qemu', [], { logFile: join(dir, 'l2'), inheritFds: [fd2] });
    expect((await q.exited).code).toBe(127);
  });

  it('spawns plainly, and kills the launcher, for any other fds: a restore image beside the lifeline, none, another file on that fd number', async () => {
    const cases: Array<(fd: number) => number[]> = [(fd) => [fd, lifeline(`img${fds.length}`)], () => [], () => [lifeline(`o${fds.length}`)]];
    for (const fdsOf of cases) {
      const fd = lifeline(`l${fds.length}.lifeline`);
      const l = launcher(fd);
      const plain = recorder();
      const s = l.spawner(plain);
      s.spawn('/bin/true', [], { logFile: join(dir, 'l'), inheritFds: fdsOf(fd) });
      expect(plain.calls).toBe(1);
      expect(await gone(l.pid as number)).toBe(true);
      // Used up: a later spawn is plain too.
      s.spawn('/bin/true', [], { logFile: join(dir, 'l'), inheritFds: [fd] });
      expect(plain.calls).toBe(2);
    }
  });

  it('spawns plainly when the fd number now names another file (closed and reused)', async () => {
    const fd = lifeline();
    const l = launcher(fd);
    closeSync(fd);
    fds = fds.filter((f) => f !== fd);
    const reused = openSync(join(dir, 'other'), 'w+');
    fds.push(reused);
    // The lowest free number: normally the lifeline's old one, which now names another file.
    expect(reused).toBe(fd);
    const plain = recorder();
    l.spawner(plain).spawn('/bin/true', [], { logFile: join(dir, 'l'), inheritFds: [reused] });
    expect(plain.calls).toBe(1);
    expect(await gone(l.pid as number)).toBe(true);
  });

  it('an idle launcher is gone once discarded, and a used one is not killed by discard', async () => {
    const l = launcher(lifeline());
    l.discard();
    expect(await gone(l.pid as number)).toBe(true);
    const fd = lifeline('z.lifeline');
    const m = launcher(fd);
    const p = m.spawner(recorder()).spawn('/bin/sh', ['-c', 'sleep 0.3'], { logFile: join(dir, 'l'), inheritFds: [fd] });
    m.discard();
    expect((await p.exited).code).toBe(0);
  });
});
