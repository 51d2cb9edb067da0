// A daemon's HTTP endpoint (`--http HOST:PORT`): GETs answered by a route function; the default
// route serves the daemon's own metrics at /metrics. virtqemud adds the host-wide scrape and
// Prometheus service discovery as routes of its own, and its web view as a handler that sees
// requests first (other methods, streamed answers) and takes WebSocket upgrades.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { VirtqError, type Logger } from '../protocol/index.js';
import { parseHttpAddress } from './http-address.js';

/** One answer. */
export interface HttpAnswer {
  status: number;
  type: string;
  body: string;
}

/** Answers a GET of `path`, or undefined for a path it does not know (404). */
export type HttpRoute = (path: string, host: string) => Promise<HttpAnswer | undefined> | HttpAnswer | undefined;

/** Sees every request before the routes, and the upgrade requests, which the routes never see. */
export interface HttpHandler {
  /** Answers `req` itself and returns true, or returns false to leave it to the routes. */
  request(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
  /** Takes an upgrade request: the socket is the handler's from here on. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void;
}

const TEXT = 'text/plain; version=0.0.4; charset=utf-8';

/** GET /metrics: the registry's exposition. */
export function metricsRoute(registry: Registry): HttpRoute {
  return async (path) => (path === '/metrics' ? { status: 200, type: TEXT, body: await registry.metrics() } : undefined);
}

/** Tries `routes` in order. */
export function firstRoute(...routes: HttpRoute[]): HttpRoute {
  return async (path, host) => {
    for (const r of routes) {
      const answer = await r(path, host);
      if (answer !== undefined) return answer;
    }
    return undefined;
  };
}

/** Starts the HTTP server on `addr`; resolves with it and the port it listens on. */
export async function serveHttp(addr: string, route: HttpRoute, log: Logger, handler?: HttpHandler): Promise<{ server: Server; port: number }> {
  const { host, port } = parseHttpAddress(addr);
  // node:http is loaded here, not at import: a shim bundles this file but serves HTTP only with
  // --metrics, and the module costs every shim ~0.3 MiB of PSS (bench/RESULTS.md, issue 15 target 2).
  const server = process.getBuiltinModule('node:http').createServer((req, res) => {
    if (handler?.request(req, res, new URL(req.url ?? '/', 'http://virtq')) === true) return;
    const send = (a: HttpAnswer): void => {
      res.writeHead(a.status, { 'content-type': a.type, 'content-length': Buffer.byteLength(a.body) });
      res.end(a.body);
    };
    if (req.method !== 'GET') return send({ status: 405, type: 'text/plain', body: 'only GET\n' });
    const url = new URL(req.url ?? '/', 'http://virtq');
    Promise.resolve(route(url.pathname, req.headers.host ?? `${host}:${port}`)).then(
      (a) => send(a ?? { status: 404, type: 'text/plain', body: 'try GET /metrics\n' }),
      (err: unknown) => {
        const e = VirtqError.from(err);
        send({ status: e.code === 'NO_DOMAIN' ? 404 : 500, type: 'text/plain', body: `${e.code}: ${e.message}\n` });
      },
    );
  });
  // Without a handler Node drops upgrade requests (it destroys the socket when nobody listens).
  if (handler !== undefined) server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => handler.upgrade(req, socket, head, new URL(req.url ?? '/', 'http://virtq')));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const actual = typeof bound === 'object' && bound !== null ? bound.port : port;
  log.info({ host, port: actual, msgId: 'HTTP_LISTENING' }, 'serving HTTP');
  return { server, port: actual };
}
