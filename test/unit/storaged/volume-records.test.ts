// virtstoraged's volume records: written only when they change, loaded back by a new instance.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLayout } from '../../../protocol/index.js';
import { VolumeRecords } from '../../../storaged/volume-records.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function records(): { vr: VolumeRecords; file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vq-volrec-'));
  dirs.push(dir);
  const layout = rootLayout(dir);
  return { vr: new VolumeRecords(layout), file: join(layout.state, 'storage', 'volumes.json'), dir };
}
const UUID = '6f1c1a52-4a1e-4bd4-9a43-0d3c1fd0a001';

describe('VolumeRecords', () => {
  it('writes nothing when forgetting a volume it never recorded, or recording the same again', async () => {
    const { vr, file } = records();
    await vr.set('default', 'plain.raw', undefined);
    expect(existsSync(file)).toBe(false);
    await vr.set('default', 'enc.qcow2', { format: 'qcow2', secret: UUID });
    const written = statSync(file, { bigint: true }).mtimeNs;
    await vr.set('default', 'enc.qcow2', { format: 'qcow2', secret: UUID });
    await vr.set('default', 'other.raw', undefined);
    expect(statSync(file, { bigint: true }).mtimeNs).toBe(written);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ 'default/enc.qcow2': { format: 'qcow2', secret: UUID } });
  });

  it('persists a change and a removal, and a fresh instance loads them', async () => {
    const { vr, dir } = records();
    await vr.set('default', 'a.qcow2', { format: 'qcow2', secret: UUID });
    await vr.set('default', 'b.raw', { format: 'raw' });
    await vr.set('default', 'a.qcow2', undefined);
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'a.qcow2')).toEqual({});
    expect(again.get('default', 'b.raw')).toEqual({ format: 'raw' });
  });
});
