// Progress for long operations (shutdown with a timeout, create, start): a spinner on stderr,
// drawn only when stderr is a terminal so logs and pipes never see control characters.
import type { Clock, Disposable } from '../protocol/index.js';
import type { Sink } from './io.js';

const FRAMES = ['|', '/', '-', '\\'];
const INTERVAL_MS = 120;

/** Runs `work` with a spinner labelled `label` on `sink` when it is a TTY. */
export async function withSpinner<T>(sink: Sink, clock: Clock, label: string | undefined, work: Promise<T>): Promise<T> {
  if (label === undefined || !sink.isTTY) return work;
  let frame = 0;
  let timer: Disposable | undefined;
  const started = clock.monotonic();
  const draw = (): void => {
    const secs = Math.floor((clock.monotonic() - started) / 1000);
    sink.write(`\r${FRAMES[frame % FRAMES.length] ?? '-'} ${label} ${secs}s`);
    frame++;
    timer = clock.setTimeout(draw, INTERVAL_MS);
  };
  draw();
  try {
    return await work;
  } finally {
    timer?.dispose();
    sink.write('\r\x1b[K');
  }
}
