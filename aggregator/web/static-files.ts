// The web page's own files (HTML, CSS, scripts, and the xterm.js copied beside them at build time
// by scripts/build.mjs): served from one directory of the package, nothing from elsewhere. Only
// the files found there when virtqemud started are served, read once and kept in memory (the
// whole set is under 0.5 MiB), with an ETag so a reload costs a 304.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.txt': 'text/plain; charset=utf-8',
};

interface Asset { body: Buffer; type: string; etag: string }

/** The page's files, by URL path. */
export class StaticFiles {
  private constructor(private readonly assets: ReadonlyMap<string, Asset>, readonly dir: string) {}

  /** Loads every file of a known type under `dir`; an absent directory serves nothing. */
  static async load(dir: string): Promise<StaticFiles> {
    const assets = new Map<string, Asset>();
    let names: string[];
    try {
      names = await readdir(dir, { recursive: true });
    } catch {
      return new StaticFiles(assets, dir);
    }
    for (const name of names.sort()) {
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      const body = await readFile(join(dir, name)).catch(() => undefined);
      if (body === undefined) continue;
      const path = `/${relative(dir, join(dir, name)).split(sep).join('/')}`;
      assets.set(path, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
    const index = assets.get('/index.html');
    if (index !== undefined) assets.set('/', index);
    return new StaticFiles(assets, dir);
  }

  /** True when the page itself was found. */
  get present(): boolean {
    return this.assets.has('/');
  }

  /** Serves `path` if it is one of the files; false otherwise. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const a = this.assets.get(path);
    if (a === undefined) return false;
    const headers = {
      'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff',
      // Scripts from this server only (xterm.js adds style elements); the page opens its event stream and console sockets here too.
      'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    res.writeHead(200, { ...headers, 'content-length': a.body.length });
    res.end(req.method === 'HEAD' ? undefined : a.body);
    return true;
  }
}
