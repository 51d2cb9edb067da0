// virtq: the command-line client. The only file of the CLI that touches process.*: it wires the
// real streams and the client library into runCli and exits with its status.
import { connect, connectAdmin, connectDaemon } from '../client/index.js';
import { systemClock } from '../protocol/index.js';
import { localFiles } from './local-files.js';
import { programNamed } from './programs.js';
import type { CliIo } from './io.js';
import { runCli } from './run.js';
import { pipeStdioTo } from './stdio-pipe.js';

async function main(): Promise<void> {
  process.on('SIGPIPE', () => undefined);
  process.stdout.on('error', () => process.exit(0));
  const env = process.env;
  const io: CliIo = {
    env,
    cwd: process.cwd(),
    uid: process.getuid?.() ?? 0,
    stdout: { write: (d) => process.stdout.write(d), isTTY: process.stdout.isTTY === true, columns: process.stdout.columns },
    stderr: { write: (d) => process.stderr.write(d), isTTY: process.stderr.isTTY === true },
    stdin: {
      isTTY: process.stdin.isTTY === true,
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
  const status = await runCli(process.argv.slice(2), io);
  process.exit(status);
}

void main();
