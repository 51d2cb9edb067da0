// Starts shims detached from virtqemud (own session, no inherited pipes once ready) so they and
// their VMs outlive it. The definition goes in on stdin; the shim's one JSON line on stdout says
// whether the VM is up, and is the only thing virtqemud waits for.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { VirtqError, type Layout, type NormalizedDefinition } from '../protocol/index.js';

/** What a shim reported once it started its VM. */
export interface ShimStarted {
  shimPid: number;
  qemuPid: number | undefined;
  socket: string;
  state: string;
}

/** Starts shims; injected so tests can count or replace them. */
export interface ShimSpawner {
  start(def: NormalizedDefinition, opts: { paused: boolean }): Promise<ShimStarted>;
}

/** The real spawner: runs the virtq-shim binary with `placement` (`--root DIR` or `--mode M`). */
export function processShimSpawner(shimBinary: string, placement: readonly string[], layout: Layout, env: NodeJS.ProcessEnv, timeoutMs = 120_000): ShimSpawner {
  return {
    start(def, { paused }) {
      const args = [...placement, '--definition', '-', ...(paused ? ['--paused'] : [])];
      const errFd = openSync(join(layout.log, `${def.name}.shim-stderr.log`), 'a', 0o600);
      const child = spawn(shimBinary, args, { detached: true, stdio: ['pipe', 'pipe', errFd], env });
      closeSync(errFd);
      const { stdin, stdout } = child;
      if (stdin === null || stdout === null) return Promise.reject(new VirtqError('INTERNAL', 'shim spawned without pipes'));
      stdin.on('error', () => undefined);
      stdin.end(JSON.stringify(def));
      return new Promise<ShimStarted>((resolve, reject) => {
        const lines = createInterface({ input: stdout });
        const timer = setTimeout(() => fail(new VirtqError('TIMEOUT', `the shim for "${def.name}" did not report within ${timeoutMs / 1000} s`)), timeoutMs);
        const done = () => {
          clearTimeout(timer);
          lines.close();
          stdout.destroy();
          child.unref();
        };
        const fail = (err: VirtqError) => { done(); reject(err); };
        lines.once('line', (line) => {
          done();
          try {
            const r = JSON.parse(line) as { ok: boolean; error?: unknown; shimPid: number; qemuPid?: number; socket: string; state: string };
            if (!r.ok) return reject(VirtqError.fromWire(r.error));
            resolve({ shimPid: r.shimPid, qemuPid: r.qemuPid, socket: r.socket, state: r.state });
          } catch {
            reject(new VirtqError('INTERNAL', `the shim for "${def.name}" printed an unreadable reply: ${line.slice(0, 200)}`));
          }
        });
        child.once('error', (err) => fail(new VirtqError('OPERATION_FAILED', `cannot run ${shimBinary}: ${err.message}`)));
        // 'close', not 'exit': the reply line may still be in the pipe when the process has exited.
        child.once('close', (code, signal) => fail(new VirtqError('OPERATION_FAILED', `the shim for "${def.name}" exited with ${signal === null ? `status ${code}` : signal} before reporting; see ${join(layout.log, `${def.name}.shim-stderr.log`)}`, { details: { shimExited: true } })));
      });
    },
  };
}
