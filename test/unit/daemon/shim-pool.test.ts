// The warm shim pool's bookkeeping (bounded, refilled after a take, emptied on close, dead shims
// dropped, the VM's stderr file kept) with a counted fake, and the waiting shim's hand-off with
// real processes standing in for a shim: what it said or how it died before the hand-off is
// what the hand-off reports.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError, delay, systemClock } from '../../../protocol/index.js';
import { ShimPool } from '../../../daemon/shim-pool.js';
import { readyLine, startWaitingShim, type ShimProcess, type WaitingShim } from '../../../daemon/shim-bootstrap.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const clock = systemClock();
let root: TmpRoot;
beforeEach(() => { root = tmpRoot('vq-pool-'); });
afterEach(() => { root.remove(); });

class FakeShim implements WaitingShim {
  static made: FakeShim[] = [];
  idle = true;
  discarded = false;
  readonly pid: number;
  constructor(readonly p: ShimProcess) { this.pid = 1000 + FakeShim.made.length; FakeShim.made.push(this); }
  hand(): Promise<never> { this.idle = false; return Promise.reject(new Error('not used')); }
  discard(): void { this.idle = false; this.discarded = true; }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await delay(clock, 5);
  expect(check()).toBe(true);
}

describe('ShimPool', () => {
  beforeEach(() => { FakeShim.made = []; });
  const pool = (size: number) => new ShimPool({ size, command: '/bin/virtq-shim', args: ['--root', '/r', '--definition', '-'], logDir: root.dir, clock, start: (p) => new FakeShim(p) });

  it('fills up to its size and no further, with exactly the cold start arguments', async () => {
    const p = pool(2);
    p.fill();
    p.fill();
    await until(() => p.pids().length === 2);
    await delay(clock, 30);
    expect(FakeShim.made).toHaveLength(2);
    expect(FakeShim.made[0]?.p).toMatchObject({ command: '/bin/virtq-shim', args: ['--root', '/r', '--definition', '-'] });
    p.close();
  });

  it('hands out each idle shim once, refills when asked, and gives the VM its stderr file with the earlier content', async () => {
    const p = pool(1);
    p.fill();
    await until(() => p.pids().length === 1);
    writeFileSync(join(root.dir, 'web1.shim-stderr.log'), 'from an earlier run\n');
    const taken = p.take('web1');
    expect(taken?.shim).toBe(FakeShim.made[0]);
    // When it was spawned, for virtqemud's check of a failed start's QEMU (its launcher is older than the start).
    expect(taken?.since).toBeGreaterThan(0);
    expect(p.take('web2')).toBeUndefined();
    expect(readFileSync(join(root.dir, 'web1.shim-stderr.log'), 'utf8')).toBe('from an earlier run\n');
    expect(readdirSync(root.dir).filter((f) => f.startsWith('shim-pool-'))).toEqual([]);
    p.fill();
    await until(() => p.pids().length === 1);
    expect(FakeShim.made).toHaveLength(2);
    p.close();
  });

  it('drops a shim that died on its own and never hands it out', async () => {
    const p = pool(1);
    p.fill();
    await until(() => p.pids().length === 1);
    (FakeShim.made[0] as FakeShim).idle = false;
    expect(p.take('web1')).toBeUndefined();
    expect(FakeShim.made[0]?.discarded).toBe(true);
    p.close();
  });

  it('close discards every idle shim, removes their empty stderr files, and stops refilling', async () => {
    const p = pool(3);
    p.fill();
    await until(() => p.pids().length === 3);
    p.close();
    p.fill();
    await delay(clock, 30);
    expect(FakeShim.made.every((s) => s.discarded)).toBe(true);
    expect(FakeShim.made).toHaveLength(3);
    expect(readdirSync(root.dir)).toEqual([]);
  });

  it('a shim that cannot be started (its stderr file, no process) leaves the pool short, not the caller broken, and the next fill tries again', async () => {
    let fail = true;
    const p = new ShimPool({ size: 2, command: '/bin/virtq-shim', args: [], logDir: root.dir, clock, start: (sp) => { if (fail) throw new Error('EMFILE'); return new FakeShim(sp); } });
    p.fill();
    await delay(clock, 30);
    expect(p.pids()).toEqual([]);
    expect(p.take('web1')).toBeUndefined();
    fail = false;
    p.fill();
    await until(() => p.pids().length === 2);
    const gone = new ShimPool({ size: 1, command: '/bin/virtq-shim', args: [], logDir: root.path('no-such-dir'), clock, start: (sp) => new FakeShim(sp) });
    gone.fill();
    await delay(clock, 30);
    expect(gone.pids()).toEqual([]);
    p.close();
    gone.close();
  });

  it('spawns nothing while starts are in flight, stops a refill under way when one begins, and fills when asked once none is', async () => {
    let busy = true;
    const p = new ShimPool({ size: 3, command: '/bin/virtq-shim', args: ['--definition', '-'], logDir: root.dir, clock, busy: () => busy, start: (s) => new FakeShim(s) });
    p.fill();
    await delay(clock, 30);
    expect(FakeShim.made).toHaveLength(0);
    busy = false;
    p.fill();
    await until(() => p.pids().length === 3);
    // Two taken; a start comes in while the refill runs: the refill stops at its next shim.
    p.take('a');
    p.take('b');
    p.fill();
    busy = true;
    await delay(clock, 30);
    const during = FakeShim.made.length;
    expect(during).toBeLessThanOrEqual(4);
    busy = false;
    p.fill();
    await until(() => p.pids().length === 3);
    expect(FakeShim.made).toHaveLength(5);
    p.close();
  });

  it('with size 0 starts nothing', async () => {
    const p = pool(0);
    p.fill();
    await delay(clock, 30);
    expect(FakeShim.made).toHaveLength(0);
    expect(p.take('web1')).toBeUndefined();
  });
});

describe('startWaitingShim', () => {
  const ready = { name: 'w1', uuid: '5f2b1d3a-9c4e-4d6f-8a1b-2c3d4e5f6a7b', state: 'running' as const, socket: '/r/w1.sock', shimPid: 1 };
  const node = (script: string): ShimProcess => ({ command: process.execPath, args: ['-e', script], stderr: 'ignore' });
  const wait = { name: 'w1', clock, timeoutMs: 20_000, logHint: 'see the log' };

  it('waits for its definition on stdin, then reports its ready line', async () => {
    const script = `let d='';process.stdin.on('data',(c)=>d+=c).on('end',()=>{const def=JSON.parse(d);process.stdout.write(${JSON.stringify(readyLine(ready))}.replace('"w1"',JSON.stringify(def.name))+'\\n')})`;
    const shim = startWaitingShim(node(script));
    await delay(clock, 50);
    expect(shim.idle).toBe(true);
    await expect(shim.hand(JSON.stringify({ name: 'w1' }), wait)).resolves.toMatchObject({ ok: true, name: 'w1' });
    expect(shim.idle).toBe(false);
  });

  it('reports a failure line printed before the hand-off', async () => {
    const shim = startWaitingShim(node(`process.stdout.write(JSON.stringify({ok:false,error:{code:'INVALID_ARG',message:'bad flag'}})+'\\n')`));
    await until(() => !shim.idle);
    const err = await shim.hand('{}', wait).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VirtqError);
    expect(err).toMatchObject({ code: 'INVALID_ARG', message: 'bad flag' });
  });

  it('reports an exit before the hand-off as shimExited', async () => {
    const shim = startWaitingShim(node('process.exit(3)'));
    await until(() => !shim.idle);
    await expect(shim.hand('{}', wait)).rejects.toMatchObject({ code: 'OPERATION_FAILED', details: { shimExited: true } });
  });

  it('discard kills an idle one', async () => {
    const shim = startWaitingShim(node('setInterval(() => {}, 1000)'));
    const pid = shim.pid as number;
    shim.discard();
    await until(() => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.startsWith('Z') === true);
    expect(shim.idle).toBe(false);
  });
});
