// virtqemud's HTTP endpoint for Prometheus: GET /metrics (the whole host), GET
// /metrics/domain/NAME (one VM), GET /sd (Prometheus HTTP service discovery: one target per VM,
// all served by this daemon). Read-only; bind it to loopback or a management network.
import { createServer, type Server } from 'node:http';
import { VirtqError, type Logger } from '../protocol/index.js';
import { parseHttpAddress } from '../daemon/http-address.js';
import type { DaemonMetrics } from './metrics.js';
import type { DomainRegistry } from './registry.js';

/** Starts the HTTP server; resolves with it and the port it listens on. */
export async function serveHttp(addr: string, metrics: DaemonMetrics, domains: DomainRegistry, log: Logger): Promise<{ server: Server; port: number }> {
  const { host, port } = parseHttpAddress(addr);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://virtqemud');
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, 'text/plain', 'only GET\n');
    const domain = /^\/metrics\/domain\/([^/]+)$/.exec(url.pathname)?.[1];
    if (url.pathname === '/metrics' || domain !== undefined) {
      metrics.scrape(domain === undefined ? undefined : decodeURIComponent(domain)).then(
        (text) => send(200, 'text/plain; version=0.0.4; charset=utf-8', text),
        (err: unknown) => {
          const e = VirtqError.from(err);
          send(e.code === 'NO_DOMAIN' ? 404 : 500, 'text/plain', `${e.code}: ${e.message}\n`);
        },
      );
      return;
    }
    if (url.pathname === '/sd') {
      const self = `${req.headers.host ?? `${host}:${port}`}`;
      const targets = [...domains.all()].map((d) => ({
        targets: [self],
        labels: { __metrics_path__: `/metrics/domain/${encodeURIComponent(d.name)}`, domain: d.name, uuid: d.uuid },
      }));
      return send(200, 'application/json', JSON.stringify(targets));
    }
    send(404, 'text/plain', 'try /metrics or /sd\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const actual = typeof bound === 'object' && bound !== null ? bound.port : port;
  log.info({ host, port: actual, msgId: 'HTTP_LISTENING' }, 'serving /metrics and /sd');
  return { server, port: actual };
}
