// writeFileAtomicSync: the shim's state-file write (daemon/runtime-state.ts), done on its own thread.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomicSync } from '../../../../drivers/fs/atomic-file.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'vq-atomic-')); dirs.push(d); return d; };
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('writeFileAtomicSync', () => {
  it('replaces the file whole, with its mode, and leaves no temp file', () => {
    const d = tmp();
    const f = join(d, 'vm.json');
    writeFileSync(f, 'old');
    writeFileAtomicSync(f, '{"state":"running"}\n', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('{"state":"running"}\n');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(d)).toEqual(['vm.json']);
  });

  it('makes a missing directory (the runtime directory wiped while the VM runs)', () => {
    const f = join(tmp(), 'run', 'shims', 'vm.json');
    writeFileAtomicSync(f, new Uint8Array([0x7b, 0x7d]));
    expect(readFileSync(f, 'utf8')).toBe('{}');
  });

  it('fails with OPERATION_FAILED naming the file, leaving what was there and no temp file', () => {
    const d = tmp();
    // A non-empty directory where the file should be: the rename fails after the temp file was written.
    const target = join(d, 'vm.json');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'old');
    expect(() => writeFileAtomicSync(target, 'new')).toThrow(expect.objectContaining({ code: 'OPERATION_FAILED', message: expect.stringContaining(target) }));
    expect(readFileSync(join(target, 'inside'), 'utf8')).toBe('old');
    expect(readdirSync(d)).toEqual(['vm.json']);
  });
});
