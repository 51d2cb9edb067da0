// The text after `virtq --help`: connection URIs and exit statuses (contract: ARCHITECTURE.md,
// "Modes" and "CLI"), kept here so the help and docs/cli.md say the same thing.

/** URIs `-c` accepts, with what each one reaches. */
export const URI_HELP: ReadonlyArray<readonly [string, string]> = [
  ['qemu:///system', 'the host\'s virtqemud'],
  ['qemu:///session', 'your own virtqemud ($XDG_RUNTIME_DIR/virtq)'],
  ['qemu:///system?root=DIR', 'the virtqemud started with --root DIR'],
  ['qemu:///embed?root=DIR', 'no daemon: VMs private to DIR, shims started by virtq itself'],
  ['qemu+shim:///PATH/NAME.sock', 'one VM\'s shim, by socket'],
  ['shim:///NAME?root=DIR', 'one VM\'s shim, by name (from its state file)'],
  ['storage:///system[?root=DIR]', 'virtstoraged (pool-* and vol-* commands go there by default)'],
  ['secret:///system[?root=DIR]', 'virtsecretd (secret-* commands go there by default)'],
  ['nodedev:///system[?root=DIR]', 'virtnodedevd (nodedev-* commands go there by default)'],
  ['...?mode=ro', 'the read-only socket; ...?socket=PATH another socket'],
];

/** Exit statuses. */
export const EXIT_HELP: ReadonlyArray<readonly [string, string]> = [
  ['0', 'success'],
  ['1', 'the operation failed: "virtq: CODE: message" on stderr'],
  ['2', 'usage error (unknown command or option, missing or bad argument)'],
];

/** The text shown after the root help. */
export function rootHelpText(): string {
  const pad = (rows: ReadonlyArray<readonly [string, string]>): string => {
    const width = Math.max(...rows.map(([k]) => k.length));
    return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
  };
  return `\nConnection URIs:\n${pad(URI_HELP)}\n\nA pool-*, vol-*, secret-* or nodedev-* command goes to its own daemon on the host -c names\n(qemu:///system?root=DIR reaches storage:///system?root=DIR).\n\nExit status:\n${pad(EXIT_HELP)}\n`;
}
