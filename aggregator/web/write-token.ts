// The web view's permission to change things: a token the operator keeps in a file
// (`--http-write-token FILE`). Scripts send it as `Authorization: Bearer TOKEN`; a browser shows
// it once (POST /api/login) and then carries a cookie derived from it. The cookie counts only on
// requests whose Origin is this server's own, so no other site can ride on it (CSRF, cross-site
// WebSockets). Without a token file the web view is read-only for everyone.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { VirtqError } from '../../protocol/index.js';

/** The cookie a browser carries once it has shown the token. */
export const WRITE_COOKIE = 'virtq_write';

/** Tokens shorter than this are refused at start: the web view may face a network. */
export const MIN_TOKEN_LENGTH = 16;

/** Why a request may not write, or undefined when it may. */
export type WriteRefusal = string | undefined;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The operator's write token. */
export class WriteToken {
  private readonly tokenDigest: Buffer;
  /** The cookie's value: derived from the token, so the browser never stores the token itself. */
  private readonly cookieValue: string;

  constructor(token: string) {
    if (token.length < MIN_TOKEN_LENGTH) throw new VirtqError('INVALID_ARG', `the web write token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 16)`);
    this.tokenDigest = digest(token);
    this.cookieValue = digest(`virtq-web-cookie\0${token}`).toString('hex');
  }

  /** True when `candidate` is the token (compared in constant time). */
  matches(candidate: string): boolean {
    return timingSafeEqual(digest(candidate), this.tokenDigest);
  }

  /** The Set-Cookie header that lets this browser write. */
  grantCookie(): string {
    return `${WRITE_COOKIE}=${this.cookieValue}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** Why `req` may not write, or undefined when it may: the token shown, and a cookie only from this server's own pages. */
  refusal(req: IncomingMessage): WriteRefusal {
    const shown = this.shownBy(req);
    if (shown === 'wrong-header') return 'the Authorization header does not carry the write token';
    if (shown === undefined) return 'this page is read-only: unlock it with the write token';
    if (shown === 'cookie' && !sameOrigin(req)) return `a request from another origin (${req.headers.origin ?? 'none given'}) may not use this page's write cookie`;
    return undefined;
  }

  /**
   * How `req` shows the token, whatever its origin: for telling a page whether it is unlocked
   * (a same-origin GET carries no Origin header), never for letting it change anything.
   */
  shownBy(req: IncomingMessage): 'header' | 'cookie' | 'wrong-header' | undefined {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
      return bearer !== undefined && this.matches(bearer) ? 'header' : 'wrong-header';
    }
    const cookie = cookieOf(req, WRITE_COOKIE);
    return cookie !== undefined && timingSafeEqual(digest(cookie), digest(this.cookieValue)) ? 'cookie' : undefined;
  }
}

/** The Set-Cookie header that takes the write permission back. */
export function revokeCookie(): string {
  return `${WRITE_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
}

/** Why `req` may not write under `token` (none: the view is read-only), or undefined when it may. */
export function writeRefusal(token: WriteToken | undefined, req: IncomingMessage): WriteRefusal {
  if (token === undefined) return 'writes are off: virtqemud was started without --http-write-token';
  return token.refusal(req);
}

/** Reads the token from `file` (surrounding whitespace dropped); INVALID_ARG naming the file when it cannot. */
export async function readWriteToken(file: string): Promise<WriteToken> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `cannot read --http-write-token ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    return new WriteToken(text.trim());
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `--http-write-token ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** A cookie's value from the request, if it sent one. */
export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** True when the request's Origin is the server it was sent to (browsers send Origin on POSTs and WebSockets). */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  const host = req.headers.host;
  return origin !== undefined && host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}
