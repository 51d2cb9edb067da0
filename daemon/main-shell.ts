// The process shell of every virtq binary: parse the command line (usage errors exit 2), start,
// print one JSON line on stdout once serving (`{"ok":true,...}`) or why not (`{"ok":false,
// "error":{...}}`, exit 1), and turn SIGTERM/SIGINT into a clean stop. Signals are handled from
// the first moment: a stop asked for while the daemon starts takes effect once it has started.
import { VirtqError } from '../protocol/index.js';

/** The parts of `process` the shell uses (injected: main.ts passes the real one). */
export interface ProcessLike {
  readonly argv: readonly string[];
  readonly pid: number;
  readonly stdout: { write(s: string, done?: () => void): unknown; on(event: 'error', l: () => void): unknown };
  readonly stderr: { write(s: string): unknown };
  once(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  on(signal: 'SIGPIPE', listener: () => void): unknown;
  exit(code: number): never;
}

/** A started daemon, as the shell sees it. */
export interface Started {
  /** The ready line printed on stdout (one JSON object with `ok: true`). */
  readonly readyLine: string;
  /** Asks the daemon to stop (the shell calls it on SIGTERM/SIGINT); `done` settles once it has. */
  stop(): void;
  /** Settles when the process should exit 0. */
  readonly done: Promise<void>;
  /** Flushes logs before the process exits. */
  flush(): void;
}

/** What a binary tells the shell. */
export interface MainSpec<O> {
  /** The binary name, prefixed to error lines. */
  readonly binary: string;
  readonly usage: string;
  /** Parses the command line (without node and the script); throws INVALID_ARG for a usage error. */
  parse(argv: readonly string[]): O | 'help';
  /** Starts the daemon; rejects with the reason it cannot serve. */
  start(opts: O): Promise<Started>;
}

/** The line printed on stdout when a daemon cannot start. */
export function failedLine(error: VirtqError): string {
  return JSON.stringify({ ok: false, error: error.toWire() });
}

/** Runs `spec` as the process `proc`. */
export async function runMain<O>(spec: MainSpec<O>, proc: ProcessLike): Promise<void> {
  let opts: O | 'help';
  try {
    opts = spec.parse(proc.argv.slice(2));
  } catch (err) {
    proc.stderr.write(`${spec.binary}: ${(err as Error).message}\n${spec.usage}\n`);
    proc.exit(2);
  }
  if (opts === 'help') {
    proc.stdout.write(`${spec.usage}\n`);
    return;
  }
  // The process lives until the shell exits it: clocks' timers do not hold the event loop open,
  // and a task that only waits on them (a shim's --reap polling /proc) would otherwise end
  // silently, exit 0, with no line printed.
  const alive = setInterval(() => undefined, 1 << 30);
  let started: Started | undefined;
  let stopAsked = false;
  const onSignal = (): void => { stopAsked = true; started?.stop(); };
  proc.once('SIGTERM', onSignal);
  proc.once('SIGINT', onSignal);
  proc.on('SIGPIPE', () => undefined);
  proc.stdout.on('error', () => undefined);
  try {
    started = await spec.start(opts);
  } catch (err) {
    const e = VirtqError.from(err);
    proc.stderr.write(`${spec.binary}: ${e.code}: ${e.message}\n`);
    // Writes to a pipe are asynchronous: exiting before this one is out would lose the line the starter waits for.
    await line(proc, failedLine(e));
    clearInterval(alive);
    proc.exit(1);
  }
  const printed = line(proc, started.readyLine);
  if (stopAsked) started.stop();
  await started.done;
  await printed;
  started.flush();
  clearInterval(alive);
  proc.exit(0);
}

// Writes one line on stdout; resolves once it is handed to the OS (or stdout is gone).
function line(proc: ProcessLike, text: string): Promise<void> {
  return new Promise((resolve) => {
    try {
      proc.stdout.write(`${text}\n`, () => resolve());
    } catch {
      resolve();
    }
  });
}
