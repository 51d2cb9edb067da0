// The fast path's work for one command line (decision 0028): resolve the URI and the socket,
// make the one call (cli/fast-call.ts: one frame each way, no RpcClient, no cbor-x) and print, with
// the full CLI's own functions for each step (URI rules, socket resolution, list and block
// rendering, the error line), so its output is the full CLI's byte for byte. It writes only once it has the whole outcome:
// undefined means "not mine", with nothing printed, and the full CLI runs the command line.
import { resolveDefaultUri } from '../client/default-uri.js';
import { DEFAULT_CALL_TIMEOUT_MS } from '../client/call-timeout.js';
import { daemonSocket } from '../client/resolve.js';
import { parseUri } from '../protocol/uri.js';
import { parseFastArgv } from './fast-argv.js';
import { fastCall, type FastCborValue } from './fast-call.js';
import { listFilter, listRows, renderList } from './list-view.js';
import { EXIT, errorLine, jsonDocument } from './outcome.js';
import { renderGeneric } from './render.js';
import { VERSION } from './version.js';

/** What the fast path needs of its process. */
export interface FastIo {
  readonly env: NodeJS.ProcessEnv;
  readonly uid: number;
  /** Writes stdout's and stderr's text, once, at the end. */
  write(stdout: string, stderr: string): void;
}

/** The wire name of the `virtq` program (contract; the catalogue's virtqProgram.name). */
const VIRTQ_PROGRAM = 'virtq';

/** Runs `argv` when the fast path can, resolving with the exit status; undefined hands it to the full CLI, with nothing written. */
export async function runFast(argv: readonly string[], io: FastIo): Promise<number | undefined> {
  const cmd = parseFastArgv(argv);
  if (cmd === undefined) return undefined;
  if (cmd.kind === 'version') {
    io.write(`${VERSION}\n`, '');
    return EXIT.ok;
  }
  let uri: string;
  let target: ReturnType<typeof parseUri>;
  try {
    // Fleets, embed mode, shims, ssh and TLS, a bad URI or client.json: the full CLI's business.
    if (cmd.connect?.startsWith('cluster:') === true) return undefined;
    uri = cmd.connect ?? resolveDefaultUri({ env: io.env, uid: io.uid });
    target = parseUri(uri, io.env);
  } catch {
    return undefined;
  }
  if (target.kind !== 'daemon' || target.daemon !== 'virtqemud') return undefined;
  const proc = cmd.kind === 'list' ? 'listDomains' : 'getInfo';
  const args = (cmd.kind === 'list' ? listFilter(cmd.opts) : { name: cmd.name }) as Record<string, FastCborValue>;
  const { socket, hint } = daemonSocket(target, 'api');
  const outcome = await fastCall(socket, hint, VIRTQ_PROGRAM, proc, args, DEFAULT_CALL_TIMEOUT_MS);
  if (outcome === undefined) return undefined;
  if (!outcome.ok) {
    io.write('', errorLine(outcome.error));
    return EXIT.failed;
  }
  const shown = cmd.kind === 'list' ? listRows(outcome.body) : outcome.body;
  io.write(cmd.json ? jsonDocument(shown) : cmd.kind === 'list' ? renderList(shown) : renderGeneric(shown), '');
  return EXIT.ok;
}
