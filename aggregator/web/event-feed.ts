// The web view's live updates (GET /events, Server-Sent Events): one subscription to virtqemud's
// host event stream over its read-only socket, fanned out to every open page. A page gets the
// listing and the sparkline history when it connects, then `lifecycle` events each followed by
// the VM's fresh `row` (or `gone`), and at each metrics refresh the new `samples` and a `listing`
// that catches what no event reports (autostart flags). A page that reads too slowly is dropped;
// when the subscription ends every page is ended, and its EventSource reconnects to a new one.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { VirtqError, type Clock, type Disposable, type LifecycleEvent, type Logger } from '../../protocol/index.js';
import type { HostConnection } from './host-link.js';
import type { SamplePoint, SampleHistory } from './sample-history.js';

/** Open pages past this are refused (503): each holds a socket and a share of every event. */
export const MAX_PAGES = 64;
/** Unsent bytes past which a page is dropped (it reconnects and starts from a fresh listing). */
export const MAX_PAGE_BACKLOG = 1024 * 1024;
/** Comment lines keep idle connections (and proxies between) open. */
const HEARTBEAT_MS = 15_000;

/** Fans virtqemud's events out to pages. */
export class EventFeed {
  private readonly pages = new Set<ServerResponse>();
  private link: Promise<HostConnection> | undefined;
  private heartbeat: Disposable | undefined;
  private closed = false;

  constructor(private readonly dial: () => Promise<HostConnection>, private readonly history: SampleHistory, private readonly clock: Clock, private readonly log: Logger) {}

  /** Number of pages connected. */
  get size(): number {
    return this.pages.size;
  }

  /** Serves GET /events to one page. */
  async attach(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closed || this.pages.size >= MAX_PAGES) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' }).end(`this web view already serves ${this.pages.size} pages\n`);
      return;
    }
    let domains;
    try {
      // Subscribed before listing: an event between the two is not lost, only sent after a listing that has it already.
      const conn = await this.subscribed();
      domains = (await conn.api.listDomains({})).domains;
    } catch (err) {
      const e = VirtqError.from(err);
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`${e.code}: ${e.message}\n`);
      return;
    }
    if (req.destroyed || res.destroyed) return;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 1000\n\n');
    this.pages.add(res);
    res.on('close', () => this.pages.delete(res));
    this.send(res, 'listing', { domains });
    this.send(res, 'history', this.history.snapshot());
    this.beat();
  }

  /** Sends a metrics refresh's points (and the listing) to every page. */
  samples(points: Record<string, SamplePoint>): void {
    if (this.pages.size === 0 || this.link === undefined) return;
    this.broadcast('samples', points);
    void this.link.then((c) => c.api.listDomains({})).then(({ domains }) => this.broadcast('listing', { domains }), () => undefined);
  }

  /** Ends every page and the subscription. */
  close(): void {
    this.closed = true;
    this.heartbeat?.dispose();
    for (const res of this.pages) res.end();
    this.pages.clear();
    void this.link?.then((c) => c.rpc.close(), () => undefined);
  }

  private subscribed(): Promise<HostConnection> {
    this.link ??= (async () => {
      const conn = await this.dial();
      try {
        await conn.api.subscribeEvents({});
      } catch (err) {
        conn.rpc.close();
        throw err;
      }
      void this.pump(conn);
      return conn;
    })();
    const mine = this.link;
    mine.catch(() => { if (this.link === mine) this.link = undefined; });
    return mine;
  }

  // Relays events until the connection ends, then ends every page (each reconnects to a new subscription).
  private async pump(conn: HostConnection): Promise<void> {
    for await (const pushed of conn.rpc.events()) {
      if (pushed.prog !== 'virtq' || pushed.name !== 'lifecycle') continue;
      const ev = pushed.body as LifecycleEvent;
      this.broadcast('lifecycle', ev);
      // The row says what the event does not (shim up, autostart); it is read after the event, so never older.
      conn.api.lookupByName({ name: ev.name }).then(
        (row) => this.broadcast('row', row),
        (err: unknown) => { if (VirtqError.from(err).code === 'NO_DOMAIN') this.broadcast('gone', { name: ev.name }); },
      );
    }
    this.log.debug({}, 'web event subscription ended');
    this.link = undefined;
    for (const res of this.pages) res.end();
    this.pages.clear();
  }

  private broadcast(event: string, data: unknown): void {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.pages) this.write(res, frame);
  }

  private send(res: ServerResponse, event: string, data: unknown): void {
    this.write(res, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(res: ServerResponse, frame: string): void {
    if (res.writableLength > MAX_PAGE_BACKLOG) {
      this.log.warn({ backlog: res.writableLength, msgId: 'WEB_PAGE_DROPPED' }, 'dropping a web page that does not read its events');
      this.pages.delete(res);
      res.destroy();
      return;
    }
    res.write(frame);
  }

  private beat(): void {
    if (this.heartbeat !== undefined) return;
    const tick = (): void => {
      this.heartbeat = undefined;
      if (this.closed || this.pages.size === 0) return;
      for (const res of this.pages) this.write(res, ': ping\n\n');
      this.heartbeat = this.clock.setTimeout(tick, HEARTBEAT_MS);
    };
    this.heartbeat = this.clock.setTimeout(tick, HEARTBEAT_MS);
  }
}
