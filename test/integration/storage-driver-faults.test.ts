// The dir pool driver when things go wrong, with real qemu-img and cp: a process killed mid-clone
// leaves only a temp file that list() never shows and recover() removes; an aborted clone
// kills its cp or qemu-img; a source a writer locks (a running VM) is refused IN_USE as qemu-img
// refuses it; a full filesystem is NO_SPACE with nothing left behind.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { build, stop as stopEsbuild } from 'esbuild';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError } from '../../protocol/errors.js';
import { DirPool } from '../../drivers/storage/dir-pool.js';
import { FileCopier } from '../../drivers/storage/file-copy.js';
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

/** A stand-in for cp: runs `body` (sh), with the target as $last. */
function cpWrapper(root: TmpRoot, name: string, body: string): string {
  const path = root.path(name);
  writeFileSync(path, `#!/bin/sh\nfor last; do :; done\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A stand-in for qemu-img: `convert` runs `convertBody` (sh), anything else runs the real one. */
function wrapper(root: TmpRoot, name: string, convertBody: string): string {
  const path = root.path(name);
  writeFileSync(path, `#!/bin/sh\nif [ "$1" != convert ]; then exec qemu-img "$@"; fi\n${convertBody}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Polls `check` every 20 ms for up to 10 s; its last answer. */
async function waitFor(check: () => boolean): Promise<boolean> {
  for (let end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (check()) return true;
  return check();
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
  // esbuild's build() leaves its service process running for the next call.
  afterAll(() => stopEsbuild());
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
      stdin: { contents: "export { DirPool } from './drivers/storage/dir-pool.ts'; export { FileCopier } from './drivers/storage/file-copy.ts';", resolveDir: REPO, loader: 'ts' },
      bundle: true, platform: 'node', format: 'esm', outfile: root.path('driver.mjs'), logLevel: 'silent',
    });
    const slow = cpWrapper(root, 'cp-slow', 'cp "$@" || exit $?\nexec sleep 60');
    writeFileSync(root.path('daemon.mjs'), `
      import { DirPool, FileCopier } from './driver.mjs';
      const pool = new DirPool({ name: 'p', type: 'dir', path: ${JSON.stringify(poolDir)} }, { copier: new FileCopier({ binary: ${JSON.stringify(slow)} }) });
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
    process.kill(-(daemon.pid as number), 'SIGKILL'); // the daemon and cp's stand-in
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

  it('kills cp and removes the temp file when a byte-copy clone is aborted; a later clone is fine', async () => {
    const pids: number[] = [];
    const hang = cpWrapper(root, 'cp-hang', `head -c ${MiB} /dev/zero > "$last"\nexec sleep 60`);
    const copier = new FileCopier({ binary: hang, spawn: (binary, args) => { const p = spawnQemuImg(binary, args); if (p.pid !== undefined) pids.push(p.pid); return p; } });
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { copier });
    await pool.build();
    await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 4 * MiB });
    const ac = new AbortController();
    const seen: number[] = [];
    const clone = pool.clone('src.raw', 'copy.raw', { mode: 'full' }, { signal: ac.signal, onProgress: (d) => { seen.push(d); if (d > 0) ac.abort(); } });
    const err = await failure(clone);
    expect(err.code).toBe('OPERATION_ABORTED');
    expect(seen).toEqual([0, MiB]); // the temp file's size, polled
    expect(pids).toHaveLength(1);
    expect(alive(pids[0] as number)).toBe(false);
    expect(readdirSync(root.path('pool'))).toEqual(['src.raw']);
    expect((await failure(pool.clone('src.raw', 'copy.raw', { mode: 'full' }, { signal: AbortSignal.abort() }))).code).toBe('OPERATION_ABORTED');
    expect(pids).toHaveLength(1);
  });

  it('kills qemu-img and removes the temp file when a converting clone (a chain) is aborted', async () => {
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
    await pool.clone('src.raw', 'over.qcow2', { mode: 'thin' });
    const ac = new AbortController();
    const seen: number[] = [];
    const clone = pool.clone('over.qcow2', 'copy.qcow2', { mode: 'full' }, { signal: ac.signal, onProgress: (d) => { seen.push(d); if (d > 0) ac.abort(); } });
    const err = await failure(clone);
    expect(err.code).toBe('OPERATION_ABORTED');
    expect(seen).toEqual([0, Math.round(0.1 * 4 * MiB)]);
    expect(pids).toHaveLength(1);
    expect(alive(pids[0] as number)).toBe(false);
    expect(readdirSync(root.path('pool')).sort()).toEqual(['over.qcow2', 'src.raw']);
  });

  it('refuses IN_USE, as qemu-img does, a full clone of a volume a writer holds (qemu-io as the VM); a reader (a backing user) keeps the byte copy', async () => {
    const cps: string[][] = [];
    const copier = new FileCopier({ spawn: (binary, args) => { cps.push([...args]); return spawnQemuImg(binary, args); } });
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { copier });
    await pool.build();
    const src = await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 4 * MiB });
    writeFileSync(src.path, randomBytes(4 * MiB));
    /** qemu-io holding `path` open (QEMU's image locks taken) until killed. */
    const holder = async (args: string[]): Promise<() => Promise<void>> => {
      const p = spawn('qemu-io', [...args], { stdio: ['pipe', 'ignore', 'inherit'] });
      const ino = String(statSync(src.path).ino);
      expect(await waitFor(() => readFileSync('/proc/locks', 'utf8').includes(`:${ino} `))).toBe(true);
      return async () => { p.kill('SIGKILL'); await new Promise((r) => p.once('close', r)); };
    };
    const writer = await holder(['-f', 'raw', src.path]);
    try {
      const err = await failure(pool.clone('src.raw', 'copy.raw', { mode: 'full' }));
      expect(err.code).toBe('IN_USE');
      expect(err.message).toContain('in use by another process');
      expect(cps).toHaveLength(0); // the lock was seen before any copy
    } finally {
      await writer();
    }
    expect(readdirSync(root.path('pool'))).toEqual(['src.raw']);
    // Read-only, as a VM reads a backing image: it forbids writers, so the byte copy is safe.
    const reader = await holder(['-r', '-f', 'raw', src.path]);
    try {
      const copy = await pool.clone('src.raw', 'copy.raw', { mode: 'full' });
      expect(readFileSync(copy.path).equals(readFileSync(src.path))).toBe(true);
      expect(cps).toHaveLength(1);
    } finally {
      await reader();
    }
  });

  it('falls back to qemu-img convert when a writer locks the source during the copy, which then refuses IN_USE', async () => {
    const started = root.path('cp-started');
    const slow = cpWrapper(root, 'cp-slow', `: > ${started}\nexec sleep 30`);
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { copier: new FileCopier({ binary: slow }) });
    await pool.build();
    const src = await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 4 * MiB });
    const clone = failure(pool.clone('src.raw', 'copy.raw', { mode: 'full' }));
    expect(await waitFor(() => existsSync(started))).toBe(true);
    const vm = spawn('qemu-io', ['-f', 'raw', src.path], { stdio: ['pipe', 'ignore', 'inherit'] });
    try {
      const err = await clone;
      expect(err.code).toBe('IN_USE');
    } finally {
      vm.kill('SIGKILL');
      await new Promise((r) => vm.once('close', r));
    }
    expect(readdirSync(root.path('pool'))).toEqual(['src.raw']);
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
