// The `virtq` binary's entry (dist/bin/virtq.js): runs the command line it was given. The startup
// snapshot of the CLI has its own entry, cli/snapshot-main.ts (docs/decisions/0028-cli-startup-snapshot.md).
import { main } from './main.js';

void main(process.argv.slice(2));
