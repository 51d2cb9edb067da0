// virtq: the command-line client. With cli/snapshot-main.ts, the only files of the CLI that touch
// process.*: it wires the real streams and the client library into runCli and exits with its status.
import { connect, connectAdmin } from '../client/connect.js';
import { connectDaemon } from '../client/daemon-connection.js';
import { systemClock } from '../protocol/index.js';
import { localFiles } from './local-files.js';
import { programNamed } from './programs.js';
import type { CliIo } from './io.js';
import { runCli } from './run.js';
import { pipeStdioTo } from './stdio-pipe.js';
import type { CommandTree } from './command-pick.js';

/** Runs the command line `argv` (without node and the script) as the process, then exits. */
export async function main(argv: readonly string[], commands?: CommandTree): Promise<void> {
  // SIGPIPE needs no listener: Node ignores it from the start, and a listener costs the signal
  // binding's load. A closed stdout shows up as this error instead.
  process.stdout.on('error', () => process.exit(0));
  const env = process.env;
  const io: CliIo = {
    env,
    cwd: process.cwd(),
    uid: process.getuid?.() ?? 0,
    stdout: { write: (d) => process.stdout.write(d), isTTY: process.stdout.isTTY === true, columns: process.stdout.columns },
    // stderr and stdin are opened on first use: most commands never touch them.
    stderr: { write: (d) => process.stderr.write(d), get isTTY() { return process.stderr.isTTY === true; } },
    stdin: {
      get isTTY() { return process.stdin.isTTY === true; },
      on: (event: 'data' | 'end', listener: ((chunk: Buffer | string) => void) | (() => void)) => process.stdin.on(event, listener),
      setRawMode: (raw: boolean) => process.stdin.setRawMode?.(raw),
      pause: () => process.stdin.pause(),
      resume: () => process.stdin.resume(),
    },
    clock: systemClock(),
    connect: (uri) => connect(uri, { env }),
    connectAdmin: (uri) => connectAdmin(uri, { env }),
    connectService: async (program, uri) => {
      const conn = await connectDaemon(programNamed(program), uri, { env });
      return { call: (p, a, o) => conn.call(p, a, o), openStream: (p, a, o) => conn.openStream(p, a, o), events: () => conn.events(), close: () => conn.close() };
    },
    files: localFiles(process.cwd()),
    pipeStdio: (path) => pipeStdioTo(path, process.stdin, process.stdout, process.getuid?.() ?? 0),
    onInterrupt: (handler) => {
      process.on('SIGINT', handler);
      return { dispose: () => { process.off('SIGINT', handler); } };
    },
  };
  const status = await runCli(argv, io, commands);
  // Writes to a pipe are asynchronous: exiting before they drain would cut a long output (the
  // JSON of a 10,000-VM fleet) short. A write callback runs once everything before it is out.
  await Promise.all([process.stdout, process.stderr].map((s) => (s.writableLength === 0 ? undefined : new Promise((r) => s.write('', () => r(undefined))))));
  process.exit(status);
}
