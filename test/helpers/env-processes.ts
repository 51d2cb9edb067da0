// Processes found by a variable in their environment, which everything they start inherits unless
// a spawn replaces the environment: how a test (or a chaos root) finds every process it started,
// directly or not, whatever their command lines say. /proc/PID/environ is the environment the
// process was started with; a live process's own later changes do not show there.
import { readdirSync, readFileSync } from 'node:fs';
import { procState } from '../../drivers/host/proc.js';

/** A live process, with its arguments. */
export interface EnvProcess {
  pid: number;
  args: string[];
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Live (not zombie) processes, this one aside, whose environment holds `NAME=VALUE` exactly. */
export function processesWithEnv(name: string, value: string): EnvProcess[] {
  const entry = `${name}=${value}\0`;
  const out: EnvProcess[] = [];
  for (const dir of readdirSync('/proc')) {
    const pid = Number(dir);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = read(`/proc/${pid}/environ`);
    // Preceded by the start of the block or by another entry's NUL: FOO_NAME=VALUE is not NAME=VALUE.
    if (environ === undefined || !(environ.startsWith(entry) || environ.includes(`\0${entry}`))) continue;
    const state = procState(pid);
    if (state === undefined || state === 'Z' || state === 'X') continue;
    out.push({ pid, args: (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter((a) => a !== '') });
  }
  return out;
}
