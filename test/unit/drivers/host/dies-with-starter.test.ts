import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { boundCommand, runBound, spawnBound } from '../../../../drivers/host/dies-with-starter.js';

describe('boundCommand', () => {
  it('starts the program through setpriv --pdeathsig KILL where setpriv exists, as it is where not', () => {
    expect(boundCommand('qemu-img', ['info', '--', '-x'], '/bin/sh')).toEqual(['/bin/sh', ['--pdeathsig', 'KILL', '--', 'qemu-img', 'info', '--', '-x']]);
    expect(boundCommand('qemu-img', ['info'], '/nonexistent/setpriv')).toEqual(['qemu-img', ['info']]);
  });
});

describe('spawnBound and runBound', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  it('runs the program to its end and hands back what it wrote', async () => {
    expect(await runBound('printf', ['%s-%s', 'a b', 'c'])).toBe('a b-c');
    const { child, ended } = spawnBound('cat', [], 'pipe');
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stdin.end('through stdin');
    expect(await ended).toEqual({ code: 0, signal: null });
    expect(out).toBe('through stdin');
  });

  it('reports a program that cannot be executed as a start error, not as its exit code', async () => {
    expect((await spawnBound('/nonexistent/qemu-img', ['--version'], 'ignore').ended).error?.message).toContain('/nonexistent/qemu-img');
    const dir = mkdtempSync(join(tmpdir(), 'vq-bound-'));
    dirs.push(dir);
    const notExecutable = join(dir, 'tool');
    writeFileSync(notExecutable, '#!/bin/sh\n');
    chmodSync(notExecutable, 0o644);
    expect((await spawnBound(notExecutable, [], 'ignore').ended).error).toBeInstanceOf(Error);
    await expect(runBound('/nonexistent/qemu-img', [])).rejects.toThrow(/cannot run \/nonexistent\/qemu-img/);
  });

  it("keeps a program's own exit codes 126 and 127 and their stderr", async () => {
    const ended = await spawnBound('sh', ['-c', 'echo not setpriv >&2; exit 127'], 'ignore').ended;
    expect(ended).toEqual({ code: 127, signal: null });
    await expect(runBound('sh', ['-c', 'echo it broke >&2; exit 126'])).rejects.toThrow('it broke');
  });
});
