// A scripted qemu-img for unit tests: each call is recorded and answered by a handler that
// writes stdout/stderr and picks the exit, or hangs until killed.
import { PassThrough } from 'node:stream';
import type { QemuImgExit, QemuImgProcess, QemuImgSpawn } from '../../../../drivers/storage/qemu-img.js';

/** What a scripted call does: print, then exit with `code` (or hang until killed). */
export interface FakeAnswer {
  stdout?: string;
  stderr?: string;
  code?: number;
  hang?: boolean;
}

/** One recorded call. */
export interface FakeCall {
  args: readonly string[];
  killed: boolean;
}

/** A spawn whose processes answer with `answer(args)`; `calls` records them. */
export function fakeQemuImg(answer: (args: readonly string[]) => FakeAnswer): { spawn: QemuImgSpawn; calls: FakeCall[] } {
  const calls: FakeCall[] = [];
  const spawn: QemuImgSpawn = (_binary, args) => {
    const call: FakeCall = { args, killed: false };
    calls.push(call);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let settle: (exit: QemuImgExit) => void = () => undefined;
    const exited = new Promise<QemuImgExit>((resolve) => { settle = resolve; });
    const a = answer(args);
    const end = (exit: QemuImgExit): void => { stdout.end(); stderr.end(); settle(exit); };
    setImmediate(() => {
      if (a.stdout !== undefined) stdout.write(a.stdout);
      if (a.stderr !== undefined) stderr.write(a.stderr);
      if (a.hang !== true) setImmediate(() => end({ code: a.code ?? 0, signal: null }));
    });
    const proc: QemuImgProcess = {
      pid: 4242, stdout, stderr, exited,
      kill: () => { call.killed = true; end({ code: null, signal: 'SIGKILL' }); },
    };
    return proc;
  };
  return { spawn, calls };
}
