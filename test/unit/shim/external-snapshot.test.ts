// External snapshots without QEMU: the overlay names, which disks get one and what is refused
// before anything is made, and the persistent definition moved onto the overlays.
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { normalizeDefinition, type ResolvedDisk } from '../../../protocol/index.js';
import { externalDisks, overlayName } from '../../../shim/vm/external-snapshot.js';
import { definitionOnOverlays } from '../../../aggregator/handlers/snapshot-handlers.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const disk = (over: Partial<ResolvedDisk> & { target: string; path: string }): ResolvedDisk => ({ format: 'qcow2', bus: 'virtio', readonly: false, shareable: false, ...over });

describe('external snapshots', () => {
  let root: TmpRoot | undefined;
  afterEach(() => { root?.remove(); root = undefined; });

  it('names an overlay as libvirt does: the extension replaced by the snapshot name', () => {
    expect(overlayName('/images/web1.qcow2', 's1')).toBe('web1.s1');
    expect(overlayName('/images/web1.s1', 's2')).toBe('web1.s2');
    expect(overlayName('disk', 'snap')).toBe('disk.snap');
  });

  it('covers the writable disks, skips read-only ones, and refuses before anything is made', async () => {
    root = tmpRoot();
    const a = disk({ target: 'vda', path: root.path('a.qcow2') });
    const ro = disk({ target: 'hdc', path: root.path('cd.iso'), format: 'raw', readonly: true });
    const raw = disk({ target: 'vdb', path: root.path('b.raw'), format: 'raw' });
    expect((await externalDisks('vm', 's1', [a, ro, raw], false)).map((d) => d.target)).toEqual(['vda', 'vdb']);
    await expect(externalDisks('vm', 's1', [ro], false)).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('no writable disk') });
    await expect(externalDisks('vm', 's1', [{ ...a, encryption: { secret: '00000000-0000-4000-8000-000000000000' } }], false)).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('encrypted') });
    await expect(externalDisks('vm', 's1', [{ ...a, shareable: true }], false)).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('shareable') });
    const vol = disk({ target: 'vdc', path: root.path('v.qcow2'), source: { pool: 'default', volume: 'v.qcow2' } });
    await expect(externalDisks('vm', 's1', [vol], false)).rejects.toMatchObject({ code: 'NOT_SUPPORTED', message: expect.stringContaining('virtstoraged') });
    expect(await externalDisks('vm', 's1', [vol], true)).toHaveLength(1);
    writeFileSync(root.path('a.s1'), 'x');
    await expect(externalDisks('vm', 's1', [a], false)).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining('a.s1') });
  });

  it('moves the persistent definition onto the overlays by target, a volume disk onto its new volume', () => {
    const def = normalizeDefinition({
      name: 'vm', memoryMiB: 64, kernel: { path: '/k' },
      disks: [{ path: '/i/a.raw', format: 'raw', target: 'vda' }, { source: { pool: 'p', volume: 'v.qcow2' }, target: 'vdb', format: 'qcow2' }, { path: '/i/cd.iso', target: 'hdc', readonly: true }],
    }, () => '11111111-2222-4333-8444-555555555555');
    const moved = definitionOnOverlays(def, { disks: [
      { target: 'vda', path: '/i/a.raw', overlay: '/i/a.s1' },
      { target: 'vdb', path: '/pool/v.qcow2', overlay: '/pool/v.s1', overlaySource: { pool: 'p', volume: 'v.s1' } },
    ] });
    expect(moved.disks[0]).toMatchObject({ path: '/i/a.s1', format: 'qcow2', target: 'vda' });
    expect(moved.disks[1]).toMatchObject({ source: { pool: 'p', volume: 'v.s1' }, format: 'qcow2' });
    expect(moved.disks[1]).not.toHaveProperty('path');
    expect(moved.disks[2]).toEqual(def.disks[2]);
    expect(moved.uuid).toBe(def.uuid);
  });
});
