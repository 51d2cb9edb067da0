// The durable floor of each storage operation: the fewest system calls that leave its result on
// the disk under its final name (temp file, fsync, rename, fsync of the directory), made here
// with synchronous calls (no thread-pool hop, no daemon, no RPC) or with the one tool that must
// make the bytes (qemu-img create, cp). Every virtstoraged figure has one of these beside it;
// libvirt syncs the data (fsync of a raw volume it makes or copies; qemu-img flushes on close) but
// writes under the final name and never fsyncs the directory, so it may beat these floors.
import { closeSync, fsyncSync, ftruncateSync, openSync, renameSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { run } from './sides.mjs';

function fsync(path) {
  const fd = openSync(path, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}
const temp = (path) => join(dirname(path), `.dur-${process.pid}.tmp`);

/** Sparse raw create: open temp, ftruncate, fsync, rename, fsync dir. */
export function createRaw(path, bytes) {
  const t = temp(path);
  const fd = openSync(t, 'wx', 0o600);
  try { ftruncateSync(fd, bytes); fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(t, path);
  fsync(dirname(path));
}

/** Sparse raw create with the directory's fsync alone (no data blocks: see volume-files.ts). */
export function createRawMeta(path, bytes) {
  const t = temp(path);
  const fd = openSync(t, 'wx', 0o600);
  try { ftruncateSync(fd, bytes); } finally { closeSync(fd); }
  renameSync(t, path);
  fsync(dirname(path));
}

/** A tool makes `path` under a temp name (`make(tmp)` resolves once it has), then fsync, rename, fsync dir. */
export async function made(path, make) {
  const t = temp(path);
  await make(t);
  fsync(t);
  renameSync(t, path);
  fsync(dirname(path));
}

/** qemu-img create (qcow2, optionally over a backing file) made durable. */
export const qemuImgCreate = (path, args) => made(path, (t) => run('qemu-img', ['create', '-q', ...args(t)]));

/** A byte copy with cp, made durable. */
export const cp = (from, path) => made(path, (t) => run('cp', [from, t]));

/** unlink, fsync dir. */
export function remove(path) {
  unlinkSync(path);
  fsync(dirname(path));
}
