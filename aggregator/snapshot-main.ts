// The entry of virtqemud's V8 startup snapshot (issue 15 target 4: a restart's first listing),
// built by scripts/build.mjs with `node --build-snapshot` and run by the launcher at the head of
// dist/bin/virtqemud.js as `node FLAGS --snapshot-blob BLOB -- BINDIR ARGS...`. The snapshot holds
// the evaluated bundle (its modules, TypeBox's and the catalogue's schemas, prom-client, pino), so
// a start skips compiling and evaluating them. Nothing that touches the host (the environment, a
// path, a socket, a file, the pid) runs before deserialization: the deserialized main does it all,
// exactly as aggregator/main.ts does (docs/decisions/0032-virtqemud-startup-snapshot.md).
import { startupSnapshot } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { serviceMain } from '../daemon/run-service.js';
import { virtqemudService } from './compose.js';
import { warmVirtqemud } from './snapshot-warm.js';

/** Where the bundle's `import.meta.url` points in the snapshot (esbuild's `define`): the launcher's directory, known only at run time. */
interface BinUrlHolder { __virtqBinUrl?: string }

if (!startupSnapshot.isBuildingSnapshot()) throw new Error('aggregator/snapshot-main.ts runs only under node --build-snapshot (scripts/build.mjs)');
startupSnapshot.setDeserializeMainFunction(() => {
  // The launcher passes its directory first: the shim binary and the web view's files are beside it.
  const binUrl = pathToFileURL(join(process.argv[1] ?? '.', 'virtqemud.js'));
  (globalThis as BinUrlHolder).__virtqBinUrl = binUrl.href;
  // runMain reads the options from argv[2] on, as for `node virtqemud.js ARGS`.
  void serviceMain(virtqemudService('0.1.0', binUrl), process);
});
// A failed warm-up fails the build's snapshot (the builder exits non-zero): virtqemud then runs its bundle.
warmVirtqemud(virtqemudService('0.1.0', pathToFileURL(join(__dirname, 'virtqemud.js')))).catch((err: unknown) => {
  process.stderr.write(`virtqemud snapshot warm-up failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
