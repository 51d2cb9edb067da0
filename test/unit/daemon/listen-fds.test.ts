// sd_listen_fds(3) as the daemon framework reads it: the variables are removed whatever they
// said, only a LISTEN_PID naming this process counts, and each passed socket is matched to a
// socket class by name or bound path, with anything else refused by name.
import { describe, expect, it } from 'vitest';
import { assignListenFds, takeListenFds, type PassedSocket } from '../../../daemon/listen-fds.js';

const sockets = { rw: '/run/virtq/virtqemud.sock', ro: '/run/virtq/virtqemud-ro.sock', admin: '/run/virtq/virtqemud-admin.sock' };
const pathOf = (paths: Record<number, string>) => (fd: number): string | undefined => paths[fd];

describe('takeListenFds', () => {
  it('reads the descriptors from 3 with their names and paths, and removes the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '3', LISTEN_PID: '42', LISTEN_FDNAMES: 'rw:ro:admin', KEEP: 'x' };
    expect(takeListenFds(env, 42, pathOf({ 3: sockets.rw, 5: sockets.admin }))).toEqual([
      { fd: 3, name: 'rw', path: sockets.rw }, { fd: 4, name: 'ro', path: undefined }, { fd: 5, name: 'admin', path: sockets.admin },
    ]);
    expect(env).toEqual({ KEEP: 'x' });
  });

  it('takes nothing, but still removes the variables, when LISTEN_PID names another process or is absent', () => {
    const other: NodeJS.ProcessEnv = { LISTEN_FDS: '3', LISTEN_PID: '41', LISTEN_FDNAMES: 'rw:ro:admin' };
    expect(takeListenFds(other, 42, pathOf({}))).toEqual([]);
    expect(other).toEqual({});
    const noPid: NodeJS.ProcessEnv = { LISTEN_FDS: '1' };
    expect(takeListenFds(noPid, 42, pathOf({}))).toEqual([]);
    expect(noPid).toEqual({});
    expect(takeListenFds({}, 42, pathOf({}))).toEqual([]);
  });

  it('leaves names undefined without LISTEN_FDNAMES', () => {
    expect(takeListenFds({ LISTEN_FDS: '1', LISTEN_PID: '7' }, 7, pathOf({ 3: sockets.ro }))).toEqual([{ fd: 3, name: undefined, path: sockets.ro }]);
  });

  it('refuses a malformed LISTEN_FDS and a name count that does not match it', () => {
    expect(() => takeListenFds({ LISTEN_FDS: 'three', LISTEN_PID: '7' }, 7, pathOf({}))).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: 'socket activation: LISTEN_FDS must be a number of descriptors, not "three"' }));
    expect(() => takeListenFds({ LISTEN_FDS: '3', LISTEN_PID: '7', LISTEN_FDNAMES: 'rw:ro' }, 7, pathOf({}))).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: 'socket activation: LISTEN_FDNAMES names 2 descriptors ("rw:ro") but LISTEN_FDS says 3' }));
  });
});

describe('assignListenFds', () => {
  const p = (fd: number, name?: string, path?: string): PassedSocket => ({ fd, name, path });

  it('matches by name first, then by bound path, in any order, leaving the rest to bind', () => {
    expect(assignListenFds([p(3, 'admin'), p(4, 'virtqemud.socket', sockets.rw)], sockets, 'virtqemud')).toEqual({ admin: 3, rw: 4 });
    expect(assignListenFds([p(3, undefined, '/run/virtq/../virtq/virtqemud-ro.sock')], sockets, 'virtqemud')).toEqual({ ro: 3 });
    expect(assignListenFds([], sockets, 'virtqemud')).toEqual({});
  });

  it('refuses a socket that is none of the daemon\'s, naming it and what was expected', () => {
    expect(() => assignListenFds([p(3, 'rw'), p(4, 'web', '/run/other.sock')], sockets, 'virtqemud')).toThrow(expect.objectContaining({
      code: 'INVALID_ARG',
      message: `socket activation: file descriptor 4 (named "web", bound to /run/other.sock) is none of virtqemud's sockets (rw: ${sockets.rw}, ro: ${sockets.ro}, admin: ${sockets.admin}); name it rw, ro or admin (FileDescriptorName=) or bind it to one of those paths`,
    }));
    expect(() => assignListenFds([p(3)], sockets, 'virtqemud')).toThrow(expect.objectContaining({ message: expect.stringContaining('file descriptor 3 (bound to no path) is none of') }));
  });

  it('refuses a named socket bound where the daemon\'s clients do not look (a --root daemon on /run/virtq sockets)', () => {
    expect(() => assignListenFds([p(3, 'rw', sockets.rw)], { rw: '/srv/vq/run/virtqemud.sock', ro: '/srv/vq/run/virtqemud-ro.sock', admin: '/srv/vq/run/virtqemud-admin.sock' }, 'virtqemud')).toThrow(expect.objectContaining({
      code: 'INVALID_ARG',
      message: "socket activation: file descriptor 3 is named rw but bound to /run/virtq/virtqemud.sock, not to virtqemud's rw socket /srv/vq/run/virtqemud.sock; clients of this layout (--root, --system, --session) would not find it: bind it there (ListenStream=)",
    }));
  });

  it('refuses two sockets for one class', () => {
    expect(() => assignListenFds([p(3, 'rw'), p(4, undefined, sockets.rw)], sockets, 'virtqemud')).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: "socket activation: file descriptors 3 and 4 were both passed for virtqemud's rw socket" }));
  });
});
