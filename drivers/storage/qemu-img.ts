// Runs qemu-img: one child per call, C locale, killed when its operation is aborted, its exit
// and stderr mapped to typed errors here (ENOSPC → NO_SPACE, a held image lock → IN_USE, a
// wrong passphrase → INVALID_ARG). Knows nothing of pools; callers say what they were doing.
import type { Readable } from 'node:stream';
import { VirtqError } from '../../protocol/errors.js';
import { spawnBound, type BoundExit } from '../host/dies-with-starter.js';

/** How a qemu-img process ended (`error`: it could not be started at all, e.g. ENOENT). */
export type QemuImgExit = BoundExit;

/** A running qemu-img, as the runner needs it. */
export interface QemuImgProcess {
  readonly pid: number | undefined;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Settles once the process has exited and its pipes are drained. */
  readonly exited: Promise<QemuImgExit>;
  /** SIGKILLs the process. */
  kill(): void;
}

/** Starts `binary` with `args`, stdin closed, stdout and stderr piped. */
export type QemuImgSpawn = (binary: string, args: readonly string[]) => QemuImgProcess;

/**
 * The real spawn, with LC_ALL=C so error texts are the ones matched below, bound to die with the
 * daemon that started it (drivers/host/dies-with-starter.ts): a full clone's copy must not go on
 * for nobody after a kill -9, holding the source's lock and filling a removed temp file.
 */
export const spawnQemuImg: QemuImgSpawn = (binary, args) => {
  const { child, ended } = spawnBound(binary, args, 'ignore', { env: { ...process.env, LC_ALL: 'C' } });
  return { pid: child.pid, stdout: child.stdout, stderr: child.stderr, exited: ended, kill: () => { child.kill('SIGKILL'); } };
};

/** One qemu-img call. */
export interface QemuImgCall {
  /** What the call does, for messages: `cloning volume "a" to "b" in pool "p"`. */
  what: string;
  signal?: AbortSignal;
  /** With `-p` in the arguments: called with the percentage done (0–100) as qemu-img prints it. */
  onPercent?(percent: number): void;
}

const PERCENT_RE = /\((\d+(?:\.\d+)?)\/100%\)/g;
const STDERR_KEEP = 4000;

/** Maps a failed qemu-img's stderr to the error a caller can act on. */
export function qemuImgError(what: string, exit: QemuImgExit, stderr: string): VirtqError {
  const text = stderr.trim().replace(/^qemu-img: /gm, '');
  const details = { exitCode: exit.code, signal: exit.signal, stderr: text };
  if (/No space left on device|Disk quota exceeded/i.test(text)) {
    return new VirtqError('NO_SPACE', `${what}: no space left on the pool's filesystem; free space or use another pool`, { details });
  }
  if (/Failed to get .*lock|Is another process using the image/i.test(text)) {
    return new VirtqError('IN_USE', `${what}: the image is in use by another process (a running VM?): ${firstLine(text)}`, { details });
  }
  if (/Invalid password|cannot unlock any keyslot/i.test(text)) {
    return new VirtqError('INVALID_ARG', `${what}: the passphrase does not unlock the volume`, { details });
  }
  if (/is required for cipher|key-secret/i.test(text)) {
    return new VirtqError('INVALID_ARG', `${what}: the volume is encrypted; give its passphrase`, { details });
  }
  if (/Data from secret .* is not valid UTF-8/i.test(text)) {
    return new VirtqError('INVALID_ARG', `${what}: the passphrase is not valid UTF-8 text, and QEMU takes only UTF-8 as a LUKS passphrase; set the secret's value to text`, { details });
  }
  const how = exit.signal !== null ? `killed by ${exit.signal}` : `exit ${String(exit.code)}`;
  return new VirtqError('OPERATION_FAILED', `${what}: qemu-img failed (${how}): ${firstLine(text) || 'no message'}`, { details });
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}

/** The error an aborted operation fails with. */
export function abortedError(what: string): VirtqError {
  return new VirtqError('OPERATION_ABORTED', `${what}: cancelled; nothing was left behind`);
}

/** Runs qemu-img calls through an injected spawn. */
export class QemuImg {
  readonly binary: string;
  private readonly spawn: QemuImgSpawn;

  constructor(options: { binary?: string; spawn?: QemuImgSpawn } = {}) {
    this.binary = options.binary ?? 'qemu-img';
    this.spawn = options.spawn ?? spawnQemuImg;
  }

  /**
   * Runs `qemu-img ARGS` and resolves with its stdout. Throws OPERATION_ABORTED (after the child
   * is dead) when `call.signal` aborts, and the mapped error when qemu-img fails.
   */
  async run(args: readonly string[], call: QemuImgCall): Promise<string> {
    if (call.signal?.aborted === true) throw abortedError(call.what);
    const proc = this.spawn(this.binary, args);
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (s: string) => {
      if (call.onPercent === undefined) { stdout += s; return; }
      for (const m of s.matchAll(PERCENT_RE)) call.onPercent(Number(m[1]));
    });
    proc.stderr.on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_KEEP); });
    let aborted = false;
    const onAbort = (): void => { aborted = true; proc.kill(); };
    call.signal?.addEventListener('abort', onAbort, { once: true });
    let exit: QemuImgExit;
    try {
      exit = await proc.exited;
    } finally {
      call.signal?.removeEventListener('abort', onAbort);
    }
    if (aborted) throw abortedError(call.what);
    if (exit.error !== undefined) {
      throw new VirtqError('OPERATION_FAILED', `${call.what}: cannot run ${this.binary}: ${exit.error.message} (is qemu-utils installed?)`, { cause: exit.error });
    }
    if (exit.code !== 0) throw qemuImgError(call.what, exit, stderr);
    return stdout;
  }
}
