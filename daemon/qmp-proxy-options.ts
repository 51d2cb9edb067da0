// The shared QMP socket's host-wide allow-list as virtq-shim and virtqemud take it on their
// command lines (virtqemud passes it on to every shim it starts).
import { QMP_COMMAND_PATTERN, VirtqError } from '../protocol/index.js';

/** Parses `--qmp-proxy-allow a,b,c`; INVALID_ARG names a bad entry. */
export function parseAllowList(text: string | undefined, flag = '--qmp-proxy-allow'): string[] {
  if (text === undefined || text.trim() === '') return [];
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const pattern = new RegExp(QMP_COMMAND_PATTERN);
  for (const n of names) {
    if (!pattern.test(n)) throw new VirtqError('INVALID_ARG', `${flag}: "${n}" is not a QMP command name`);
  }
  return names;
}
