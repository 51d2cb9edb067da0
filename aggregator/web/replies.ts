// How the web view answers: JSON bodies, errors as `{ error: { code, message } }` with the HTTP
// status a VirtqError code maps to, and small JSON request bodies read under a size limit.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { VirtqError, type ErrorCode } from '../../protocol/index.js';

/** Request bodies the web view reads are tiny (a token); anything larger is refused. */
export const MAX_BODY_BYTES = 4096;

const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARG: 400, PERMISSION_DENIED: 403, NO_DOMAIN: 404, OPERATION_INVALID: 409, NAME_IN_USE: 409,
  TOO_MANY_CLIENTS: 503, SHIM_UNAVAILABLE: 503, NO_CONNECT: 503, TIMEOUT: 504,
};

/** The HTTP status for an error code (500 for codes without a closer match). */
export function httpStatus(code: string): number {
  return STATUS[code as ErrorCode] ?? 500;
}

/** Sends `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** Sends an error: its code and message, with the status its code maps to (or `status`). */
export function sendError(res: ServerResponse, err: unknown, status?: number): void {
  const e = VirtqError.from(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status ?? httpStatus(e.code), { error: { code: e.code, message: e.message } });
}

/** Sends 403 with `why`. */
export function sendForbidden(res: ServerResponse, why: string): void {
  sendError(res, new VirtqError('PERMISSION_DENIED', why), 403);
}

/**
 * Reads a JSON object body of at most MAX_BODY_BYTES; INVALID_ARG otherwise. Past the limit the
 * rest is read and dropped, and the connection closes once the refusal is sent.
 */
export function readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', collect);
        req.resume();
        res.setHeader('connection', 'close');
        reject(new VirtqError('INVALID_ARG', `request body over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', collect);
    req.on('error', (err) => reject(new VirtqError('INVALID_ARG', `request body: ${err.message}`)));
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
        resolve(v as Record<string, unknown>);
      } catch (err) {
        reject(new VirtqError('INVALID_ARG', `request body is not a JSON object: ${(err as Error).message}`));
      }
    });
  });
}
