// The dir pool driver when things go wrong, with real qemu-img: a process killed mid-clone
// leaves only a temp file that list() never shows and recover() removes; an aborted clone
// kills its qemu-img; a full filesystem is NO_SPACE with nothing left behind.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError } from '../../protocol/errors.js';
import { DirPool } from '../../drivers/storage/dir-pool.js';
import { QemuImg, spawnQemuImg, type QemuImgSpawn } from '../../drivers/storage/qemu-img.js';
import { isTempName } from '../../drivers/storage/volume-files.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const MiB = 1024 * 1024;
const REPO = new URL('../../', import.meta.url).pathname;

async function failure(p: Promise<unknown>): Promise<VirtqError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VirtqError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** A stand-in for qemu-img: `convert` runs `convertBody` (sh), anything else runs the real one. */
function wrapper(root: TmpRoot, name: string, convertBody: string): string {
  const path = root.path(name);
  writeFileSync(path, `#!/bin/sh\nif [ "$1" != convert ]; then exec qemu-img "$@"; fi\n${convertBody}\n`);
  chmodSync(path, 0o755);
  return path;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('DirPool faults (real qemu-img)', () => {
  let root: TmpRoot;
  let mounted: string | undefined;

  beforeEach(() => { root = tmpRoot('vq-storf-'); mounted = undefined; });
  afterEach(() => {
    if (mounted !== undefined && spawnSync('umount', [mounted]).status !== 0) spawnSync('umount', ['-l', mounted]);
    root.remove();
  });

  it('leaves only a temp file when the process is killed mid-clone: never listed, removed by recover()', async () => {
    const poolDir = root.path('pool');
    const pool = new DirPool({ name: 'p', type: 'dir', path: poolDir });
    await pool.build();
    const src = await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 8 * MiB });
    writeFileSync(src.path, randomBytes(8 * MiB));
    // The daemon stand-in: the driver bundled as plain JS, cloning through a qemu-img that
    // finishes the copy and then hangs, so the kill lands between the copy and the commit.
    await build({
      stdin: { contents: "export { DirPool } from './drivers/storage/dir-pool.ts'; export { QemuImg } from './drivers/storage/qemu-img.ts';", resolveDir: REPO, loader: 'ts' },
      bundle: true, platform: 'node', format: 'esm', outfile: root.path('driver.mjs'), logLevel: 'silent',
    });
    const slow = wrapper(root, 'qemu-img-slow', 'qemu-img "$@" || exit $?\nexec sleep 60');
    writeFileSync(root.path('daemon.mjs'), `
      import { DirPool, QemuImg } from './driver.mjs';
      const pool = new DirPool({ name: 'p', type: 'dir', path: ${JSON.stringify(poolDir)} }, { qemuImg: new QemuImg({ binary: ${JSON.stringify(slow)} }) });
      await pool.clone('src.raw', 'copy.raw', { mode: 'full' }, { onProgress: (d, t) => { if (d === t && t > 0) process.stdout.write('copied\\n'); } });
      process.stdout.write('committed\\n');
    `);
    const daemon = spawn(process.execPath, [root.path('daemon.mjs')], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => daemon.once('close', resolve));
    let out = '';
    await new Promise<void>((resolve, reject) => {
      daemon.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; if (out.includes('copied')) resolve(); });
      daemon.once('close', () => reject(new Error(`daemon ended early: ${out}`)));
    });
    process.kill(-(daemon.pid as number), 'SIGKILL'); // the daemon, its sh and qemu-img's stand-in
    await exited;
    expect(out).not.toContain('committed');
    const left = readdirSync(poolDir);
    expect(left.filter(isTempName)).toHaveLength(1);
    expect(left.filter((n) => !isTempName(n))).toEqual(['src.raw']);
    expect((await pool.list()).map((v) => v.name)).toEqual(['src.raw']);
    const report = await pool.recover();
    expect(report.removed).toHaveLength(1);
    expect(readdirSync(poolDir)).toEqual(['src.raw']);
  });

  it('kills qemu-img and removes the temp file when a clone is aborted', async () => {
    const pids: number[] = [];
    const recording: QemuImgSpawn = (binary, args) => {
      const proc = spawnQemuImg(binary, args);
      if (args[0] === 'convert' && proc.pid !== undefined) pids.push(proc.pid);
      return proc;
    };
    const hang = wrapper(root, 'qemu-img-hang', 'for last; do :; done\n: > "$last"\nprintf "    (10.00/100%%)\\r"\nexec sleep 60');
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { qemuImg: new QemuImg({ binary: hang, spawn: recording }) });
    await pool.build();
    await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 4 * MiB });
    const ac = new AbortController();
    const seen: number[] = [];
    const clone = pool.clone('src.raw', 'copy.raw', { mode: 'full' }, { signal: ac.signal, onProgress: (d) => { seen.push(d); if (d > 0) ac.abort(); } });
    const err = await failure(clone);
    expect(err.code).toBe('OPERATION_ABORTED');
    expect(seen).toEqual([0, Math.round(0.1 * 4 * MiB)]);
    expect(pids).toHaveLength(1);
    expect(alive(pids[0] as number)).toBe(false);
    expect(readdirSync(root.path('pool'))).toEqual(['src.raw']);
    expect((await failure(pool.clone('src.raw', 'copy.raw', { mode: 'full' }, { signal: AbortSignal.abort() }))).code).toBe('OPERATION_ABORTED');
    expect(pids).toHaveLength(1);
  });

  it('answers NO_SPACE on a full filesystem (clone, upload, create) and leaves no temp file', async () => {
    const small = root.path('small');
    mkdirSync(small);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    mounted = small;
    const pool = new DirPool({ name: 'small', type: 'dir', path: `${small}/pool` });
    await pool.build();
    const src = await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 6 * MiB });
    writeFileSync(src.path, randomBytes(6 * MiB));
    await pool.clone('src.raw', 'a.raw', { mode: 'full' });
    const clone = await failure(pool.clone('src.raw', 'b.raw', { mode: 'full' }));
    expect(clone.code).toBe('NO_SPACE');
    expect(clone.message).toContain('pool "small"');
    const big = await pool.create({ name: 'big.raw', format: 'raw', capacityBytes: 32 * MiB });
    async function* data(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 8; i += 1) yield randomBytes(MiB);
    }
    expect((await failure(pool.upload('big.raw', data()))).code).toBe('NO_SPACE');
    expect(readFileSync(big.path).equals(Buffer.alloc(32 * MiB))).toBe(true);
    spawnSync('sh', ['-c', `cat /dev/zero > ${small}/filler`]);
    expect((await failure(pool.create({ name: 'q.qcow2', format: 'qcow2', capacityBytes: 8 * MiB }))).code).toBe('NO_SPACE');
    expect(readdirSync(`${small}/pool`).sort()).toEqual(['a.raw', 'big.raw', 'src.raw']);
  });
});
