// The one line `virtq proxy` writes on its stdout before it turns into a transparent pipe: either
// "connected" or the typed error it met dialling the local socket. The ssh client waits for it, so a
// connection is known good (or fails with the far side's own error code) before any call is sent.
import { VirtqError, isErrorCode } from '../protocol/index.js';

/** Every banner line starts with this; lines before it (a noisy login shell's output) are skipped. */
export const BANNER_PREFIX = 'virtq-proxy ';

/** The banner saying the proxy is connected: every byte after its newline is the wire protocol. */
export function okBanner(socket: string): string {
  return `${BANNER_PREFIX}${JSON.stringify({ ok: true, socket })}\n`;
}

/** The banner carrying the error that stopped the proxy. */
export function errorBanner(err: VirtqError): string {
  return `${BANNER_PREFIX}${JSON.stringify({ ok: false, code: err.code, message: err.message })}\n`;
}

/** What a banner line says: connected (to `socket`), or the far side's error. */
export type Banner = { ok: true; socket: string } | { ok: false; error: VirtqError };

/** Parses one line (without its newline); undefined when it is not a banner. */
export function parseBanner(line: string): Banner | undefined {
  if (!line.startsWith(BANNER_PREFIX)) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(line.slice(BANNER_PREFIX.length));
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as { ok?: unknown; socket?: unknown; code?: unknown; message?: unknown };
  if (b.ok === true) return { ok: true, socket: typeof b.socket === 'string' ? b.socket : '' };
  if (b.ok !== false) return undefined;
  const code = typeof b.code === 'string' && isErrorCode(b.code) ? b.code : 'NO_CONNECT';
  return { ok: false, error: new VirtqError(code, typeof b.message === 'string' ? b.message : 'the far side\'s proxy failed') };
}
