// The qemu-img runner against a scripted process: stdout, progress percentages, aborts that
// kill the child, and stderr texts mapped to catalogue codes.
import { describe, expect, it } from 'vitest';
import { QemuImg, qemuImgError, spawnQemuImg } from '../../../../drivers/storage/qemu-img.js';
import { fakeQemuImg } from './fake-qemu-img.js';

describe('QemuImg.run', () => {
  it('resolves with stdout when qemu-img exits 0', async () => {
    const fake = fakeQemuImg(() => ({ stdout: '{"a":1}' }));
    expect(await new QemuImg({ spawn: fake.spawn }).run(['info'], { what: 'x' })).toBe('{"a":1}');
  });

  it('parses every "(NN.NN/100%)" of -p output, split across writes or not', async () => {
    const fake = fakeQemuImg(() => ({ stdout: '    (0.00/100%)\r    (2.00/100%)\r    (50.50/100%)\r    (100.00/100%)\r' }));
    const seen: number[] = [];
    await new QemuImg({ spawn: fake.spawn }).run(['convert', '-p'], { what: 'x', onPercent: (p) => seen.push(p) });
    expect(seen).toEqual([0, 2, 50.5, 100]);
  });

  it('kills the child and throws OPERATION_ABORTED when the signal aborts', async () => {
    const fake = fakeQemuImg(() => ({ hang: true }));
    const ac = new AbortController();
    const run = new QemuImg({ spawn: fake.spawn }).run(['convert'], { what: 'cloning v', signal: ac.signal });
    setImmediate(() => ac.abort());
    await expect(run).rejects.toMatchObject({ code: 'OPERATION_ABORTED', message: expect.stringContaining('cloning v') });
    expect(fake.calls[0]?.killed).toBe(true);
  });

  it('does not start qemu-img when the signal has already aborted', async () => {
    const fake = fakeQemuImg(() => ({}));
    await expect(new QemuImg({ spawn: fake.spawn }).run(['x'], { what: 'x', signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'OPERATION_ABORTED' });
    expect(fake.calls).toEqual([]);
  });

  it('maps a failure through its stderr', async () => {
    const fake = fakeQemuImg(() => ({ stderr: 'qemu-img: error while writing at byte 0: No space left on device\n', code: 1 }));
    await expect(new QemuImg({ spawn: fake.spawn }).run(['convert'], { what: 'cloning v' })).rejects.toMatchObject({ code: 'NO_SPACE' });
  });

  it('says OPERATION_FAILED naming the binary when it cannot be started', async () => {
    const q = new QemuImg({ binary: '/nonexistent/qemu-img', spawn: spawnQemuImg });
    await expect(q.run(['--version'], { what: 'probing' })).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('/nonexistent/qemu-img') });
  });
});

describe('qemuImgError', () => {
  const exit = { code: 1, signal: null };
  it('maps ENOSPC, a held lock, a wrong, missing or non-UTF-8 passphrase, and anything else', () => {
    expect(qemuImgError('w', exit, 'qemu-img: x: No space left on device').code).toBe('NO_SPACE');
    expect(qemuImgError('w', exit, 'qemu-img: Failed to get "write" lock\nIs another process using the image [/p/v]?').code).toBe('IN_USE');
    expect(qemuImgError('w', exit, "qemu-img: Could not open 'x': Invalid password, cannot unlock any keyslot").code).toBe('INVALID_ARG');
    expect(qemuImgError('w', exit, "qemu-img: Could not open 'x': Parameter 'encrypt.key-secret' is required for cipher").code).toBe('INVALID_ARG');
    expect(qemuImgError('w', exit, 'qemu-img: /p/.vq-1.tmp: Data from secret sec1 is not valid UTF-8')).toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('not valid UTF-8 text') });
    const other = qemuImgError('creating v', exit, "qemu-img: Unsupported qcow2 version 7\n");
    expect(other).toMatchObject({ code: 'OPERATION_FAILED', details: { exitCode: 1, stderr: 'Unsupported qcow2 version 7' } });
    expect(other.message).toBe('creating v: qemu-img failed (exit 1): Unsupported qcow2 version 7');
  });
});
