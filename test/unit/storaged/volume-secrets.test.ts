import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLayout } from '../../../protocol/index.js';
import { VolumeSecrets } from '../../../storaged/volume-secrets.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function secrets(): { vs: VolumeSecrets; file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vq-volsec-'));
  dirs.push(dir);
  const layout = rootLayout(dir);
  return { vs: new VolumeSecrets(layout), file: join(layout.state, 'storage', 'volume-secrets.json'), dir };
}
const UUID = '6f1c1a52-4a1e-4bd4-9a43-0d3c1fd0a001';

describe('VolumeSecrets', () => {
  it('writes nothing when forgetting a volume that had no secret, or recording the same one again', async () => {
    const { vs, file } = secrets();
    await vs.set('default', 'plain.raw', undefined);
    expect(existsSync(file)).toBe(false);
    await vs.set('default', 'enc.qcow2', UUID);
    const written = statSync(file, { bigint: true }).mtimeNs;
    await vs.set('default', 'enc.qcow2', UUID);
    await vs.set('default', 'other.raw', undefined);
    expect(statSync(file, { bigint: true }).mtimeNs).toBe(written);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ 'default/enc.qcow2': UUID });
  });

  it('persists a change and a removal, and a fresh instance loads them', async () => {
    const { vs, dir } = secrets();
    await vs.set('default', 'a.qcow2', UUID);
    await vs.set('default', 'b.qcow2', UUID);
    await vs.set('default', 'a.qcow2', undefined);
    const again = new VolumeSecrets(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'a.qcow2')).toBeUndefined();
    expect(again.get('default', 'b.qcow2')).toBe(UUID);
  });
});
