// Embedded mode (qemu:///embed?root=DIR) with no daemon: the client library starts shims itself.
// Two applications with different roots each see only their own VMs (even under the same name),
// per-VM calls reach the right shim, the CLI works on the same roots, and an application may keep
// warm shims (shimPool, decision 0026).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { procState } from '../../drivers/host/proc.js';
import { readStateFiles } from '../helpers/state-files.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../client/index.js';
import { ListOutput } from '../../cli/json-output.js';
import { rootLayout, shimDir } from '../../protocol/index.js';
import { killProcessesUnder } from '../helpers/kill-under.js';
import { idleShimPids } from '../helpers/shim-pool-probe.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { expectFailure, virtq, virtqJson, virtqOk } from './virtq-cli.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const names = async (c: Connection, filter = {}): Promise<string[]> => (await c.virtq.listDomains(filter)).domains.map((d) => d.name).sort();

// Kills every shim and QEMU recorded under `root`, and anything else whose command line names it.
function killAll(root: TmpRoot): void {
  const dir = shimDir(rootLayout(root.dir));
  let files: string[] = [];
  try { files = readdirSync(dir).filter((f) => f.endsWith('.json')); } catch { /* none */ }
  for (const f of files) {
    try {
      const s = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as { qemuPid?: number; shimPid?: number };
      for (const pid of [s.qemuPid, s.shimPid]) if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    } catch { /* unreadable */ }
  }
  killProcessesUnder(root.dir);
}

/** Shims under `root` waiting for a definition: `virtq-shim ... --definition -` that no state file names. */
function idleShims(root: TmpRoot): number[] {
  return idleShimPids(root.dir, new Set(readStateFiles<{ shimPid: number }>(rootLayout(root.dir)).map((s) => s.shimPid)));
}

async function until<T>(what: string, get: () => T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (let v = get(); ; v = get()) {
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');

describe('embedded mode', () => {
  let rootA: TmpRoot;
  let rootB: TmpRoot;
  const conns: Connection[] = [];
  const open = async (root: TmpRoot): Promise<Connection> => {
    const c = await connect(`qemu:///embed?root=${root.dir}`, { shimCommand: [process.execPath, SHIM_BIN], timeoutMs: 60_000 });
    conns.push(c);
    return c;
  };
  beforeEach(() => { rootA = tmpRoot('vqea-'); rootB = tmpRoot('vqeb-'); });
  afterEach(() => {
    for (const c of conns.splice(0)) c.close();
    for (const r of [rootA, rootB]) { killAll(r); r.remove(); }
  });

  it('keeps each application\'s VMs private to its root', async () => {
    const a = await open(rootA);
    const b = await open(rootB);
    expect(a.peer).toBe('embed');
    await expect(a.virtq.create({ definition: idleDef('app-a') })).resolves.toMatchObject({ name: 'app-a', state: 'running', reason: 'booted', persistent: false, shimUp: true });
    await b.virtq.create({ definition: idleDef('app-b') });
    await Promise.all([a.virtq.create({ definition: idleDef('same') }), b.virtq.create({ definition: idleDef('same') })]);

    expect(await names(a)).toEqual(['app-a', 'same']);
    expect(await names(b)).toEqual(['app-b', 'same']);
    const [sameA, sameB] = await Promise.all([a.virtq.lookupByName({ name: 'same' }), b.virtq.lookupByName({ name: 'same' })]);
    expect(sameA.uuid).not.toBe(sameB.uuid);
    await expect(a.virtq.getInfo({ name: 'app-b' })).rejects.toMatchObject({ code: 'NO_DOMAIN' });
    await expect(a.domain('app-a').getState()).resolves.toEqual({ state: 'running', reason: 'booted' });
    await expect(a.virtq.create({ definition: idleDef('app-a') })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    await expect(a.virtq.define({ definition: idleDef('x') })).rejects.toMatchObject({ code: 'NOT_SUPPORTED' });

    // A second instance of application A (a new connection) finds the same VMs.
    const again = await open(rootA);
    expect(await names(again)).toEqual(['app-a', 'same']);

    const events = await a.events({ name: 'app-a' });
    await expect(a.domain('app-a').destroy()).resolves.toEqual({ state: 'shutoff', reason: 'destroyed' });
    for (;;) {
      const r = await events.next();
      if (r.done === true) throw new Error('events ended before stopped');
      if (r.value.event === 'stopped') break;
    }
    expect(await names(a, { active: true })).toEqual(['same']);
    expect(await names(a, { inactive: true })).toEqual(['app-a']);
    await expect(a.virtq.getState({ name: 'app-a' })).resolves.toEqual({ state: 'shutoff', reason: 'destroyed' });
    await expect(a.domain('app-a').suspend()).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(await names(b)).toEqual(['app-b', 'same']);
  });

  it('keeps warm shims when asked (shimPool): a plain and a paused create each run in one, the pool refills, and closing the connection kills only the idle one', async () => {
    const uri = `qemu:///embed?root=${rootA.dir}`;
    await expect(connect(uri, { shimCommand: [process.execPath, SHIM_BIN], shimPool: 17 })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringMatching(/0 to 16/) });
    const cold = await open(rootA);
    await cold.virtq.create({ definition: idleDef('cold-e') });
    expect(idleShims(rootA)).toEqual([]);
    const a = await connect(uri, { shimCommand: [process.execPath, SHIM_BIN], timeoutMs: 60_000, shimPool: 1 });
    conns.push(a);
    const [warm] = await until('an idle shim', () => { const p = idleShims(rootA); return p.length === 1 ? p : undefined; });
    await expect(a.virtq.create({ definition: idleDef('warm-e') })).resolves.toMatchObject({ name: 'warm-e', state: 'running', reason: 'booted', shimPid: warm });
    // The same command line as a cold embed shim's, and the same VM.
    const coldPid = (await cold.virtq.lookupByName({ name: 'cold-e' })).shimPid as number;
    expect(cmdline(warm as number)).toEqual(cmdline(coldPid));
    await expect(cold.domain('warm-e').getState()).resolves.toEqual({ state: 'running', reason: 'booted' });
    // The pool refills after the warm start, and a paused start takes the new idle shim too.
    const [idle2] = await until('a refill', () => { const p = idleShims(rootA); return p.length === 1 && p[0] !== warm ? p : undefined; });
    // Its reply's state and reason come from the shim's ready line, and say what getState says.
    const paused = await a.virtq.create({ definition: idleDef('paused-e'), paused: true });
    expect(paused).toMatchObject({ state: 'paused', shimPid: idle2 });
    expect(await cold.domain('paused-e').getState()).toEqual({ state: paused.state, reason: paused.reason });
    const [refill] = await until('a second refill', () => { const p = idleShims(rootA); return p.length === 1 && p[0] !== idle2 ? p : undefined; });
    a.close();
    await until('the idle shim to go', () => (['Z', 'X', undefined].includes(procState(refill as number)) ? true : undefined), 10_000);
    expect(procState(warm as number)).toMatch(/[RS]/);
    expect(await names(cold)).toEqual(['cold-e', 'paused-e', 'warm-e']);
    expect(idleShims(rootA)).toEqual([]);
  });

  it('an application that exits without closing is not held up by its idle shim, which then exits too', async () => {
    const lib = new URL('../../dist/lib/client/index.js', import.meta.url).pathname;
    const script = `const { connect } = await import(${JSON.stringify(lib)});
await connect(${JSON.stringify(`qemu:///embed?root=${rootA.dir}`)}, { shimCommand: [process.execPath, ${JSON.stringify(SHIM_BIN)}], shimPool: 1 });
setTimeout(() => undefined, 4000);`;
    const app = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => app.once('exit', (code) => resolve(code)));
    const [idle] = await until('the application\'s idle shim', () => { const p = idleShims(rootA); return p.length === 1 ? p : undefined; });
    // The application's last timer ends: it exits with the idle shim still running...
    expect(await exited).toBe(0);
    // ...whose stdin then reads EOF: it exits, having started nothing.
    await until('the idle shim to exit', () => (['Z', 'X', undefined].includes(procState(idle as number)) ? true : undefined), 10_000);
    expect(readStateFiles(rootLayout(rootA.dir))).toEqual([]);
  });

  it('serves the CLI on an embed root: create, list, per-VM commands, destroy', async () => {
    writeFileSync(rootA.path('cli.json'), JSON.stringify({ ...idleDef('cli-e'), kernel: { path: idleGuest().kernel } }));
    const uri = `qemu:///embed?root=${rootA.dir}`;
    expect(await virtqOk(['-c', uri, 'create', 'cli.json'], { cwd: rootA.dir })).toBe("Domain 'cli-e' created from cli.json\n");
    const rows = await virtqJson<Array<{ name: string; state: string }>>(['-c', uri, 'list'], ListOutput);
    expect(rows).toMatchObject([{ name: 'cli-e', state: 'running', persistent: false }]);
    expect(await virtqOk(['-c', uri, 'domstate', 'cli-e'])).toBe('running\n');
    expect(await virtqOk(['-c', uri, 'reset', 'cli-e'])).toBe("Domain 'cli-e' was reset\n");
    expect(await virtqOk(['-c', uri, 'suspend', 'cli-e'])).toBe("Domain 'cli-e' suspended\n");
    expect(await virtqOk(['-c', uri, 'domstate', 'cli-e', '--reason'])).toBe('paused (user)\n');
    const b = await open(rootB);
    expect(await names(b)).toEqual([]);
    expect(await virtqOk(['-c', uri, 'destroy', 'cli-e'])).toBe("Domain 'cli-e' destroyed\n");
    expect(await virtqJson(['-c', uri, 'list'], ListOutput)).toEqual([]);
    expect(await virtqJson(['-c', uri, 'list', '--all'], ListOutput)).toMatchObject([{ name: 'cli-e', state: 'shutoff' }]);
    expect(await virtqOk(['-c', uri, 'domstate', 'cli-e', '--reason'])).toBe('shutoff (destroyed)\n');
    expectFailure(await virtq(['-c', uri, 'dominfo', 'cli-e']), 'OPERATION_INVALID', /it is shutoff/);
    expectFailure(await virtq(['-c', uri, 'dominfo', 'nobody']), 'NO_DOMAIN', /nobody/);
  });
});
