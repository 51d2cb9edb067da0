// Runs a program to its end and returns what it printed and its exit status, a failure included:
// the launcher tests compare two runs of one command line byte for byte.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** What one run printed and how it exited. */
export interface Outcome { code: number; stdout: string; stderr: string }

/** Runs `cmd ARGS` under `env` (60 s at most). */
export async function runOutcome(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Outcome> {
  try {
    const { stdout, stderr } = await exec(cmd, [...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
