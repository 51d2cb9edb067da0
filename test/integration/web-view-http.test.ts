// virtqemud's web view over plain HTTP and WebSocket, as a script or a hostile page would use it:
// what is refused without the write token (403) and with a cookie from another origin, what the
// token lets through, the event stream, the console socket, and the limits (body size, pages,
// console message size). The browser itself is test/e2e/web-view.test.ts.
import { randomBytes } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { MAX_PAGES } from '../../aggregator/web/event-feed.js';

const TOKEN = 'integration-token-0123456789';

interface Answer { status: number; headers: IncomingMessage['headers']; body: string }

function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An open GET /events: the events it got so far, and a wait for the next of a kind. */
function openEvents(port: number): Promise<{ res: IncomingMessage; events: Array<{ event: string; data: unknown }>; next(event: string, match?: (d: never) => boolean): Promise<unknown>; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      const events: Array<{ event: string; data: unknown }> = [];
      const waiters: Array<() => void> = [];
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) as unknown });
        }
        for (const w of waiters.splice(0)) w();
      });
      let seen = 0;
      const next = (event: string, match: (d: never) => boolean = () => true) => new Promise<unknown>((done, fail) => {
        const timer = setTimeout(() => fail(new Error(`no ${event} event; got ${JSON.stringify(events.map((e) => e.event))}`)), 5000);
        const look = (): void => {
          for (; seen < events.length; seen++) {
            const e = events[seen] as { event: string; data: unknown };
            if (e.event === event && match(e.data as never)) { seen++; clearTimeout(timer); done(e.data); return; }
          }
          waiters.push(look);
        };
        look();
      });
      resolve({ res, events, next, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves once it is open (`until` 'open') or with how it ended: refused (HTTP status) or closed. */
function websocket(port: number, path: string, headers: Record<string, string>, until: 'open' | 'end' = 'end'): Promise<{ ws: WebSocket; refused?: number; closed?: { code: number; reason: string } }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    ws.on('unexpected-response', (_req, res) => { resolve({ ws, refused: res.statusCode ?? 0 }); res.resume(); ws.terminate(); });
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => resolve({ ws, closed: { code, reason: reason.toString() } }));
    if (until === 'open') ws.on('open', () => resolve({ ws }));
  });
}

/** Sends raw bytes on a new connection; resolves when the server closes it or after 300 ms. */
function sendRaw(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    const done = (): void => { clearTimeout(timer); s.destroy(); resolve(); };
    const timer = setTimeout(done, 300);
    s.on('error', done);
    s.on('close', done);
    s.resume();
  });
}

describe('virtqemud web view over HTTP', () => {
  const h = new DaemonHarness(tmpRoot('vqwebh-'));
  let port: number;
  let daemon: Awaited<ReturnType<DaemonHarness['startDaemon']>>;
  const bearer = { authorization: `Bearer ${TOKEN}` };

  beforeAll(async () => {
    writeFileSync(h.root.path('token'), TOKEN);
    daemon = await h.startDaemon(['--http', '127.0.0.1:0', '--http-write-token', h.root.path('token')]);
    expect(daemon.reply.ok).toBe(true);
    port = daemon.reply.httpPort as number;
  });
  afterAll(async () => { await h.cleanup(); });

  it('survives hostile bytes: junk, upgrades followed by junk frames, lying bodies', async () => {
    const upgrade = (path: string) => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    const attempts: Buffer[] = [];
    for (let i = 0; i < 90; i++) {
      const junk = randomBytes(1 + ((i * 7919) % 3000));
      attempts.push([
        junk,
        Buffer.concat([upgrade('/console/ghost'), junk]),
        Buffer.concat([upgrade(`/console/${'%'.repeat(i % 5)}x`), junk]),
        Buffer.from(`POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n${'{'.repeat(i)}`),
        Buffer.from(`GET /events HTTP/1.1\r\nHost: x\r\n\r\n`),
      ][i % 5] as Buffer);
    }
    for (let i = 0; i < attempts.length; i += 15) await Promise.all(attempts.slice(i, i + 15).map((a) => sendRaw(port, a)));
    expect(daemon.proc.exitCode).toBeNull();
    expect((await call(port, 'GET', '/api/session')).status).toBe(200);
    const { api } = await h.client();
    expect(await api.listDomains({})).toEqual({ domains: [] });
  });

  it('serves the page and its xterm.js from the package, beside /metrics', async () => {
    const page = await call(port, 'GET', '/');
    expect(page).toMatchObject({ status: 200, headers: { 'content-type': 'text/html; charset=utf-8' } });
    expect(page.body).toContain('/app.js');
    expect((await call(port, 'GET', '/console-view.js')).body).toContain("from '/vendor/xterm.mjs'");
    expect((await call(port, 'GET', '/vendor/xterm.mjs')).body).toContain('Terminal');
    expect((await call(port, 'GET', '/metrics')).body).toContain('virtq_daemon_domains');
    expect((await call(port, 'GET', '/nothing-here')).status).toBe(404);
  });

  it('refuses changes without the token and lets the token through to virtqemud', async () => {
    expect(JSON.parse((await call(port, 'GET', '/api/session')).body)).toEqual({ write: false, writesEnabled: true });
    const refused = await call(port, 'POST', '/api/domains/ghost/destroy');
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'PERMISSION_DENIED', message: expect.stringMatching(/read-only/) } });
    expect((await call(port, 'POST', '/api/domains/ghost/destroy', { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(403);
    // Through: virtqemud itself answers that there is no such VM.
    const through = await call(port, 'POST', '/api/domains/ghost/destroy', bearer);
    expect(through.status).toBe(404);
    expect(JSON.parse(through.body)).toMatchObject({ error: { code: 'NO_DOMAIN' } });
    expect((await call(port, 'POST', '/api/domains/ghost/reboot', bearer)).status).toBe(400);
    expect((await call(port, 'POST', `/api/domains/${encodeURIComponent('../bad')}/destroy`, bearer)).status).toBe(400);
  });

  it('grants a cookie for the token, honoured only from the same origin', async () => {
    expect((await call(port, 'POST', '/api/login', { 'content-type': 'application/json' }, JSON.stringify({ token: 'nope' }))).status).toBe(403);
    const login = await call(port, 'POST', '/api/login', {}, JSON.stringify({ token: TOKEN }));
    expect(login.status).toBe(200);
    const cookie = (login.headers['set-cookie']?.[0] ?? '').split(';')[0] as string;
    expect(login.headers['set-cookie']?.[0]).toMatch(/HttpOnly; SameSite=Strict/);
    expect(cookie).not.toContain(TOKEN);
    const host = `127.0.0.1:${port}`;
    expect(JSON.parse((await call(port, 'GET', '/api/session', { cookie })).body)).toMatchObject({ write: true });
    expect((await call(port, 'POST', '/api/domains/ghost/destroy', { cookie, origin: `http://${host}` })).status).toBe(404);
    expect((await call(port, 'POST', '/api/domains/ghost/destroy', { cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await call(port, 'POST', '/api/domains/ghost/destroy', { cookie })).status).toBe(403);
    expect((await websocket(port, '/console/ghost', { cookie, origin: 'http://evil.example' })).refused).toBe(403);
    const logout = await call(port, 'POST', '/api/logout', { cookie });
    expect(logout.headers['set-cookie']?.[0]).toMatch(/Max-Age=0/);
  });

  it('refuses bad requests with the status that says why', async () => {
    expect((await call(port, 'POST', '/api/login', {}, 'x'.repeat(5000))).status).toBe(400);
    expect((await call(port, 'POST', '/api/login', {}, '[1]')).status).toBe(400);
    expect((await call(port, 'GET', '/api/login')).status).toBe(405);
    expect((await call(port, 'GET', '/api/domains/x/destroy')).status).toBe(405);
    expect((await call(port, 'GET', '/api/unknown')).status).toBe(404);
    expect((await websocket(port, '/console/ghost', {})).refused).toBe(403);
    expect((await websocket(port, '/elsewhere', bearer)).refused).toBe(404);
  });

  it('streams the listing, then each event with the fresh row', async () => {
    const page = await openEvents(port);
    try {
      expect(await page.next('listing')).toEqual({ domains: [] });
      const { api } = await h.client();
      await api.define({ definition: { name: 'ev1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } } });
      expect(await page.next('lifecycle')).toMatchObject({ name: 'ev1', event: 'defined', state: 'shutoff' });
      expect(await page.next('row')).toMatchObject({ name: 'ev1', persistent: true, autostart: false, state: 'shutoff' });
      // The JSON listing agrees.
      expect(JSON.parse((await call(port, 'GET', '/api/domains')).body)).toMatchObject({ domains: [{ name: 'ev1' }] });
      await api.undefine({ name: 'ev1' });
      expect(await page.next('lifecycle')).toMatchObject({ name: 'ev1', event: 'undefined' });
      expect(await page.next('gone')).toEqual({ name: 'ev1' });
    } finally {
      page.close();
    }
  });

  it(`serves ${MAX_PAGES} pages at once and refuses one more, then serves again`, async () => {
    const pages = await Promise.all(Array.from({ length: MAX_PAGES }, () => openEvents(port)));
    try {
      await Promise.all(pages.map((p) => p.next('listing')));
      expect((await call(port, 'GET', '/events')).status).toBe(503);
    } finally {
      for (const p of pages) p.close();
    }
    for (let i = 0; i < 100; i++) {
      const again = await openEvents(port);
      const ok = again.res.statusCode === 200;
      again.close();
      if (ok) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the web view never served a page again');
  });

  it('forwards a console to the VM\'s shim and closes it for a VM that is not running', async () => {
    const { api } = await h.client();
    expect((await websocket(port, '/console/ghost', bearer)).closed).toMatchObject({ code: 4404, reason: expect.stringMatching(/^NO_DOMAIN/) });
    await api.define({ definition: { name: 'con1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } } });
    expect((await websocket(port, '/console/con1', bearer)).closed).toMatchObject({ code: 4409, reason: expect.stringMatching(/^OPERATION_INVALID/) });
    await api.start({ name: 'con1' });
    const open = await websocket(port, '/console/con1', bearer, 'open');
    expect(open.refused ?? open.closed).toBeUndefined();
    // A message over the limit closes the socket (1009), the VM runs on.
    const closed = new Promise<number>((resolve) => open.ws.on('close', (code) => resolve(code)));
    open.ws.send(Buffer.alloc(100 * 1024));
    expect(await closed).toBe(1009);
    expect(await api.getState({ name: 'con1' })).toMatchObject({ state: 'running' });
    await api.destroy({ name: 'con1' });
  });
});

describe('virtqemud web view options', () => {
  it('is read-only without a token file, and refuses a short token or a token without --http', async () => {
    const h = new DaemonHarness(tmpRoot('vqwebo-'));
    try {
      const d = await h.startDaemon(['--http', '127.0.0.1:0']);
      const port = d.reply.httpPort as number;
      expect(JSON.parse((await call(port, 'GET', '/api/session')).body)).toEqual({ write: false, writesEnabled: false });
      const login = await call(port, 'POST', '/api/login', {}, JSON.stringify({ token: TOKEN }));
      expect(JSON.parse(login.body)).toMatchObject({ error: { code: 'PERMISSION_DENIED', message: expect.stringMatching(/without --http-write-token/) } });
      d.proc.kill('SIGTERM');
      await d.exited;
      writeFileSync(h.root.path('short'), 'abc');
      const short = await h.startDaemon(['--http', '127.0.0.1:0', '--http-write-token', h.root.path('short')]);
      expect(short.reply).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringMatching(/at least 16 characters/) } });
      const noHttp = await h.startDaemon(['--http-write-token', h.root.path('short')]);
      expect(noHttp.reply).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringMatching(/needs --http/) } });
    } finally {
      await h.cleanup();
    }
  });
});
