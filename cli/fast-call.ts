// One call over a unix socket for the CLI's fast path (decision 0028): connect, write one frame,
// read one reply, on Node's own stream handle (cli/fast-pipe.ts: no node:net). It replaces protocol/client.ts's RpcClient there (pipelining, events, streams,
// deadlines per call: code a single call never runs but the bundle compiled at every start).
// Its outcomes are the ones RpcClient and client/dial.ts give a single call — the same NO_CONNECT
// and PERMISSION_DENIED messages, the server's error, TIMEOUT — and for anything else (the peer
// closing or resetting mid-call, a malformed or oversized frame, CBOR outside protocol/plain-cbor.ts's
// subset) it says "not mine", having printed nothing, and the full CLI runs the command line.
import { getSystemErrorName } from 'node:util';
import { VirtqError } from '../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, sealFrame } from '../protocol/framing.js';
import { decodePlainCbor, encodePlainCbor } from '../protocol/plain-cbor.js';
import { dialPipe } from './fast-pipe.js';

/** A value the fast path sends: the message header and the call's arguments. */
export type FastCborValue = string | boolean | number | { readonly [key: string]: FastCborValue };

/** The call's outcome; undefined from fastCall means the full CLI must run the command. */
export type FastCallOutcome = { readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly error: VirtqError };

/** The serial of the one call (RpcClient's first). */
const SERIAL = 1;

/** The error RpcClient.connect and dialResolved give when `path` cannot be dialled (test/unit/cli/fast-call.test.ts holds them equal). */
export function connectError(err: NodeJS.ErrnoException, path: string, hint: string): VirtqError {
  const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'nothing is listening' : err.code === 'EACCES' ? 'permission denied' : err.message;
  const message = `cannot connect to ${path}: ${why}`;
  if (err.code === 'EACCES') return new VirtqError('PERMISSION_DENIED', message, { details: { socket: path }, cause: err });
  return new VirtqError('NO_CONNECT', `${message} (${hint})`, { details: { socket: path }, cause: err });
}

/** The outcome of a reply frame's payload, or undefined when it is not a plain reply to our call. */
function replyOutcome(payload: Buffer): FastCallOutcome | undefined {
  const m = decodePlainCbor(payload) as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null || Array.isArray(m) || m['type'] !== 'reply' || typeof m['prog'] !== 'string' || typeof m['proc'] !== 'string') return undefined;
  const status = m['status'] ?? 'ok';
  // Serial 0 with an error is a connection-level error (a client cap, say): RpcClient fails the call with it.
  if (status === 'error' && (m['serial'] === SERIAL || m['serial'] === 0)) return { ok: false, error: VirtqError.fromWire(m['body']) };
  if (status === 'ok' && m['serial'] === SERIAL) return { ok: true, body: m['body'] };
  return undefined;
}

/** The error net.Socket gives for a failed connect to `path` (lib/net.js's ExceptionWithHostPort). */
function connectErrno(status: number, path: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  return Object.assign(new Error(`connect ${code} ${path}`), { errno: status, code, syscall: 'connect', address: path });
}

/**
 * Calls `prog`.`proc` with `args` on the server at `path`; `hint` is added to NO_CONNECT as dialResolved does.
 * Once a reply is read the connection is closed and the outcome given; the process then exits.
 */
export function fastCall(path: string, hint: string, prog: string, proc: string, args: FastCborValue, timeoutMs: number): Promise<FastCallOutcome | undefined> {
  const frame = sealFrame(encodePlainCbor({ prog, proc, type: 'call', serial: SERIAL, status: 'ok', body: args }, FRAME_HEADER_BYTES));
  return new Promise((resolve) => {
    let got: Buffer = Buffer.alloc(0);
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    function done(outcome: FastCallOutcome | undefined): void {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      pipe?.close();
      resolve(outcome);
    }
    const pipe = dialPipe(path, frame, {
      refused: (status) => done({ ok: false, error: connectError(connectErrno(status, path), path, hint) }),
      lost: () => done(undefined),
      data: (chunk) => {
        got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
        if (got.length < 4) return;
        const length = got.readUInt32BE(0);
        if (length > DEFAULT_MAX_FRAME_BYTES) return done(undefined);
        if (got.length < 4 + length) return;
        try {
          done(replyOutcome(got.subarray(4, 4 + length)));
        } catch {
          // CBOR outside the subset, or not CBOR at all: the full CLI's to decode and report.
          done(undefined);
        }
      },
    });
    // No usable stream handle in this Node: the full CLI dials with node:net.
    if (pipe === undefined) return done(undefined);
    if (!settled) timer = setTimeout(() => done({ ok: false, error: new VirtqError('TIMEOUT', `${prog}.${proc} did not answer within ${timeoutMs} ms`) }), timeoutMs);
  });
}
