// The shim's own GET /metrics, for operators who scrape VMs directly instead of through
// virtqemud (virtq-shim --metrics HOST:PORT).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { parseHttpAddress } from '../daemon/http-address.js';

/** Serves `registry` at GET /metrics on `addr`. */
export async function serveShimMetrics(addr: string, registry: Registry): Promise<Server> {
  const { host, port } = parseHttpAddress(addr);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
