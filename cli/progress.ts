// Progress of a long operation (clone, upload, download): a bar on stderr when it is a terminal,
// one JSON line per report on stdout with --json (then the result line), nothing otherwise.
import type { RunContext } from './command.js';
import { formatSize } from './size-format.js';

/** One report. */
export interface Progress {
  doneBytes: number;
  totalBytes: number;
}

const WIDTH = 30;

/** A reporter for `label`: call it with each report; `done()` clears the bar. */
export function progressReporter(ctx: RunContext, label: string): { report(p: Progress): void; done(): void } {
  const started = ctx.io.clock.monotonic();
  const tty = ctx.io.stderr.isTTY && !ctx.json;
  let drawn = false;
  return {
    report(p) {
      if (ctx.json) {
        ctx.printJson({ event: 'progress', ...p }, true);
        return;
      }
      if (!tty) return;
      const fraction = p.totalBytes === 0 ? 1 : Math.min(1, p.doneBytes / p.totalBytes);
      const filled = Math.round(fraction * WIDTH);
      const secs = (ctx.io.clock.monotonic() - started) / 1000;
      const rate = secs > 0 ? `${formatSize(Math.round(p.doneBytes / secs))}/s` : '';
      ctx.io.stderr.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(WIDTH - filled)}] ${Math.floor(fraction * 100)}% ${formatSize(p.doneBytes)} / ${formatSize(p.totalBytes)} ${rate}\x1b[K`);
      drawn = true;
    },
    done() {
      if (drawn) ctx.io.stderr.write('\r\x1b[K');
    },
  };
}
