// The in-process lease holder (perl-holder.ts) on its own, with real perl and flock(2): it locks
// and answers, refuses a held lock, becomes flock(1) holding its lease (a SIGKILL drops it), ends
// with the QEMU whose lifeline it waits on, outlives a killed shim, and ends holding nothing when it is never told go.
// A shell holding the lifeline's exclusive lock stands in for QEMU; flock(1) probes the lock.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAlive, stopHolder } from '../../../../drivers/lock/flock.js';
import { systemClock } from '../../../../protocol/clock.js';
import { DEFAULT_PERL, HOLDER_SCRIPT, startHolder } from '../../../../drivers/lock/perl-holder.js';
import { eventually, killed } from '../../../helpers/lease-processes.js';

const FLOCK = '/usr/bin/flock';
let dir = '';
let procs: ChildProcess[] = [];
const clock = systemClock();

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-perl-holder-')));
  procs = [];
});
afterEach(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A stand-in QEMU: the only process holding the lifeline's exclusive lock. Resolves once it holds it. */
async function fakeQemu(lifeline: string): Promise<ChildProcess> {
  writeFileSync(lifeline, '');
  const q = spawn('/bin/sh', ['-c', 'exec 9<>"$0"; flock -x 9 && echo ok && exec sleep 600', lifeline], { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(q);
  await new Promise((resolve) => q.stdout?.once('data', resolve));
  return q;
}

/** flock(1)'s view of `file`: `free` when an exclusive lock can be taken now. */
function probe(file: string): 'free' | 'held' {
  const r = spawnSync('flock', ['-n', '-E', '75', '-x', file, 'true']);
  return r.status === 0 ? 'free' : 'held';
}

/** Starts a holder with its own description of `lifeline` (as the manager does). */
function holderOn(lifeline: string): ReturnType<typeof startHolder> {
  const fd = openSync(lifeline, 'r');
  try {
    return startHolder(DEFAULT_PERL, FLOCK, fd);
  } finally {
    closeSync(fd);
  }
}

describe('in-process lease holder', () => {
  it('locks on go, refuses a lock held elsewhere, and lets shared leases coexist', async () => {
    const life = join(dir, 'q.lifeline');
    await fakeQemu(life);
    const lock = join(dir, 'disk.lock');
    const a = holderOn(life);
    expect(probe(lock)).toBe('free'); // started, told nothing: holds nothing
    expect(await a.go('exclusive', lock)).toBe('locked');
    expect(probe(lock)).toBe('held');
    const b = holderOn(life);
    expect(await b.go('shared', lock)).toBe('conflict');
    await eventually(() => !isAlive(b.id));
    expect(await stopHolder(a.id, clock)).toBe(true);
    expect(probe(lock)).toBe('free');
    const s1 = holderOn(life);
    const s2 = holderOn(life);
    expect(await s1.go('shared', lock)).toBe('locked');
    expect(await s2.go('shared', lock)).toBe('locked');
    expect(await holderOn(life).go('exclusive', lock)).toBe('conflict');
    await stopHolder(s1.id, clock);
    expect(probe(lock)).toBe('held'); // s2's shared lease
    await stopHolder(s2.id, clock);
    expect(probe(lock)).toBe('free');
  });

  it('becomes flock(1) once locked (same pid and start time), keeping the lease and nothing of perl', async () => {
    const life = join(dir, 'q.lifeline');
    await fakeQemu(life);
    const lock = join(dir, 'disk.lock');
    const h = holderOn(life);
    expect(await h.go('exclusive', lock)).toBe('locked');
    await eventually(() => readlinkSync(`/proc/${h.id.pid}/exe`) === realpathSync(FLOCK));
    expect(isAlive(h.id)).toBe(true);
    expect(probe(lock)).toBe('held');
    // The lease's description crossed the exec; stdin and stdout are no longer the shim's pipes.
    const fd = (n: string): string => readlinkSync(`/proc/${h.id.pid}/fd/${n}`);
    expect(readdirSync(`/proc/${h.id.pid}/fd`).map(fd)).toContain(lock);
    expect([fd('0'), fd('1')]).toEqual(['/dev/null', '/dev/null']);
    expect(await stopHolder(h.id, clock)).toBe(true);
    expect(probe(lock)).toBe('free');
  });

  it('drops the lease when its QEMU exits, and ends', async () => {
    const life = join(dir, 'q.lifeline');
    const q = await fakeQemu(life);
    const lock = join(dir, 'disk.lock');
    const h = holderOn(life);
    expect(await h.go('exclusive', lock)).toBe('locked');
    expect(probe(lock)).toBe('held');
    await killed(q);
    await eventually(() => probe(lock) === 'free');
    await eventually(() => !isAlive(h.id));
  });

  it('outlives a killed shim that started it, holding the lease until its QEMU exits', async () => {
    const life = join(dir, 'q.lifeline');
    const q = await fakeQemu(life);
    const lock = join(dir, 'disk.lock');
    // A stand-in shim (another process): starts the holder as startHolder does, prints its pid once locked.
    const shimScript = `const {spawn}=require('node:child_process');const fs=require('node:fs');const fd=fs.openSync(process.argv[1],'r');
const h=spawn(process.argv[2],['-e',process.argv[3],'/usr/bin/flock'],{stdio:['pipe','pipe','ignore',fd],detached:true});
h.stdout.on('data',(d)=>{if(String(d).startsWith('locked'))process.stdout.write(h.pid+'\\n')});h.stdin.end('go x '+process.argv[4]+'\\n');setInterval(()=>{},1e6);`;
    const shim = spawn(process.execPath, ['-e', shimScript, life, DEFAULT_PERL, HOLDER_SCRIPT, lock], { stdio: ['ignore', 'pipe', 'ignore'] });
    procs.push(shim);
    const pid = Number.parseInt(await new Promise<string>((resolve) => shim.stdout?.once('data', (d: Buffer) => resolve(String(d)))), 10);
    expect(probe(lock)).toBe('held');
    await killed(shim);
    // The shim is gone and its pipes with it: the lease stays with the QEMU.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(probe(lock)).toBe('held');
    expect(processRuns(pid)).toBe(true);
    await killed(q);
    await eventually(() => probe(lock) === 'free');
    await eventually(() => !processRuns(pid));
  });

  it('ends holding nothing when disarmed, or when its shim goes before any go', async () => {
    const life = join(dir, 'q.lifeline');
    await fakeQemu(life);
    const h = holderOn(life);
    h.disarm();
    await eventually(() => !isAlive(h.id));
    expect(await h.go('exclusive', join(dir, 'disk.lock'))).toBe('failed');
    // Its stdin closing without a go (what a shim's death does) ends it too.
    const fd = openSync(life, 'r');
    const raw = spawn(DEFAULT_PERL, ['-e', HOLDER_SCRIPT], { stdio: ['pipe', 'ignore', 'ignore', fd] });
    closeSync(fd);
    procs.push(raw);
    const code = await new Promise<number | null>((resolve) => { raw.once('exit', resolve); raw.stdin?.end(); });
    expect(code).toBe(1);
  });
});

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim().startsWith('Z') === false;
  } catch {
    return false;
  }
}
