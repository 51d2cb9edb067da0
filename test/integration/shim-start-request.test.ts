// virtq-shim --start-request (how virtqemud and embed mode start every shim, warm or cold): the
// whole start comes on stdin; a request that is not one, or start flags beside it, are a usage
// error (exit 2, the reason on stderr) before any QEMU runs, as a bad --definition is; a good
// paused request starts the VM paused.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startRequestText, systemClock } from '../../protocol/index.js';
import { spawnShim } from '../../daemon/shim-bootstrap.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { killProcessesUnder } from '../helpers/kill-under.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

describe('virtq-shim --start-request', () => {
  let root: TmpRoot | undefined;
  const pids: number[] = [];
  afterEach(() => {
    for (const pid of pids.splice(0)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    if (root !== undefined) { killProcessesUnder(root.dir); root.remove(); }
    root = undefined;
  });
  const start = (r: TmpRoot, request: string, extra: string[] = []) => spawnShim({
    command: process.execPath, args: [SHIM_BIN, '--root', r.dir, '--no-register', '--definition', '-', '--start-request', ...extra],
    definition: request, name: 'sr1', stderr: 'ignore', clock: systemClock(), timeoutMs: 60_000, logHint: 'see the shim log',
  });
  const def = () => ({ name: 'sr1', memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

  it('refuses a bad request or start flags beside it, and starts a paused VM from a good one', async () => {
    const r = (root = tmpRoot());
    const refused = async (request: string, message: RegExp, extra: string[] = ['--definition', '-', '--start-request']) => {
      const child = spawn(process.execPath, [SHIM_BIN, '--root', r.dir, '--no-register', ...extra], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      child.stdin.end(request);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect({ code, out, first: err.split('\n')[0] }).toEqual({ code: 2, out: '', first: expect.stringMatching(message) });
    };
    await refused(JSON.stringify(def()), /invalid start request: \//);
    await refused('{"definition":', /start request on stdin is not valid JSON/);
    await refused(startRequestText(def(), false, { kind: 'image', file: 'relative.save' }), /\/incoming/);
    await refused(startRequestText(def(), false, undefined), /none of --paused/, ['--definition', '-', '--start-request', '--paused']);
    await refused(startRequestText(def(), false, undefined), /--start-request goes with --definition -/, ['--definition', r.path('sr1.json'), '--start-request']);

    const ready = await start(r, startRequestText(def(), true, undefined));
    pids.push(ready.shimPid, ...(ready.qemuPid === undefined ? [] : [ready.qemuPid]));
    expect(ready).toMatchObject({ ok: true, name: 'sr1', state: 'paused' });
    expect(ready.qemuPid).toBeGreaterThan(1);
  }, 120_000);
});
