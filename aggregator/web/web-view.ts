// virtqemud's web host view, served on its --http address beside /metrics: the page and its files
// (GET /), live updates (GET /events), the JSON API (/api/*) and the browser consoles (WebSocket
// /console/NAME). Everyone who reaches the address may look; changing anything (the buttons, the
// console) takes the operator's write token. Paths it does not know go on to the metrics routes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Clock, Logger } from '../../protocol/index.js';
import type { HttpHandler } from '../../daemon/http-server.js';
import type { DaemonMetrics } from '../metrics.js';
import { apiRoutes, decodePathPart } from './api-routes.js';
import { ConsoleSockets, refuseUpgrade } from './console-sockets.js';
import { EventFeed } from './event-feed.js';
import { HostLink } from './host-link.js';
import { SampleHistory } from './sample-history.js';
import { StaticFiles } from './static-files.js';
import { writeRefusal, type WriteToken } from './write-token.js';

/** What the web view is built from. */
export interface WebViewConfig {
  /** The page's files (dist/web beside the bundled binary). */
  assetsDir: string;
  /** The operator's write token; undefined: the view is read-only. */
  token: WriteToken | undefined;
  /** virtqemud's own read-write and read-only sockets. */
  sockets: { readonly rw: string; readonly ro: string };
  /** Its metrics: each background refresh adds a point to the sparklines. */
  metrics: DaemonMetrics;
  clock: Clock;
  log: Logger;
}

/** The web view, as an HTTP handler of the daemon framework. */
export class WebView implements HttpHandler {
  private readonly link: HostLink;
  private readonly feed: EventFeed;
  private readonly consoles: ConsoleSockets;
  private readonly api: ReturnType<typeof apiRoutes>;

  private constructor(private readonly cfg: WebViewConfig, private readonly files: StaticFiles) {
    this.link = new HostLink(cfg.sockets, cfg.clock);
    const history = new SampleHistory();
    this.feed = new EventFeed(() => this.link.dialReader(), history, cfg.clock, cfg.log);
    this.consoles = new ConsoleSockets(() => this.link.writer(), cfg.log);
    this.api = apiRoutes({ link: this.link, token: cfg.token, log: cfg.log });
    cfg.metrics.onRefreshed((at, samples) => this.feed.samples(history.add(at, samples)));
  }

  /** Lists the page's files and builds the view. */
  static create(cfg: WebViewConfig): WebView {
    const files = StaticFiles.list(cfg.assetsDir);
    if (!files.present) cfg.log.warn({ dir: cfg.assetsDir, msgId: 'WEB_FILES_MISSING' }, 'the web view\'s files are missing: GET / will say so');
    return new WebView(cfg, files);
  }

  /** Pages and consoles open now. */
  get clients(): { pages: number; consoles: number } {
    return { pages: this.feed.size, consoles: this.consoles.size };
  }

  request(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/events') {
      if (method !== 'GET') return false;
      void this.feed.attach(req, res);
      return true;
    }
    if (this.api(req, res, path)) return true;
    if ((method === 'GET' || method === 'HEAD') && this.files.serve(req, res, path)) return true;
    if (path === '/' && method === 'GET') {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end(`the web view's files are missing from ${this.files.dir} (rebuild virtq: npm run build)\n`);
      return true;
    }
    return false;
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    socket.on('error', () => socket.destroy());
    const raw = /^\/console\/([^/]+)$/.exec(url.pathname)?.[1];
    if (raw === undefined) return refuseUpgrade(socket, 404, 'WebSockets are served at /console/NAME only');
    const why = writeRefusal(this.cfg.token, req);
    if (why !== undefined) {
      this.cfg.log.warn({ path: url.pathname, remote: req.socket.remoteAddress, msgId: 'WEB_WRITE_REFUSED' }, why);
      return refuseUpgrade(socket, 403, why);
    }
    let name: string;
    try {
      name = decodePathPart(raw);
    } catch (err) {
      return refuseUpgrade(socket, 400, (err as Error).message);
    }
    this.consoles.upgrade(req, socket, head, name);
  }

  /** Ends every page and console and closes the view's connections to virtqemud. */
  close(): void {
    this.feed.close();
    this.consoles.close();
    this.link.close();
  }
}
