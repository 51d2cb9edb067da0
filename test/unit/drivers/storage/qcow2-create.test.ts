// The qcow2 creator against the real qemu-img: for each capacity (none, the smallest, one not
// cluster-aligned, 1 GiB, 1 TiB, past one L1 cluster, qemu's largest) and with and without a
// backing file (absolute as a thin clone writes it, relative, raw or qcow2 below), the image
// passes `qemu-img check`, `qemu-img info` reports of it exactly what it reports of the image
// `qemu-img create` makes with the same parameters, and the two files are the same bytes.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtqError } from '../../../../protocol/errors.js';
import { qcow2Layout, writeQcow2, type Qcow2Backing } from '../../../../drivers/storage/qcow2-create.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const qemuImg = (args: string[], cwd?: string): string => execFileSync('qemu-img', args, { cwd, encoding: 'utf8' });

/** `qemu-img info` of `path` without what names the file or measures its allocation on disk. */
function info(path: string): Record<string, unknown> {
  const out = JSON.parse(qemuImg(['info', '--output=json', path])) as Record<string, unknown>;
  delete out['filename'];
  delete out['actual-size'];
  return out;
}

const TiB = 2 ** 40;
const CAPACITIES: Array<[string, number]> = [
  ['0 bytes', 0],
  ['1 byte (one sector)', 1],
  ['1000 bytes (not sector-aligned)', 1000],
  ['64 KiB + 512 (not cluster-aligned)', 65536 + 512],
  ['1 GiB', 2 ** 30],
  ['1 GiB + 3 bytes', 2 ** 30 + 3],
  ['1 TiB', TiB],
  ['5 TiB (an L1 of two clusters)', 5 * TiB],
  ['2 PiB (qemu\'s largest L1)', 2 * 1024 * TiB],
];

describe('qcow2 creator against qemu-img', () => {
  let root: TmpRoot;
  beforeAll(() => {
    root = tmpRoot();
    qemuImg(['create', '-q', '-f', 'qcow2', root.path('base.qcow2'), '1G']);
    qemuImg(['create', '-q', '-f', 'raw', root.path('base.raw'), '1G']);
  });
  afterAll(() => { root.remove(); });

  let n = 0;
  async function compare(capacity: number, backing?: Qcow2Backing): Promise<void> {
    n += 1;
    const ours = root.path(`ours-${n}.qcow2`);
    const theirs = root.path(`theirs-${n}.qcow2`);
    await writeQcow2(ours, 0o600, capacity, backing);
    const b = backing === undefined ? [] : ['-b', backing.name, '-F', backing.format];
    qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1,cluster_size=65536,refcount_bits=16', ...b, theirs, String(capacity)], root.dir);
    const mine = info(ours);
    expect(mine).toEqual(info(theirs));
    expect(mine).toMatchObject({
      'virtual-size': Math.ceil(capacity / 512) * 512, 'cluster-size': 65536, format: 'qcow2', 'dirty-flag': false,
      'format-specific': { type: 'qcow2', data: { compat: '1.1', 'refcount-bits': 16, corrupt: false, 'lazy-refcounts': false, 'extended-l2': false, 'compression-type': 'zlib' } },
    });
    if (backing !== undefined) expect(mine).toMatchObject({ 'backing-filename': backing.name, 'backing-filename-format': backing.format });
    else expect(mine['backing-filename']).toBeUndefined();
    // Exit status 0 is "no errors, no leaks"; the JSON says so field by field.
    const check = JSON.parse(qemuImg(['check', '--output=json', ours])) as Record<string, unknown>;
    expect(check).toMatchObject({ 'check-errors': 0, format: 'qcow2' });
    expect(check['corruptions']).toBeUndefined();
    expect(check['leaks']).toBeUndefined();
    expect(statSync(ours).size).toBe(statSync(theirs).size);
    expect(readFileSync(ours).equals(readFileSync(theirs))).toBe(true);
    expect(statSync(ours).mode & 0o777).toBe(0o600);
  }

  for (const [label, capacity] of CAPACITIES) {
    it(`makes qemu-img's image of ${label}`, async () => { await compare(capacity); });
  }
  it('makes a thin overlay naming its backing file by absolute path (qcow2 below)', async () => {
    await compare(2 ** 30, { name: root.path('base.qcow2'), format: 'qcow2' });
  });
  it('makes a thin overlay of a raw backing file, capacity not cluster-aligned', async () => {
    await compare(2 ** 30 + 1000, { name: root.path('base.raw'), format: 'raw' });
  });
  it('makes an overlay naming its backing file relatively (resolved beside the overlay)', async () => {
    await compare(TiB, { name: 'base.qcow2', format: 'qcow2' });
  });
  it('makes an overlay whose backing name has a comma, spaces and non-ASCII letters', async () => {
    const odd = root.path('b, ase é.qcow2');
    qemuImg(['create', '-q', '-f', 'qcow2', odd, '1M']);
    await compare(2 ** 20, { name: odd, format: 'qcow2' });
  });

  it('takes writes: data converted into the image reads back, and check stays clean', async () => {
    const img = root.path('written.qcow2');
    await writeQcow2(img, 0o600, 2 ** 20 + 512);
    const raw = root.path('pattern.raw');
    const pattern = Buffer.alloc(2 ** 20 + 512, 'virtq-qcow2-creator ');
    writeFileSync(raw, pattern);
    // -n: into the existing image, allocating L2 tables, data clusters and refcounts in it.
    qemuImg(['convert', '-n', '-f', 'raw', '-O', 'qcow2', raw, img]);
    qemuImg(['check', img]);
    const back = root.path('back.raw');
    qemuImg(['convert', '-f', 'qcow2', '-O', 'raw', img, back]);
    expect(readFileSync(back).equals(pattern)).toBe(true);
  });
});

describe('qcow2Layout', () => {
  it('refuses a capacity past qemu\'s L1 limit, naming the largest', () => {
    const max = 2 * 1024 * TiB;
    expect(qcow2Layout(max).l1Entries).toBe(4 * 1024 * 1024);
    let err: unknown;
    try { qcow2Layout(max + 1); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(VirtqError);
    expect(err).toMatchObject({ code: 'INVALID_ARG', details: { field: 'capacityBytes', maxBytes: max } });
  });
  it('refuses a backing name over 1023 bytes, an empty one, a bad format', () => {
    expect(() => qcow2Layout(1, { name: '/' + 'a'.repeat(1023), format: 'raw' })).toThrow(/1–1023 bytes/);
    expect(() => qcow2Layout(1, { name: '', format: 'raw' })).toThrow(VirtqError);
    expect(() => qcow2Layout(1, { name: '/x', format: 'raw,file=y' })).toThrow(/qemu format name/);
  });
  it('counts every metadata cluster once: header, refcount table and block, each L1 cluster', () => {
    const l = qcow2Layout(5 * TiB);
    expect(l.l1Entries).toBe(10240);
    const refblock = l.chunks[2] as Buffer;
    expect([0, 1, 2, 3, 4, 5].map((i) => refblock.readUInt16BE(i * 2))).toEqual([1, 1, 1, 1, 1, 0]);
    expect(l.length).toBe(3 * 65536 + 10240 * 8);
  });
});
