// The qemu-img commit virtqemud runs for a shut-off VM's snapshot delete, with a stand-in
// qemu-img that records its arguments: a bandwidth becomes `-r` in bytes/s, none adds nothing.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { qemuImgCommit } from '../../../aggregator/handlers/offline-delete.js';

describe('qemuImgCommit', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'virtq-offline-commit-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  const fakeQemuImg = (): string => {
    const bin = join(dir, 'qemu-img');
    writeFileSync(bin, `#!/bin/sh\necho "$*" >> ${dir}/calls\n[ "$1" = info ] && echo '{"backing-filename-format":"raw"}'\nexit 0\n`);
    chmodSync(bin, 0o755);
    return bin;
  };
  const calls = (): string[] => readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');

  it('caps the commit at the bandwidth given, in bytes/s', async () => {
    await expect(qemuImgCommit(fakeQemuImg())('/i/a.s1', 3 * 1024 * 1024)).resolves.toEqual({ backingFormat: 'raw' });
    expect(calls()).toEqual(['info --output=json /i/a.s1', 'commit -q -d -f qcow2 -r 3145728 /i/a.s1']);
  });

  it('runs unlimited without one', async () => {
    await qemuImgCommit(fakeQemuImg())('/i/a.s1');
    expect(calls()[1]).toBe('commit -q -d -f qcow2 /i/a.s1');
  });
});
