import { writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_TOKEN_LENGTH, WRITE_COOKIE, WriteToken, cookieOf, readWriteToken, sameOrigin, writeRefusal } from '../../../../aggregator/web/write-token.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const TOKEN = 'a-token-long-enough-0123';
const req = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage;
// The cookie a browser got from POST /api/login.
const granted = (t: WriteToken): string => (/^virtq_write=([^;]+);/.exec(t.grantCookie()) ?? [])[1] as string;
const local = { host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080' };

describe('WriteToken', () => {
  let root: TmpRoot | undefined;
  afterEach(() => root?.remove());

  it('lets a request write with the token as a bearer header, from any origin', () => {
    const t = new WriteToken(TOKEN);
    expect(t.refusal(req({ authorization: `Bearer ${TOKEN}` }))).toBeUndefined();
    expect(t.refusal(req({ authorization: `bearer  ${TOKEN} `, origin: 'http://elsewhere' }))).toBeUndefined();
  });

  it('refuses a wrong bearer header even when the cookie is right', () => {
    const t = new WriteToken(TOKEN);
    expect(t.refusal(req({ ...local, authorization: 'Bearer nope', cookie: `${WRITE_COOKIE}=${granted(t)}` }))).toMatch(/Authorization header/);
  });

  it('lets a cookie write only from the server\'s own origin', () => {
    const t = new WriteToken(TOKEN);
    const cookie = `other=1; ${WRITE_COOKIE}=${granted(t)}`;
    expect(t.refusal(req({ ...local, cookie }))).toBeUndefined();
    expect(t.refusal(req({ host: local.host, cookie, origin: 'http://evil.example' }))).toMatch(/another origin \(http:\/\/evil.example\)/);
    expect(t.refusal(req({ host: local.host, cookie }))).toMatch(/another origin \(none given\)/);
    // Shown either way, for telling the page it is unlocked.
    expect(t.shownBy(req({ host: local.host, cookie }))).toBe('cookie');
  });

  it('refuses a missing or forged cookie, and the token itself as a cookie', () => {
    const t = new WriteToken(TOKEN);
    expect(t.refusal(req(local))).toMatch(/read-only/);
    expect(t.refusal(req({ ...local, cookie: `${WRITE_COOKIE}=${'0'.repeat(64)}` }))).toMatch(/read-only/);
    expect(t.refusal(req({ ...local, cookie: `${WRITE_COOKIE}=${TOKEN}` }))).toMatch(/read-only/);
    expect(granted(t)).not.toContain(TOKEN);
  });

  it('refuses every write when no token was configured', () => {
    expect(writeRefusal(undefined, req({ authorization: `Bearer ${TOKEN}` }))).toMatch(/without --http-write-token/);
  });

  it('refuses a short token', () => {
    expect(() => new WriteToken('x'.repeat(MIN_TOKEN_LENGTH - 1))).toThrow(/at least 16 characters/);
    expect(new WriteToken('x'.repeat(MIN_TOKEN_LENGTH)).matches('x'.repeat(MIN_TOKEN_LENGTH))).toBe(true);
  });

  it('reads the token from a file, trimmed, naming the file when it cannot', async () => {
    root = tmpRoot('vqtok-');
    writeFileSync(root.path('token'), `  ${TOKEN}\n`);
    expect((await readWriteToken(root.path('token'))).matches(TOKEN)).toBe(true);
    writeFileSync(root.path('short'), 'abc\n');
    await expect(readWriteToken(root.path('short'))).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining(root.path('short')) });
    await expect(readWriteToken(root.path('missing'))).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringMatching(/missing: ENOENT/) });
  });
});

describe('cookieOf and sameOrigin', () => {
  it('finds one cookie among several', () => {
    expect(cookieOf(req({ cookie: 'a=1; virtq_write=xyz ; b=2' }), 'virtq_write')).toBe('xyz');
    expect(cookieOf(req({ cookie: 'virtq_writer=1' }), 'virtq_write')).toBeUndefined();
    expect(cookieOf(req({}), 'virtq_write')).toBeUndefined();
  });

  it('compares the Origin with the Host the request was sent to', () => {
    expect(sameOrigin(req(local))).toBe(true);
    expect(sameOrigin(req({ host: 'vm-host:8080', origin: 'https://vm-host:8080' }))).toBe(true);
    expect(sameOrigin(req({ host: 'vm-host:8080', origin: 'http://vm-host:8081' }))).toBe(false);
    expect(sameOrigin(req({ origin: 'http://vm-host:8080' }))).toBe(false);
  });
});
