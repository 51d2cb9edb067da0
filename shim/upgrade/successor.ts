// The successor's side of an upgrade (decision 0021): tell the old shim that this process has
// loaded, wait for its `take` (it has stopped reading everything), then start as a re-attaching
// shim on the handed-over fds, and say `taken` or `failed`. The channel is the IPC pipe the old
// shim opened (fd 3); it is closed once the answer is out so the old shim can exit.
import { VirtqError, type Clock } from '../../protocol/index.js';
import { parseTake, type HandoverFds } from './handover-wire.js';
import type { HandedOver } from './parts.js';

/** The IPC channel to the old shim (Node's `process` when started with an 'ipc' stdio slot). */
export interface OldShimChannel {
  send?: (message: unknown) => boolean;
  disconnect?: () => void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  once(event: 'disconnect', listener: () => void): unknown;
}

/** Says `ready` and waits for `take`; OPERATION_FAILED when the old shim goes away or says something else. */
export function awaitTake(channel: OldShimChannel, fds: HandoverFds, clock: Clock, timeoutMs: number): Promise<HandedOver> {
  if (channel.send === undefined) {
    return Promise.reject(new VirtqError('INVALID_ARG', '--handover is only for a successor started by an upgrading shim (no IPC channel to it)'));
  }
  return new Promise((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(new VirtqError('TIMEOUT', `the old shim did not hand over within ${timeoutMs} ms`)), timeoutMs);
    channel.on('message', (m) => {
      timer.dispose();
      try {
        const take = parseTake(m);
        resolve({ fds, leftover: take.leftover, session: take.qmpSession });
      } catch (err) {
        reject(err);
      }
    });
    channel.once('disconnect', () => {
      timer.dispose();
      reject(new VirtqError('OPERATION_FAILED', 'the old shim went away before handing over'));
    });
    channel.send?.({ type: 'ready' });
  });
}

/** Tells the old shim how the take-over went, then lets go of the channel. */
export function reportOutcome(channel: OldShimChannel, outcome: { ok: true; pid: number } | { ok: false; error: unknown }): void {
  const message = outcome.ok
    ? { type: 'taken', pid: outcome.pid }
    : (() => { const e = VirtqError.from(outcome.error); return { type: 'failed', code: e.code, message: e.message }; })();
  try {
    channel.send?.(message);
  } finally {
    // Sent messages are flushed before the channel closes.
    channel.disconnect?.();
  }
}
