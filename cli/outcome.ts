// How a command's outcome is printed (contract): a `--json` document, or for a failed operation
// one line "virtq: CODE: message" on stderr and exit status 1. Its own module so the fast path
// for hot read commands (cli/fast-main.ts) prints with the same functions as the full CLI
// without loading commander.
import { VirtqError } from '../protocol/errors.js';
import { oneLine } from './render.js';

/** Exit statuses of the CLI. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The one line printed for a failed operation. */
export function errorLine(err: unknown): string {
  const e = VirtqError.from(err);
  return `virtq: ${e.code}: ${oneLine(e.message)}\n`;
}

/** A `--json` result as printed: indented, or on one line (a streaming command's item). */
export function jsonDocument(value: unknown, compact = false): string {
  return `${compact ? JSON.stringify(value) : JSON.stringify(value, null, 2)}\n`;
}
