// The web page's own files (HTML, CSS, scripts, and the xterm.js copied beside them at build time
// by scripts/build.mjs): served from one directory of the package, nothing from elsewhere. Only
// the files listed there when virtqemud started are served; each is read on its first request and
// kept in memory (the whole set is under 0.5 MiB), with an ETag so a reload costs a 304. A
// virtqemud whose page nobody opens never reads them.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.txt': 'text/plain; charset=utf-8',
};

interface Asset { body: Buffer; type: string; etag: string }

// Scripts from this server only (xterm.js adds style elements); the page opens its event stream and console sockets here too.
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/** The page's files, by URL path. */
export class StaticFiles {
  private readonly loaded = new Map<string, Asset>();

  /** `files`: URL path -> file. */
  private constructor(private readonly files: ReadonlyMap<string, string>, readonly dir: string) {}

  /** Lists the files of a known type under `dir`; an absent directory serves nothing. */
  static list(dir: string): StaticFiles {
    const files = new Map<string, string>();
    let names: string[];
    try {
      names = readdirSync(dir, { recursive: true, encoding: 'utf8' });
    } catch {
      return new StaticFiles(files, dir);
    }
    for (const name of names.sort()) {
      if (TYPES[extname(name)] !== undefined) files.set(`/${name.split(sep).join('/')}`, join(dir, name));
    }
    const index = files.get('/index.html');
    if (index !== undefined) files.set('/', index);
    return new StaticFiles(files, dir);
  }

  /** True when the page itself was found. */
  get present(): boolean {
    return this.files.has('/');
  }

  /** Serves `path` if it is one of the files (and still readable); false otherwise. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const a = this.asset(path);
    if (a === undefined) return false;
    const headers = { 'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'content-security-policy': CSP };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    res.writeHead(200, { ...headers, 'content-length': a.body.length });
    res.end(req.method === 'HEAD' ? undefined : a.body);
    return true;
  }

  private asset(path: string): Asset | undefined {
    const known = this.loaded.get(path);
    if (known !== undefined) return known;
    const file = this.files.get(path);
    if (file === undefined) return undefined;
    try {
      // Small files, read once: synchronously, so a page's first load does not queue on libuv's threads.
      const body = readFileSync(file);
      const asset = { body, type: TYPES[extname(file)] as string, etag: `"${body.length.toString(36)}-${Math.trunc(statSync(file).mtimeMs).toString(36)}"` };
      this.loaded.set(path, asset);
      return asset;
    } catch {
      return undefined;
    }
  }
}
