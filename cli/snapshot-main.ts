// The entry of the CLI's V8 startup snapshot (docs/decisions/0028-cli-startup-snapshot.md), built
// by scripts/build.mjs with `node --build-snapshot` and run by the launcher at the head of
// dist/bin/virtq.js as `node --snapshot-blob BLOB -- BINDIR ARGS...`. At build time it warms the
// command tree and the help renderer so their code is compiled into the snapshot; at run time it
// runs the command line like cli/bin.ts.
import { startupSnapshot } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { main } from './main.js';
import { runCli } from './run.js';
import { commandTree } from './program.js';
import type { CommandTree } from './command-pick.js';
import type { CliIo } from './io.js';

/** Where the bundle's `import.meta.url` points in the snapshot (esbuild's `define`): the launcher's directory, known only at run time. */
interface BinUrlHolder { __virtqBinUrl?: string }

const refuse = (): Promise<never> => Promise.reject(new Error('no connections while building the snapshot'));

/** Runs the code paths every command takes (building the command tree, parsing, help) with nothing real attached. */
async function warm(commands: CommandTree): Promise<void> {
  const discard = { write: (): boolean => true, isTTY: false };
  const io: CliIo = {
    env: {}, cwd: '/', uid: 0,
    stdout: { ...discard, columns: 100 }, stderr: discard,
    stdin: { isTTY: false, on: () => undefined, setRawMode: () => undefined, pause: () => undefined, resume: () => undefined },
    // No timer may outlive the build: the snapshot holds no pending handles.
    clock: { now: () => 0, monotonic: () => 0, setTimeout: () => ({ dispose: () => undefined }) },
    connect: refuse, connectAdmin: refuse, connectService: refuse,
    files: { size: refuse, read: () => ({ [Symbol.asyncIterator]: () => ({ next: refuse }) }), create: refuse },
    onInterrupt: () => ({ dispose: () => undefined }),
  };
  for (const argv of [['--version'], ['help', 'list'], ['list', '--all'], ['dominfo', 'x']]) await runCli(argv, io, commands);
}

if (startupSnapshot.isBuildingSnapshot()) {
  // The command specs are built here, once, and kept in the snapshot.
  const commands = commandTree();
  startupSnapshot.setDeserializeMainFunction(() => {
    const [binDir, ...argv] = process.argv.slice(1);
    (globalThis as BinUrlHolder).__virtqBinUrl = pathToFileURL(join(binDir ?? '.', 'virtq.js')).href;
    void main(argv, commands);
  });
  void warm(commands);
} else {
  void main(process.argv.slice(2));
}
