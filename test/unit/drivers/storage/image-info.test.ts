// Parsing `qemu-img info --output=json [--backing-chain]` as qemu-img 7.2 prints it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseImageInfo, probedFormat } from '../../../../drivers/storage/image-info.js';
import { QemuImg } from '../../../../drivers/storage/qemu-img.js';

const overlay = {
  'backing-filename-format': 'qcow2', 'virtual-size': 67108864, filename: '/p/ov.qcow2', 'cluster-size': 65536, format: 'qcow2',
  'actual-size': 200704, 'full-backing-filename': '/p/base.qcow2', 'backing-filename': '/p/base.qcow2', 'dirty-flag': false,
};
const base = { 'virtual-size': 67108864, filename: '/p/base.qcow2', format: 'qcow2', 'actual-size': 200704, 'dirty-flag': false };
const raw = { 'virtual-size': 10485760, filename: '/p/r.raw', format: 'raw', 'actual-size': 4096, 'dirty-flag': false };

describe('parseImageInfo', () => {
  it('reads a lone raw image', () => {
    expect(parseImageInfo(JSON.stringify([raw]))).toEqual({ format: 'raw', capacity: 10485760, backingChain: [], encrypted: false, selfContained: true });
  });

  it('reads a backing chain, nearest first, with paths as the overlay resolves them', () => {
    const chain = [overlay, { ...base, 'backing-filename-format': 'raw', 'full-backing-filename': '/p/r.raw', 'backing-filename': 'r.raw' }, raw];
    expect(parseImageInfo(JSON.stringify(chain)).backingChain).toEqual([
      { path: '/p/base.qcow2', format: 'qcow2' },
      { path: '/p/r.raw', format: 'raw' },
    ]);
  });

  it('names the backing file of a single-image answer (no --backing-chain)', () => {
    expect(parseImageInfo(JSON.stringify(overlay)).backingChain).toEqual([{ path: '/p/base.qcow2', format: 'qcow2' }]);
  });

  it('reports encryption', () => {
    expect(parseImageInfo(JSON.stringify([{ ...base, encrypted: true }])).encrypted).toBe(true);
  });

  it('calls a qcow2 self-contained only with no backing file, data file, snapshot, bitmap or corruption', () => {
    const q = (extra: object, data: object = {}): boolean | undefined =>
      parseImageInfo(JSON.stringify([{ ...base, ...extra, 'format-specific': { type: 'qcow2', data: { compat: '1.1', corrupt: false, ...data } } }])).selfContained;
    expect(q({})).toBe(true);
    expect(parseImageInfo(JSON.stringify([base])).selfContained).toBe(true);
    expect(parseImageInfo(JSON.stringify([overlay, base])).selfContained).toBe(false);
    expect(parseImageInfo(JSON.stringify(overlay)).selfContained).toBe(false);
    expect(q({ snapshots: [{ id: '1', name: 's1' }] })).toBe(false);
    expect(q({}, { 'data-file': '/p/data.raw' })).toBe(false);
    expect(q({}, { bitmaps: [{ name: 'b0', granularity: 65536, flags: [] }] })).toBe(false);
    expect(q({}, { corrupt: true })).toBe(false);
    expect(parseImageInfo(JSON.stringify([{ ...raw, format: 'vmdk' }])).selfContained).toBe(false);
  });

  it('throws INTERNAL on text that is not its JSON', () => {
    expect(() => parseImageInfo('not json')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => parseImageInfo('[]')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => parseImageInfo('[{"format":"raw"}]')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

// What an upload's bytes are, before they replace a qcow2 volume's (the real qemu-img).
describe('probedFormat', () => {
  it('reads raw bytes as raw, and bytes that look like a qcow2 header and are not one as unknown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vq-probe-'));
    try {
      writeFileSync(join(dir, 'raw'), Buffer.alloc(65536, 7));
      const fake = Buffer.alloc(65536, 0xff);
      fake.write('QFI\xfb', 0, 'latin1');
      fake.writeUInt32BE(3, 4);
      writeFileSync(join(dir, 'fake'), fake);
      const qemuImg = new QemuImg({});
      expect(await probedFormat(qemuImg, join(dir, 'raw'), 'probing')).toBe('raw');
      expect(await probedFormat(qemuImg, join(dir, 'fake'), 'probing')).toBe('unknown');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

