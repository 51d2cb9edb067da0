// Facts from /proc about real processes: this test process, a child that burns CPU, and a pid
// that is gone.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { ProcessStatsCache, hasLetGo, isLiveProcess, letGo, procState, processStats } from '../../../../drivers/host/proc.js';
import { FakeClock } from '../../../helpers/fake-clock.js';

// Burns until killed: a child that ended by itself could be read as a zombie (its RSS gone) when
// this process's timers ran late under load (a unit run at load 11, session 19).
const burn = () => spawn(process.execPath, ['-e', 'for (;;);']);
const exited = (p: ReturnType<typeof spawn>) => new Promise((resolve) => p.once('exit', resolve));

describe('processStats', () => {
  it('reads CPU time and RSS of a live process, and zeros for a gone one', async () => {
    const p = burn();
    // Read while it runs, once it has burnt some CPU: a reading of a running process must show it.
    let s = processStats(p.pid as number);
    for (let i = 0; i < 200 && s.cpuTimeSec <= 0.05; i++) {
      await new Promise((r) => setTimeout(r, 25));
      s = processStats(p.pid as number);
    }
    p.kill('SIGKILL');
    await exited(p);
    expect(s.cpuTimeSec).toBeGreaterThan(0.05);
    expect(s.rssBytes).toBeGreaterThan(1024 * 1024);
    const gone = spawnSync('true').pid;
    expect(processStats(gone)).toEqual({ cpuTimeSec: 0, rssBytes: 0 });
  });
});

describe('ProcessStatsCache', () => {
  it('reads a process at most once per clock tick, then again', async () => {
    const clock = new FakeClock();
    const cache = new ProcessStatsCache(() => clock.monotonic());
    // The child must still be running when it is read again.
    const p = burn();
    const pid = p.pid as number;
    try {
      const first = cache.get(pid);
      // Until /proc shows it has burnt more CPU since, read directly (the cache is not asked): at
      // load ~30 on two cores a fixed 150 ms wait let it run less than one 10 ms tick (unit run, session 13).
      for (let i = 0; i < 400 && processStats(pid).cpuTimeSec <= first.cpuTimeSec; i++) await new Promise((r) => setTimeout(r, 25));
      expect(processStats(pid).cpuTimeSec).toBeGreaterThan(first.cpuTimeSec);
      // Within the tick: the same reading, although the child has burnt more CPU since.
      await clock.advance(9);
      expect(cache.get(pid)).toBe(first);
      await clock.advance(1);
      expect(cache.get(pid).cpuTimeSec).toBeGreaterThan(first.cpuTimeSec);
    } finally {
      p.kill('SIGKILL');
      await exited(p);
    }
  });

  it('holds only the processes asked about last', () => {
    const clock = new FakeClock();
    const cache = new ProcessStatsCache(() => clock.monotonic(), 2);
    const self = cache.get(process.pid);
    cache.get(process.ppid);
    cache.get(1);
    // Our own entry was the oldest and went: asking again reads anew.
    expect(cache.get(process.pid)).not.toBe(self);
  });
});

/**
 * A `sleep SECONDS` that can be made a zombie: sh starts it and becomes `sleep 30`, which never
 * reaps it, so once killed it stays a zombie until `end()` kills its parent. Resolves once the
 * child has exec'd sleep ($! is the forked shell until then).
 */
async function sleeperWithZombieParent(seconds: number): Promise<{ pid: number; marker: string; zombie(): Promise<void>; end(): Promise<void> }> {
  const holder = spawn('sh', ['-c', `sleep ${seconds} & echo $!; exec sleep 30`], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = Number(await new Promise<string>((resolve) => holder.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
  const marker = `\0${seconds}`;
  for (let i = 0; i < 200 && !isLiveProcess(pid, marker); i++) await new Promise((r) => setTimeout(r, 25));
  return {
    pid,
    marker,
    zombie: async () => {
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 400 && procState(pid) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 25));
    },
    end: async () => {
      holder.kill('SIGKILL');
      await exited(holder);
    },
  };
}

describe('isLiveProcess', () => {
  it('is true for a live process whose command line holds the marker, false once it is a zombie', async () => {
    const p = await sleeperWithZombieParent(29);
    try {
      expect(isLiveProcess(p.pid, p.marker)).toBe(true);
      expect(isLiveProcess(p.pid, 'not-in-it')).toBe(false);
      await p.zombie();
      expect(procState(p.pid)).toBe('Z');
      expect(isLiveProcess(p.pid, p.marker)).toBe(false);
      expect(isLiveProcess(p.pid, '')).toBe(false);
    } finally {
      await p.end();
    }
  });
});

describe('hasLetGo', () => {
  it('is false while a process exits with its memory released but its files maybe open, true once a zombie or another program', () => {
    const marker = '\0dnsmasq-conf\0';
    expect(letGo('S', `dnsmasq${marker}`, marker)).toBe(false);
    // The window isLiveProcess cannot see: do_exit has run exit_mm (the command line reads empty),
    // not yet exit_files (its sockets still bound).
    expect(letGo('R', '', marker)).toBe(false);
    expect(letGo('D', '', marker)).toBe(false);
    expect(letGo('Z', '', marker)).toBe(true);
    expect(letGo('X', '', marker)).toBe(true);
    expect(letGo(undefined, undefined, marker)).toBe(true);
    // Gone between reading its state and its command line.
    expect(letGo('R', undefined, marker)).toBe(true);
    // The pid reused by another program.
    expect(letGo('S', 'sleep\x0030\0', marker)).toBe(true);
  });

  it('reads a real process: false while it runs, true once it is a zombie and once it is gone', async () => {
    const p = await sleeperWithZombieParent(28);
    try {
      expect(hasLetGo(p.pid, p.marker)).toBe(false);
      expect(hasLetGo(p.pid, 'not-in-it')).toBe(true);
      await p.zombie();
      expect(procState(p.pid)).toBe('Z');
      expect(hasLetGo(p.pid, p.marker)).toBe(true);
    } finally {
      await p.end();
    }
    // Its parent killed, init reaps it.
    for (let i = 0; i < 400 && procState(p.pid) !== undefined; i++) await new Promise((r) => setTimeout(r, 25));
    expect(hasLetGo(p.pid, p.marker)).toBe(true);
  });
});
