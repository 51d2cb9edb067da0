// The lean entry for `vol-upload` and `vol-download` (dist/bin/virtq-transfer.cjs, decision 0012):
// the launcher at the head of dist/bin/virtq.js execs node on it when a word of the command line is
// one of the two. It runs the command with the full CLI's own code for it (cli/volume-commands.ts:
// the file, the stream and its flow control, the progress bar and `--json` events, Ctrl-C) and its
// error line and exit status, over a connection to virtstoraged's local socket made as
// connectDaemon makes it — but without commander, the catalogue and its validators, whose start
// the full CLI pays on every run (+0.1 s of CPU over `node -e 0`, bench/RESULTS.md, f-up5).
// A command line it does not take (help, another spelling, a fleet, ssh or TLS URI, a bad
// client.json; nothing printed yet) it hands to the full CLI's bundle in this same process.
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dialDaemonSocket } from '../client/daemon-dial.js';
import { resolveDefaultUri } from '../client/default-uri.js';
import { systemClock } from '../protocol/clock.js';
import { VirtqError } from '../protocol/errors.js';
import { parseUri, siblingUri } from '../protocol/uri.js';
import type { RunContext } from './command.js';
import type { CliIo, CliServiceConnection } from './io.js';
import { localFiles } from './local-files.js';
import { EXIT, errorLine, jsonDocument } from './outcome.js';
import { parseTransferArgv, type TransferCommand } from './transfer-argv.js';
import { runDownload, runUpload } from './volume-commands.js';

/** The exit status that says "not mine, nothing printed" under VIRTQ_FAST_PROBE=1 (as cli/fast-main.ts). */
const HAND_OVER = 75;
/** The daemon serving the `storage` program (contract; protocol/services.ts's DAEMONS). */
const STORAGED = 'virtstoraged';
/** connectDaemon's default deadline of a call. */
const CALL_TIMEOUT_MS = 120_000;

/** The storage daemon's local socket and URI for `cmd`, or undefined when the full CLI must run it. */
function localStorageTarget(cmd: TransferCommand, env: NodeJS.ProcessEnv, uid: number): { uri: string; socket: string } | undefined {
  try {
    // A fleet, or a URI commander's own check would refuse: the full CLI's business.
    if (cmd.connect?.startsWith('cluster:') === true) return undefined;
    if (cmd.connect !== undefined) parseUri(cmd.connect, env);
    const uri = siblingUri(cmd.connect ?? resolveDefaultUri({ env, uid }), STORAGED, env);
    const target = parseUri(uri, env);
    return target.kind === 'daemon' && target.daemon === STORAGED ? { uri, socket: target.socket } : undefined;
  } catch {
    return undefined;
  }
}

const notHere = (what: string) => (): Promise<never> => Promise.reject(new VirtqError('INTERNAL', `${what} is not on the lean path`));

/** The process as the two commands use it: cli/main.ts's streams and files, one storage connection. */
function leanIo(socket: string): CliIo {
  const env = process.env;
  const clock = systemClock();
  return {
    env, cwd: process.cwd(), uid: process.getuid?.() ?? 0, clock,
    stdout: { write: (d) => process.stdout.write(d), isTTY: process.stdout.isTTY === true, columns: process.stdout.columns },
    stderr: { write: (d) => process.stderr.write(d), get isTTY() { return process.stderr.isTTY === true; } },
    stdin: { isTTY: false, on: () => undefined, pause: () => undefined, resume: () => undefined },
    connect: notHere('the virtq program'),
    connectAdmin: notHere('the admin socket'),
    connectService: async (program, uri): Promise<CliServiceConnection> => {
      const rpc = await dialDaemonSocket(socket, STORAGED, uri, { clock, defaultTimeoutMs: CALL_TIMEOUT_MS });
      return {
        call: (p, a, o) => rpc.call(program, p, a, o ?? {}),
        openStream: (p, a, o) => rpc.openStream(program, p, a, o ?? {}),
        events: () => rpc.events(),
        close: () => rpc.close(),
      };
    },
    files: localFiles(process.cwd()),
    onInterrupt: (handler) => {
      process.on('SIGINT', handler);
      return { dispose: () => { process.off('SIGINT', handler); } };
    },
  };
}

/** Runs the transfer as cli/run.ts runs a command: the exit status, the error line on failure, the connection closed at the end. */
async function runTransfer(cmd: TransferCommand, target: { uri: string; socket: string }): Promise<number> {
  const io = leanIo(target.socket);
  let service: Promise<CliServiceConnection> | undefined;
  const ctx: RunContext = {
    io, uri: target.uri, json: cmd.json,
    connect: notHere('the virtq program'),
    connectAdmin: notHere('the admin socket'),
    connectService: () => (service ??= io.connectService('storage', target.uri)),
    connectProgram: notHere('another program'),
    print: (text) => { if (text !== '') io.stdout.write(text); },
    printJson: (value, compact = false) => io.stdout.write(jsonDocument(value, compact)),
  };
  const input = { args: { pool: cmd.pool, name: cmd.name, file: cmd.file }, opts: {} };
  try {
    await (cmd.command === 'vol-upload' ? runUpload : runDownload)(ctx, input);
    return EXIT.ok;
  } catch (err) {
    io.stderr.write(errorLine(err));
    return EXIT.failed;
  } finally {
    if (service !== undefined) await service.then((c) => c.close(), () => undefined);
  }
}

/** Runs process.argv's command line and exits with its status, or hands it to the full CLI. */
async function transferMain(): Promise<void> {
  const cmd = parseTransferArgv(process.argv.slice(2));
  const target = cmd === undefined ? undefined : localStorageTarget(cmd, process.env, process.getuid?.() ?? 0);
  if (cmd === undefined || target === undefined) {
    if (process.env['VIRTQ_FAST_PROBE'] === '1') process.exit(HAND_OVER);
    // The full CLI reads only argv.slice(2); argv[1] names the file it runs from, as with `node virtq.js`.
    const bin = join(dirname(process.argv[1] ?? '.'), 'virtq.js');
    process.argv[1] = bin;
    await import(pathToFileURL(bin).href);
    return;
  }
  // As cli/main.ts: a closed stdout ends the process with status 0.
  process.stdout.on('error', () => process.exit(0));
  const status = await runTransfer(cmd, target);
  await Promise.all([process.stdout, process.stderr].map((s) => (s.writableLength === 0 ? undefined : new Promise((r) => s.write('', () => r(undefined))))));
  process.exit(status);
}

void transferMain();
