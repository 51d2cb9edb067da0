import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { StaticFiles } from '../../../../aggregator/web/static-files.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

interface Sent { status: number; headers: Record<string, string | number>; body: Buffer | undefined }

function fakeRes(): { res: ServerResponse; sent: Sent } {
  const sent: Sent = { status: 0, headers: {}, body: undefined };
  const res = {
    writeHead(status: number, headers: Record<string, string | number>) { sent.status = status; sent.headers = headers; return res; },
    end(body?: Buffer) { sent.body = body; return res; },
  };
  return { res: res as unknown as ServerResponse, sent };
}
const get = (headers: Record<string, string> = {}): IncomingMessage => ({ method: 'GET', headers }) as unknown as IncomingMessage;

describe('StaticFiles', () => {
  let root: TmpRoot;
  afterEach(() => root.remove());

  it('serves the files listed at start, the page at /, and a 304 for a known ETag', async () => {
    root = tmpRoot('vqstatic-');
    mkdirSync(root.path('vendor'));
    writeFileSync(root.path('index.html'), '<!doctype html>');
    writeFileSync(root.path('vendor', 'xterm.mjs'), 'export {}');
    writeFileSync(root.path('notes.md'), 'not served');
    const files = StaticFiles.list(root.dir);
    expect(files.present).toBe(true);

    const page = fakeRes();
    expect(files.serve(get(), page.res, '/')).toBe(true);
    expect(page.sent).toMatchObject({ status: 200, headers: { 'content-type': 'text/html; charset=utf-8' } });
    expect(page.sent.body?.toString()).toBe('<!doctype html>');
    expect(String(page.sent.headers['content-security-policy'])).toContain("default-src 'self'");

    const script = fakeRes();
    expect(files.serve(get(), script.res, '/vendor/xterm.mjs')).toBe(true);
    expect(script.sent.headers['content-type']).toBe('text/javascript; charset=utf-8');
    const again = fakeRes();
    files.serve(get({ 'if-none-match': String(script.sent.headers['etag']) }), again.res, '/vendor/xterm.mjs');
    expect(again.sent.status).toBe(304);

    for (const path of ['/notes.md', '/../index.html', '/vendor', '/missing.js']) expect(files.serve(get(), fakeRes().res, path)).toBe(false);
    // A file added after start is not served.
    writeFileSync(root.path('late.js'), '1');
    expect(files.serve(get(), fakeRes().res, '/late.js')).toBe(false);
  });

  it('serves nothing from a directory that does not exist', async () => {
    root = tmpRoot('vqstatic-');
    const files = StaticFiles.list(root.path('absent'));
    expect(files.present).toBe(false);
    expect(files.serve(get(), fakeRes().res, '/')).toBe(false);
  });
});
