// The process supervisor on a fake clock: restarts after a backoff that doubles and is capped,
// resets after a stable run, retries failed launches, counts restarts, and stop() ends it all.
import { describe, expect, it } from 'vitest';
import { pollExit, Supervisor, type WatchedProcess } from '../../../../drivers/network/supervisor.js';
import type { ProcessExit } from '../../../../drivers/network/runner.js';
import { FakeClock } from '../../../helpers/fake-clock.js';

/** A process the test ends by hand. */
function fakeProcess(pid: number): WatchedProcess & { die(exit?: ProcessExit): void } {
  let die!: (e: ProcessExit) => void;
  const exited = new Promise<ProcessExit>((r) => { die = r; });
  return { pid, exited, die: (exit = { code: null, signal: 'SIGKILL' }) => die(exit) };
}

function harness(backoff = { initialMs: 100, maxMs: 400, stableMs: 10_000 }) {
  const clock = new FakeClock();
  const launched: Array<ReturnType<typeof fakeProcess>> = [];
  const log: string[] = [];
  let nextPid = 100;
  let failNext = 0;
  const first = fakeProcess(nextPid++);
  const sup = new Supervisor({
    clock,
    backoff,
    launch: async () => {
      if (failNext > 0) {
        failNext -= 1;
        throw new Error('bind failed');
      }
      const p = fakeProcess(nextPid++);
      launched.push(p);
      return p;
    },
    onExit: (pid, e) => log.push(`exit ${pid} ${e.signal ?? e.code}`),
    onRestart: (pid, n) => log.push(`restart ${pid} #${n}`),
    onRestartFailed: (err, retry) => log.push(`failed ${(err as Error).message} retry ${retry}`),
  }, first);
  return { clock, sup, first, launched, log, failWith: (n: number) => { failNext = n; } };
}

describe('Supervisor', () => {
  it('restarts a process that died after the initial backoff and counts it', async () => {
    const h = harness();
    expect(h.sup.pid).toBe(100);
    h.first.die();
    await h.clock.advance(99);
    expect(h.launched).toHaveLength(0);
    expect(h.sup.pid).toBeUndefined();
    await h.clock.advance(1);
    expect(h.launched).toHaveLength(1);
    expect(h.sup.pid).toBe(101);
    expect(h.sup.restarts).toBe(1);
    expect(h.log).toEqual(['exit 100 SIGKILL', 'restart 101 #1']);
  });

  it('doubles the backoff for quick deaths up to the cap, and resets it after a stable run', async () => {
    const h = harness();
    const delays: number[] = [];
    let last = h.clock.now();
    let current: ReturnType<typeof fakeProcess> = h.first;
    for (let i = 0; i < 5; i++) {
      current.die();
      const before = h.launched.length;
      while (h.launched.length === before) await h.clock.advance(1);
      delays.push(h.clock.now() - last);
      last = h.clock.now();
      current = h.launched[h.launched.length - 1] ?? current;
    }
    expect(delays).toEqual([100, 200, 400, 400, 400]);
    await h.clock.advance(10_000);
    last = h.clock.now();
    current.die();
    await h.clock.advance(100);
    expect(h.launched).toHaveLength(6);
    expect(h.sup.restarts).toBe(6);
  });

  it('retries a launch that failed, with backoff, and reports each failure', async () => {
    const h = harness();
    h.failWith(2);
    h.first.die();
    await h.clock.advance(100);
    await h.clock.advance(200);
    expect(h.launched).toHaveLength(0);
    await h.clock.advance(400);
    expect(h.launched).toHaveLength(1);
    expect(h.log).toEqual(['exit 100 SIGKILL', 'failed bind failed retry 200', 'failed bind failed retry 400', 'restart 101 #1']);
  });

  it('stops restarting and leaves no timer once stopped', async () => {
    const h = harness();
    h.first.die();
    await h.clock.advance(10);
    await h.sup.stop();
    await h.clock.advance(10_000);
    expect(h.launched).toHaveLength(0);
    expect(h.clock.pending()).toBe(0);
  });

  it('ignores the exit of a process it stopped supervising', async () => {
    const h = harness();
    await h.sup.stop();
    h.first.die();
    await h.clock.advance(10_000);
    expect(h.log).toEqual([]);
    expect(h.sup.pid).toBe(100);
  });
});

describe('pollExit', () => {
  it('settles once the process is no longer alive, checking on the clock', async () => {
    const clock = new FakeClock();
    let alive = true;
    const w = pollExit(42, () => alive, clock, 1000);
    let done = false;
    void w.exited.then(() => { done = true; });
    await clock.advance(5000);
    expect(done).toBe(false);
    alive = false;
    await clock.advance(999);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
  });

  it('stops polling when disposed', async () => {
    const clock = new FakeClock();
    const w = pollExit(42, () => true, clock, 1000);
    w.dispose?.();
    expect(clock.pending()).toBe(0);
  });
});
