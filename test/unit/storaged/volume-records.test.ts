// virtstoraged's volume records: logged only when they change, loaded back (and folded into the
// snapshot) by a new instance, a torn last line dropped.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLayout } from '../../../protocol/index.js';
import { COMPACT_LINES, VolumeRecords } from '../../../storaged/volume-records.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function records(): { vr: VolumeRecords; file: string; log: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vq-volrec-'));
  dirs.push(dir);
  const layout = rootLayout(dir);
  return { vr: new VolumeRecords(layout), file: join(layout.state, 'storage', 'volumes.json'), log: join(layout.state, 'storage', 'volumes.log'), dir };
}
const UUID = '6f1c1a52-4a1e-4bd4-9a43-0d3c1fd0a001';

describe('VolumeRecords', () => {
  it('writes nothing when forgetting a volume it never recorded, or recording the same again', async () => {
    const { vr, log } = records();
    await vr.set('default', 'plain.raw', undefined);
    expect(existsSync(log)).toBe(false);
    await vr.set('default', 'enc.qcow2', { format: 'qcow2', secret: UUID });
    const written = readFileSync(log, 'utf8');
    await vr.set('default', 'enc.qcow2', { format: 'qcow2', secret: UUID });
    await vr.set('default', 'other.raw', undefined);
    expect(readFileSync(log, 'utf8')).toBe(written);
    expect(written.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ k: 'default/enc.qcow2', r: { format: 'qcow2', secret: UUID } }]);
    await vr.close();
  });

  it('persists a change and a removal, and a fresh instance loads them and folds the log into the snapshot', async () => {
    const { vr, dir, file, log } = records();
    await vr.set('default', 'a.qcow2', { format: 'qcow2', secret: UUID });
    await vr.set('default', 'b.raw', { format: 'raw' });
    await vr.set('default', 'a.qcow2', undefined);
    await vr.close();
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(3);
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'a.qcow2')).toEqual({});
    expect(again.get('default', 'b.raw')).toEqual({ format: 'raw' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ 'default/b.raw': { format: 'raw' } });
    expect(statSync(log).size).toBe(0);
    await again.set('default', 'c.raw', { format: 'raw' });
    await again.close();
    const third = new VolumeRecords(rootLayout(dir));
    await third.load();
    expect(third.get('default', 'b.raw')).toEqual({ format: 'raw' });
    expect(third.get('default', 'c.raw')).toEqual({ format: 'raw' });
    await third.close();
  });

  it('has a loaded log\'s line in the file when set() returns (a kill -9 from then on keeps it), durable when it resolves', async () => {
    const { vr, dir, log } = records();
    await vr.load();
    const a = vr.set('default', 'a.raw', { format: 'raw' });
    const b = vr.set('default', 'b.qcow2', { format: 'qcow2' });
    // Not awaited yet: both lines are already written (what a volume's link, made next, relies on).
    expect(readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { k: 'default/a.raw', r: { format: 'raw' } }, { k: 'default/b.qcow2', r: { format: 'qcow2' } },
    ]);
    await Promise.all([a, b]);
    await vr.close();
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'b.qcow2')).toEqual({ format: 'qcow2' });
    await again.close();
  });

  it('setWritten answers once the line is in the file; with syncAfter the sync (durable, settled) waits for it', async () => {
    const { vr, dir, log } = records();
    await vr.load();
    let release = (): void => undefined;
    const after = new Promise<void>((resolve) => { release = resolve; });
    const { durable } = await vr.setWritten('default', 'a.raw', { format: 'raw' }, after);
    expect(readFileSync(log, 'utf8')).toContain('"default/a.raw"');
    const state = { durable: false, settled: false, other: false };
    void durable.then(() => { state.durable = true; });
    void vr.settled('default', 'a.raw').then(() => { state.settled = true; });
    await vr.settled('default', 'other.raw').then(() => { state.other = true; }); // nothing pending for it
    await new Promise((r) => setTimeout(r, 50));
    expect(state).toEqual({ durable: false, settled: false, other: true });
    release();
    await durable;
    await vr.settled('default', 'a.raw');
    expect(state.settled).toBe(true);
    await vr.close();
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'a.raw')).toEqual({ format: 'raw' });
    await again.close();
  });

  it('stops replaying at a line torn by a crash and never appends after it', async () => {
    const { vr, dir, log } = records();
    await vr.set('default', 'a.raw', { format: 'raw' });
    await vr.close();
    appendFileSync(log, '{"k":"default/b.raw","r":{"form');
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'a.raw')).toEqual({ format: 'raw' });
    expect(again.get('default', 'b.raw')).toEqual({});
    await again.set('default', 'c.qcow2', { format: 'qcow2' });
    await again.close();
    const third = new VolumeRecords(rootLayout(dir));
    await third.load();
    expect(third.get('default', 'a.raw')).toEqual({ format: 'raw' });
    expect(third.get('default', 'c.qcow2')).toEqual({ format: 'qcow2' });
    await third.close();
  });

  it('folds the log into the snapshot once it holds COMPACT_LINES changes', async () => {
    const { vr, dir, file, log } = records();
    for (let i = 0; i <= COMPACT_LINES; i += 1) await vr.set('p', `v${i}.raw`, { format: 'raw' });
    await vr.close();
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    // The change that triggered the fold is in the snapshot already, and logged again after it.
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object)).toHaveLength(COMPACT_LINES + 1);
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('p', `v${COMPACT_LINES}.raw`)).toEqual({ format: 'raw' });
    expect(again.get('p', 'v0.raw')).toEqual({ format: 'raw' });
    await again.close();
  });
  it('loads when the fold at load cannot write (a full disk), and folds before the next change instead of appending after a torn line', async () => {
    const { vr, dir, file, log } = records();
    await vr.set('default', 'a.raw', { format: 'raw' });
    await vr.close();
    appendFileSync(log, '{"k":"default/b.raw","r":{"form');
    // The snapshot's place taken by a directory: writing it fails as it would on a full disk.
    mkdirSync(file);
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'a.raw')).toEqual({ format: 'raw' });
    await expect(again.set('default', 'c.raw', { format: 'raw' })).rejects.toThrow();
    expect(readFileSync(log, 'utf8')).not.toContain('c.raw');
    rmSync(file, { recursive: true });
    await again.set('default', 'd.raw', { format: 'raw' });
    await again.close();
    expect(readFileSync(log, 'utf8')).not.toContain('"form\n');
    const third = new VolumeRecords(rootLayout(dir));
    await third.load();
    expect(third.get('default', 'a.raw')).toEqual({ format: 'raw' });
    expect(third.get('default', 'c.raw')).toEqual({ format: 'raw' });
    expect(third.get('default', 'd.raw')).toEqual({ format: 'raw' });
    await third.close();
  });
  it('settles a replacement a kill left half-way, after a restart, by which file holds the volume\'s name', async () => {
    const { vr, dir } = records();
    const pool = join(dir, 'pool');
    mkdirSync(pool);
    writeFileSync(join(pool, 'done.img'), 'new bytes');
    writeFileSync(join(pool, 'kept.img'), 'old bytes');
    const newIno = String(statSync(join(pool, 'done.img'), { bigint: true }).ino);
    // done.img: the replacement happened (its inode is the one named); kept.img: it did not.
    await vr.set('default', 'done.img', { format: 'qcow2', secret: UUID, replacedBy: { ino: newIno, format: 'raw' } });
    await vr.set('default', 'kept.img', { format: 'qcow2', replacedBy: { ino: `${newIno}0`, format: 'raw' } });
    await vr.set('gone', 'x.img', { format: 'qcow2', replacedBy: { ino: newIno, format: 'raw' } });
    await vr.close();
    const again = new VolumeRecords(rootLayout(dir));
    await again.load();
    expect(again.get('default', 'done.img').replacedBy).toEqual({ ino: newIno, format: 'raw' });
    await again.settleReplacements((p, v) => (p === 'default' ? join(pool, v) : undefined));
    expect(again.get('default', 'done.img')).toEqual({ format: 'raw', secret: UUID });
    expect(again.get('default', 'kept.img')).toEqual({ format: 'qcow2' });
    expect(again.get('gone', 'x.img')).toEqual({ format: 'qcow2' });
    await again.close();
    const third = new VolumeRecords(rootLayout(dir));
    await third.load();
    expect(third.get('default', 'done.img')).toEqual({ format: 'raw', secret: UUID });
    expect(third.get('default', 'kept.img')).toEqual({ format: 'qcow2' });
    await third.close();
  });
});
