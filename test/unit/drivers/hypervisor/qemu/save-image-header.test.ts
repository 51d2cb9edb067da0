// The save image header: what is written is read back, and every way a file can be wrong is
// refused with INVALID_SAVE_IMAGE and a reason, before anything looks at QEMU's stream.
import { mkdtempSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeSaveHeader, openSaveImage, payloadLengthBytes, readSaveImage } from '../../../../../drivers/hypervisor/qemu/save-image-header.js';

describe('save image header', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vq-saveimg-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const image = (payload: Buffer, finish = true): Buffer => {
    const header = encodeSaveHeader({ definition: { name: 'a', uuid: 'u' }, running: true, savedAt: 5 });
    if (finish) { const l = payloadLengthBytes(payload.length); l.bytes.copy(header, l.position); }
    return Buffer.concat([header, payload]);
  };
  const write = (name: string, bytes: Buffer): string => { const f = join(dir, name); writeFileSync(f, bytes); return f; };

  it('reads back what was written, with the payload\'s place', async () => {
    const bytes = image(Buffer.from('QEVM-stream'));
    const r = await readSaveImage(write('ok', bytes));
    expect(r).toMatchObject({ definition: { name: 'a', uuid: 'u' }, running: true, savedAt: 5, payloadBytes: 11 });
    expect(bytes.subarray(r.payloadOffset).toString()).toBe('QEVM-stream');
  });

  it('leaves an opened image\'s descriptor at the stream, which is what QEMU reads from it (-incoming fd:N)', async () => {
    const { image: r, handle } = await openSaveImage(write('ok', image(Buffer.from('QEVM-stream'))));
    try {
      const buf = Buffer.alloc(64);
      // position null: the descriptor's own offset, as a process inheriting it reads.
      const n = readSync(handle.fd, buf, 0, buf.length, null);
      expect(buf.subarray(0, n).toString()).toBe('QEVM-stream');
      expect(r.payloadBytes).toBe(11);
    } finally {
      await handle.close();
    }
  });

  it.each([
    ['empty', () => Buffer.alloc(0), 'truncated'],
    ['cut payload', () => image(Buffer.alloc(100)).subarray(0, 150), 'truncated'],
    ['foreign', () => Buffer.from('\x7fELF'.padEnd(200, 'x')), 'foreign'],
    ['unfinished', () => image(Buffer.alloc(10), false), 'incomplete'],
    ['trailing bytes', () => Buffer.concat([image(Buffer.alloc(10)), Buffer.from('z')]), 'corrupt'],
    ['flipped header byte', () => { const b = image(Buffer.alloc(10)); b[70] = (b[70] ?? 0) ^ 0xff; return b; }, 'corrupt'],
    ['huge header length', () => { const b = image(Buffer.alloc(10)); b.writeUInt32BE(0xffffffff, 20); return b; }, 'corrupt'],
    ['future version', () => { const b = image(Buffer.alloc(10)); b.writeUInt32BE(2, 16); return b; }, 'version'],
  ])('refuses %s', async (_what, make, reason) => {
    await expect(readSaveImage(write('bad', make()))).rejects.toMatchObject({ code: 'INVALID_SAVE_IMAGE', details: { reason } });
  });

  it('says a missing file does not exist', async () => {
    await expect(readSaveImage(join(dir, 'nope'))).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });
});
