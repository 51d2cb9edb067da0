// The web view's JSON API: who may write (GET /api/session), unlocking and locking writes
// (POST /api/login with the token, POST /api/logout), the listing (GET /api/domains), and the
// lifecycle buttons (POST /api/domains/NAME/ACTION). Reads go through virtqemud's read-only
// socket; an action goes through its read-write socket, and only for a request that may write.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { VirtqError, type Logger, type TypedClient, type VirtqProgram } from '../../protocol/index.js';
import type { HostLink } from './host-link.js';
import { readJsonBody, sendError, sendForbidden, sendJson } from './replies.js';
import { revokeCookie, writeRefusal, type WriteToken } from './write-token.js';

/** The buttons of the page, each one procedure of the `virtq` program. */
export const WEB_ACTIONS = {
  start: (api, name) => api.start({ name }),
  shutdown: (api, name) => api.shutdown({ name }),
  destroy: (api, name) => api.destroy({ name }),
  suspend: (api, name) => api.suspend({ name }),
  resume: (api, name) => api.resume({ name }),
} as const satisfies Record<string, (api: TypedClient<VirtqProgram>, name: string) => Promise<unknown>>;

/** A button's name. */
export type WebAction = keyof typeof WEB_ACTIONS;

const isAction = (s: string): s is WebAction => Object.hasOwn(WEB_ACTIONS, s);

/** What the API works with. */
export interface ApiDeps {
  link: HostLink;
  token: WriteToken | undefined;
  log: Logger;
}

/** Answers /api/* requests; false for other paths. */
export function apiRoutes(d: ApiDeps): (req: IncomingMessage, res: ServerResponse, path: string) => boolean {
  const run = (res: ServerResponse, work: () => Promise<void>): true => {
    work().catch((err: unknown) => sendError(res, err));
    return true;
  };
  return (req, res, path) => {
    if (!path.startsWith('/api/')) return false;
    const method = req.method ?? 'GET';
    const action = /^\/api\/domains\/([^/]+)\/([a-z]+)$/.exec(path);
    if (action !== null) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      const [, rawName = '', verb = ''] = action;
      return run(res, () => act(d, req, res, decodePathPart(rawName), verb));
    }
    switch (path) {
      case '/api/session':
        if (method !== 'GET') return methodNotAllowed(res, 'GET');
        sendJson(res, 200, { write: d.token?.shownBy(req) === 'header' || d.token?.shownBy(req) === 'cookie', writesEnabled: d.token !== undefined });
        return true;
      case '/api/domains':
        if (method !== 'GET') return methodNotAllowed(res, 'GET');
        return run(res, async () => sendJson(res, 200, await (await d.link.reader()).api.listDomains({})));
      case '/api/login':
        if (method !== 'POST') return methodNotAllowed(res, 'POST');
        return run(res, () => login(d, req, res));
      case '/api/logout':
        if (method !== 'POST') return methodNotAllowed(res, 'POST');
        sendJson(res, 200, { write: false }, { 'set-cookie': revokeCookie() });
        return true;
      default:
        sendError(res, new VirtqError('INVALID_ARG', `no such API path: ${path}`), 404);
        return true;
    }
  };
}

async function login(d: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJsonBody(req, res);
  if (d.token === undefined) return sendForbidden(res, 'writes are off: virtqemud was started without --http-write-token');
  if (typeof body['token'] !== 'string' || !d.token.matches(body['token'])) {
    d.log.warn({ remote: req.socket.remoteAddress, msgId: 'WEB_LOGIN_REFUSED' }, 'web view: wrong write token');
    return sendForbidden(res, 'that is not the write token');
  }
  d.log.info({ remote: req.socket.remoteAddress, msgId: 'WEB_LOGIN' }, 'web view: writes unlocked');
  sendJson(res, 200, { write: true }, { 'set-cookie': d.token.grantCookie() });
}

async function act(d: ApiDeps, req: IncomingMessage, res: ServerResponse, name: string, verb: string): Promise<void> {
  if (!isAction(verb)) throw new VirtqError('INVALID_ARG', `no such action "${verb}" (one of ${Object.keys(WEB_ACTIONS).join(', ')})`);
  const why = writeRefusal(d.token, req);
  if (why !== undefined) {
    d.log.warn({ name, action: verb, remote: req.socket.remoteAddress, msgId: 'WEB_WRITE_REFUSED' }, why);
    return sendForbidden(res, why);
  }
  const api = (await d.link.writer()).api;
  try {
    const result = await WEB_ACTIONS[verb](api, name);
    d.log.info({ name, action: verb, remote: req.socket.remoteAddress, msgId: 'WEB_ACTION' }, 'web view action');
    sendJson(res, 200, result);
  } catch (err) {
    d.log.info({ name, action: verb, code: VirtqError.from(err).code, msgId: 'WEB_ACTION_FAILED' }, 'web view action failed');
    throw err;
  }
}

/** A percent-encoded path segment; INVALID_ARG (400) when it is malformed. */
export function decodePathPart(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new VirtqError('INVALID_ARG', `malformed VM name in the path: ${raw.slice(0, 80)}`);
  }
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  res.writeHead(405, { allow, 'content-type': 'text/plain' }).end(`use ${allow}\n`);
  return true;
}
