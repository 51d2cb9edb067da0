// The storage invariants of the chaos suite can fail: with real virtstoraged and virtsecretd
// under a temp root, a few operations through the chaos ops hold them; then each kind of damage
// done behind the daemons' back (a volume's bytes changed, a backing file replaced, a volume
// removed, a stray file, a temp file after a restart, a secret set behind the model, a value in
// a log, a deleted volume held open) is reported.
import { closeSync, openSync, unlinkSync, writeFileSync, appendFileSync, renameSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { SecretOps, SECRETS } from './secret-ops.js';
import { SideDaemons } from './side-daemons.js';
import { StorageContext, type StorageHooks, type StorageOp } from './storage-context.js';
import { StorageInvariants } from './storage-invariants.js';
import { KiB } from './storage-model.js';
import { VolumeOps } from './storage-ops.js';

function op(kind: StorageOp['kind'], fields: Partial<StorageOp>): StorageOp {
  return { kind, idx: 0, idx2: 0, aim: true, format: 'raw', size: 0, delta: 0, parts: [], flag: true, slowMs: 0, hangUpMs: undefined, slot: 0, value: '', ...fields };
}

describe('the storage invariants of chaos', () => {
  let root: TmpRoot;
  let side: SideDaemons;
  afterEach(async () => {
    await side.dispose();
    root.remove();
  });

  it('hold after real operations, and report each kind of damage done behind the daemons\' back', async () => {
    root = tmpRoot();
    side = new SideDaemons(root.dir);
    await Promise.all([side.start('virtsecretd'), side.start('virtstoraged')]);
    const violations: string[] = [];
    const hooks: StorageHooks = {
      trace: () => undefined, violation: (v) => violations.push(v), note: () => undefined, count: () => undefined, stopAck: () => undefined,
      track: () => undefined, virtq: () => Promise.reject(new Error('no virtqemud here')), diskFull: () => false,
    };
    const pool = root.path('lib', 'images');
    const ctx = new StorageContext(1, side, hooks, pool);
    const vols = new VolumeOps(ctx);
    const secrets = new SecretOps(ctx);
    const inv = new StorageInvariants(ctx, root.path('log'));
    const value = 'vqchaos-test-1-value';
    await vols.run(op('volCreate', { name: 'v0', size: 0 }));
    await vols.run(op('upload', { name: 'v0', parts: [[0, 8 * KiB, 3], [64 * KiB, 4 * KiB, 4]] }));
    await vols.run(op('thinClone', { name: 'v1', source: 'v0' }));
    await vols.run(op('volCreate', { name: 'v2', format: 'qcow2', size: 1 }));
    await vols.run(op('fullClone', { name: 'v3', source: 'v0' }));
    await vols.run(op('download', { name: 'v1' }));
    await vols.run(op('volDelete', { name: 'v0' })); // refused: v1 reads through it
    const uuid = SECRETS[0] as string;
    await secrets.run(op('secretDefine', { name: uuid, flag: true, size: 1 }));
    await secrets.run(op('secretSet', { name: uuid, value }));
    await secrets.run(op('secretGet', { name: uuid, flag: true }));
    await inv.checkAll('clean', 0, false);
    inv.checkInUse('clean', [{ pid: process.pid, name: 'this test' }]);
    expect(violations).toEqual([]);

    // The damage.
    const fd = openSync(join(pool, 'v3'), 'r+');
    writeFileSync(fd, 'XXXXXXXXXXXXXXXX');
    closeSync(fd);
    copyFileSync(join(pool, 'v0'), join(pool, 'v0.copy'));
    renameSync(join(pool, 'v0.copy'), join(pool, 'v0'));
    unlinkSync(join(pool, 'v2'));
    writeFileSync(join(pool, 'stray'), 'x');
    writeFileSync(join(pool, '.vq-0123456789abcdef.tmp'), 'x');
    const c = await side.secret();
    await c.api.setValue({ uuid, value: Buffer.from('set behind the model') });
    c.close();
    appendFileSync(root.path('log', 'virtstoraged.log'), `${Buffer.from(value).toString('base64')}\n`);
    const held = openSync(join(pool, 'v1'), 'r');
    unlinkSync(join(pool, 'v1'));
    try {
      inv.checkInUse('damaged', [{ pid: process.pid, name: 'this test' }]);
      await inv.checkAll('damaged', 0, true);
    } finally {
      closeSync(held);
    }
    const expected = [
      /runs on .*\/v1 \(deleted\): a volume was deleted or replaced under a running VM/,
      /volume v3 is raw 256 KiB \w+, none of what the model allows/,
      /volume v2 is lost/,
      /volume v1 is lost/,
      /a file stray is in the pool dir, which no operation made/,
      /temp file \.vq-0123456789abcdef\.tmp is still in the pool dir after a restart/,
      new RegExp(`secret ${uuid}: read value set behind the model, but the secret can only be`),
      new RegExp(`secret value ${value} appears in .*virtstoraged.log \\(as `),
    ];
    for (const e of expected) expect(violations.some((v) => e.test(v)), `${e} in:\n${violations.join('\n')}`).toBe(true);

    // A thin clone whose source was replaced under it.
    violations.length = 0;
    await vols.run(op('volCreate', { name: 'v4', size: 0 }));
    await vols.run(op('thinClone', { name: 'v5', source: 'v4' }));
    copyFileSync(join(pool, 'v4'), join(pool, 'v4.copy'));
    renameSync(join(pool, 'v4.copy'), join(pool, 'v4'));
    expect((await inv.volumeProblems(false)).filter((p) => p.includes('v5'))).toEqual(['thin clone v5 reads through v4, which was replaced or deleted after the clone was made']);
  }, 60_000);
});
