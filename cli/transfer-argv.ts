// The command lines the lean entry for volume transfers runs (cli/transfer-main.ts, decision
// 0012): `vol-upload POOL NAME FILE` and `vol-download POOL NAME FILE`, with the global
// `-c/--connect URI` and `--json` before or after, each at most once. Anything else — help, an
// option spelt another way, an argument commander would read as an option — is undefined here,
// and the full CLI runs the command line unchanged.
import { scanArgv, type GlobalsSeen } from './fast-argv.js';

/** The two commands the lean entry runs. */
export const TRANSFER_COMMANDS = ['vol-upload', 'vol-download'] as const;

/** A command line the lean entry runs. */
export interface TransferCommand {
  readonly command: (typeof TRANSFER_COMMANDS)[number];
  readonly connect: string | undefined;
  readonly json: boolean;
  readonly pool: string;
  readonly name: string;
  readonly file: string;
}

const isCommand = (t: string): t is TransferCommand['command'] => (TRANSFER_COMMANDS as readonly string[]).includes(t);

/** The command line as a transfer, or undefined when the full CLI must run it. */
export function parseTransferArgv(argv: readonly string[]): TransferCommand | undefined {
  let command: TransferCommand['command'] | undefined;
  const seen: GlobalsSeen = { connect: undefined, json: false };
  const positional: string[] = [];
  const ok = scanArgv(argv, seen, (t, i) => {
    if (command === undefined) {
      if (!isCommand(t)) return undefined;
      command = t;
    } else if (t !== '' && !t.startsWith('-')) {
      positional.push(t);
    } else {
      return undefined;
    }
    return i + 1;
  });
  if (!ok) return undefined;
  const [pool, name, file] = positional;
  if (command === undefined || positional.length !== 3 || pool === undefined || name === undefined || file === undefined) return undefined;
  return { command, connect: seen.connect, json: seen.json, pool, name, file };
}
