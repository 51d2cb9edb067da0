// The shared QMP socket with QEMU's own Python QMP library (qemu.qmp, from QEMU 7.2's Debian
// source: scripts/fetch-qemu-qmp.sh), a client nobody here wrote: two of its clients connected
// at once to a real shim, each negotiating, each getting the replies to its own (library-made)
// ids while their commands interleave, both getting the events virtq causes, and the shim's own
// `quit` refused as a QMP error the library raises.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { shimSockets } from '../../protocol/index.js';
import { guestDefinition, ShimHarness } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const LIBRARY = join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'virtq', 'qemu-qmp', 'python');
const SCRIPT = fileURLToPath(new URL('../helpers/qemu-qmp-clients.py', import.meta.url));

type Line = Record<string, unknown> & { step: string };

describe('shared QMP socket with qemu.qmp (QEMU\'s Python library)', () => {
  let h: ShimHarness;
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('serves two qemu.qmp clients at once: their own replies, every event, quit refused', async () => {
    expect(existsSync(join(LIBRARY, 'qemu', 'qmp', 'qmp_client.py')), `qemu.qmp is missing: run scripts/fetch-qemu-qmp.sh (scripts/setup.sh does)`).toBe(true);
    const vm = await h.start(guestDefinition('qpy'));
    const py = spawn('python3', [SCRIPT, shimSockets(h.layout, 'qpy').qmpProxy], { env: { ...process.env, PYTHONPATH: LIBRARY }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    py.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => py.once('exit', (code) => resolve(code)));
    try {
      const lines: Line[] = [];
      for await (const text of createInterface({ input: py.stdout })) {
        const line = JSON.parse(text) as Line;
        lines.push(line);
        if (line.step === 'READY') {
          await vm.api.suspend({ name: 'qpy' });
          await vm.api.resume({ name: 'qpy' });
        }
      }
      expect(await exited, stderr).toBe(0);
      const step = (name: string): Line | undefined => lines.find((l) => l.step === name);
      const greeting = step('greeting') as unknown as { a: { major: number }; b: { major: number } };
      expect(greeting.a.major).toBeGreaterThanOrEqual(7);
      expect(greeting.b).toEqual(greeting.a);
      // Each client got the answer to the command it sent, though the four ran interleaved.
      expect(step('concurrent')?.['replies']).toEqual([
        expect.objectContaining({ running: true, status: 'running' }), { name: 'qpy' },
        { name: 'qpy' }, expect.objectContaining({ running: true, status: 'running' }),
      ]);
      expect(step('events')).toEqual({ step: 'events', a: ['STOP', 'RESUME'], b: ['STOP', 'RESUME'] });
      expect(step('quit')).toMatchObject({ refused: true, error_class: 'GenericError', desc: expect.stringMatching(/reserved to virtq/) });
      expect(step('after')?.['status']).toMatchObject({ running: true });
      expect(step('done')).toBeDefined();
      expect((await vm.api.getState({ name: 'qpy' })).state).toBe('running');
      expect((await vm.api.getInfo({ name: 'qpy' })).tainted).toBe(false);
    } finally {
      if (py.exitCode === null) py.kill('SIGKILL');
      await exited;
    }
  });
});
