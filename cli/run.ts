// Runs one command line and returns the exit status (contract): 0 success, 1 the operation
// failed ("virtq: CODE: message", one line on stderr), 2 usage. Connections a command opened
// are closed when it ends, whatever the outcome.
import { CommanderError } from 'commander';
import { VirtqError, daemonServing, siblingUri, type DaemonName } from '../protocol/index.js';
import { resolveDefaultUri } from '../client/default-uri.js';
import type { CommandSpec, RunContext } from './command.js';
import type { Input } from './derive.js';
import type { CliAdminConnection, CliConnection, CliIo, CliServiceConnection } from './io.js';
import { buildProgram, type GlobalOptions } from './program.js';
import type { CommandTree } from './command-pick.js';
import { EXIT, errorLine, jsonDocument } from './outcome.js';

export { EXIT, errorLine } from './outcome.js';

function daemonOf(program: string): DaemonName {
  const daemon = daemonServing(program);
  if (daemon === undefined) throw new VirtqError('INTERNAL', `no daemon serves program "${program}"`);
  return daemon;
}

/** Runs `argv` (without node and the script) and resolves with the exit status; `commands` as a startup snapshot holds them. */
export async function runCli(argv: readonly string[], io: CliIo, commands?: CommandTree): Promise<number> {
  const closers: Array<() => void> = [];
  const execute = async (spec: CommandSpec, input: Input, globals: GlobalOptions): Promise<void> => {
    const given = globals.connect ?? resolveDefaultUri({ env: io.env, uid: io.uid });
    // A command of a secondary daemon's program goes to that daemon on the host the URI names.
    const uri = spec.program === 'virtq' || spec.program === 'admin' ? given : siblingUri(given, daemonOf(spec.program), io.env);
    let conn: Promise<CliConnection> | undefined;
    let admin: Promise<CliAdminConnection> | undefined;
    let service: Promise<CliServiceConnection> | undefined;
    const others = new Map<string, Promise<CliServiceConnection>>();
    const track = <C extends { close(): void }>(p: Promise<C>): Promise<C> => {
      void p.then((c) => closers.push(() => c.close()), () => undefined);
      return p;
    };
    const ctx: RunContext = {
      io, uri, json: globals.json === true,
      connect: () => (conn ??= track(io.connect(uri))),
      connectAdmin: () => (admin ??= track(io.connectAdmin(uri))),
      connectService: () => (service ??= track(io.connectService(spec.program, uri))),
      connectProgram: (program) => {
        const open = others.get(program) ?? track(io.connectService(program, siblingUri(given, daemonOf(program), io.env)));
        others.set(program, open);
        return open;
      },
      print: (text) => { if (text !== '') io.stdout.write(text); },
      printJson: (value, compact = false) => io.stdout.write(jsonDocument(value, compact)),
    };
    await spec.run(ctx, input);
  };
  try {
    const program = buildProgram({ env: io.env, stdout: io.stdout, stderr: io.stderr, width: Math.max(60, Math.min(io.stdout.columns ?? 100, 120)), execute, commands, argv });
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    io.stderr.write(errorLine(err));
    return EXIT.failed;
  } finally {
    for (const close of closers) close();
  }
}
