// The space reserve beside the shims' state files: made whole or not at all, given up only for a
// write that failed for want of space, and that write tried once more.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtqError } from '../../../protocol/index.js';
import { ensureSpaceReserve, spaceReserveIn, withSpaceReserve, withSpaceReserveSync } from '../../../daemon/space-reserve.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vq-reserve-'));
  dirs.push(d);
  return join(d, 'shims');
}
const noSpace = (): never => { throw new VirtqError('NO_SPACE', 'cannot write x: no space left on device'); };

describe('space reserve', () => {
  it('is made (with its directory) at its size, and a short one is made again', () => {
    const d = dir();
    expect(ensureSpaceReserve(d, 8192)).toBe(true);
    expect(statSync(spaceReserveIn(d)).size).toBe(8192);
    writeFileSync(spaceReserveIn(d), 'short');
    expect(ensureSpaceReserve(d, 8192)).toBe(true);
    expect(statSync(spaceReserveIn(d)).size).toBe(8192);
    expect(readdirSync(d)).toEqual(['.space-reserve']);
  });

  it('is given up for a write that found no space, which is tried once more', () => {
    const d = dir();
    ensureSpaceReserve(d, 4096);
    let calls = 0;
    expect(withSpaceReserveSync(d, () => { calls += 1; if (calls === 1) noSpace(); })).toBe(true);
    expect(calls).toBe(2);
    expect(existsSync(spaceReserveIn(d))).toBe(false);
    // Nothing left to give: the failure is the caller's.
    expect(() => withSpaceReserveSync(d, noSpace)).toThrow(/no space left/);
  });

  it('is kept when the write succeeds or fails for another reason', async () => {
    const d = dir();
    ensureSpaceReserve(d, 4096);
    expect(withSpaceReserveSync(d, () => undefined)).toBe(false);
    await expect(withSpaceReserve(d, () => { throw new VirtqError('OPERATION_FAILED', 'cannot write x: EACCES'); })).rejects.toThrow(/EACCES/);
    expect(existsSync(spaceReserveIn(d))).toBe(true);
    let calls = 0;
    await expect(withSpaceReserve(d, async () => { calls += 1; if (calls === 1) noSpace(); })).resolves.toBe(true);
    expect(existsSync(spaceReserveIn(d))).toBe(false);
  });
});
