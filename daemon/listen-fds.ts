// Socket activation (sd_listen_fds(3)): the listening sockets a service manager such as systemd
// opened for a daemon and handed to it as file descriptors 3, 4, … with LISTEN_FDS, LISTEN_PID
// and LISTEN_FDNAMES. Each is matched to one of the daemon's socket classes, by its name (rw, ro,
// admin: the socket units' FileDescriptorName=) or else by the path it is bound to. The variables
// are removed from the environment whatever they said, so no child (shim, QEMU, dnsmasq) takes
// them for its own; Node marks inherited descriptors close-on-exec at start-up, so no child
// inherits the sockets either.
import { resolve } from 'node:path';
import { VirtqError, type SocketClass } from '../protocol/index.js';
import { boundUnixPath } from '../drivers/host/unix-sockets.js';

/** The first passed descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** One socket passed to this process. */
export interface PassedSocket {
  readonly fd: number;
  /** Its LISTEN_FDNAMES entry, if names were passed. */
  readonly name: string | undefined;
  /** The path it is bound to, if it is a bound unix socket. */
  readonly path: string | undefined;
}

/** The descriptor serving each socket class that was passed; the others the daemon binds itself. */
export type InheritedSockets = Partial<Record<SocketClass, number>>;

const CLASSES: readonly SocketClass[] = ['rw', 'ro', 'admin'];

/**
 * The sockets passed to process `pid`, as sd_listen_fds_with_names(3) reads them, and removes
 * LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES from `env`. None when LISTEN_PID is absent or names
 * another process (the variables were meant for a parent). INVALID_ARG when they are malformed.
 */
export function takeListenFds(env: NodeJS.ProcessEnv, pid: number, pathOf: (fd: number) => string | undefined = boundUnixPath): PassedSocket[] {
  const fdsVar = env['LISTEN_FDS'];
  const pidVar = env['LISTEN_PID'];
  const namesVar = env['LISTEN_FDNAMES'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDNAMES'];
  if (pidVar === undefined || fdsVar === undefined || Number(pidVar) !== pid) return [];
  const count = Number(fdsVar);
  if (!/^\d+$/.test(fdsVar) || !Number.isSafeInteger(count)) throw new VirtqError('INVALID_ARG', `socket activation: LISTEN_FDS must be a number of descriptors, not "${fdsVar}"`);
  const names = namesVar === undefined ? undefined : namesVar.split(':');
  if (names !== undefined && names.length !== count) {
    throw new VirtqError('INVALID_ARG', `socket activation: LISTEN_FDNAMES names ${names.length} descriptors ("${namesVar}") but LISTEN_FDS says ${count}`);
  }
  return Array.from({ length: count }, (_, i) => {
    const fd = LISTEN_FDS_START + i;
    return { fd, name: names?.[i], path: pathOf(fd) };
  });
}

/**
 * Which passed socket serves which of `daemon`'s sockets: the one named `rw`, `ro` or `admin`,
 * else the one bound to that socket's path. A socket that matches none, two for one class, or a
 * named one bound somewhere else than that class's path, is INVALID_ARG naming them: a unit
 * that passes the wrong socket must not leave clients queued on a socket nobody serves, nor
 * serve one where this daemon's clients do not look.
 */
export function assignListenFds(passed: readonly PassedSocket[], sockets: Readonly<Record<SocketClass, string>>, daemon: string): InheritedSockets {
  const out: InheritedSockets = {};
  for (const p of passed) {
    const named = CLASSES.find((c) => c === p.name);
    const byPath = p.path === undefined ? undefined : CLASSES.find((c) => resolve(sockets[c]) === resolve(p.path as string));
    const which = named ?? byPath;
    if (which === undefined) {
      const expected = CLASSES.map((c) => `${c}: ${sockets[c]}`).join(', ');
      throw new VirtqError('INVALID_ARG', `socket activation: file descriptor ${p.fd}${describe(p)} is none of ${daemon}'s sockets (${expected}); name it rw, ro or admin (FileDescriptorName=) or bind it to one of those paths`);
    }
    if (named !== undefined && p.path !== undefined && resolve(p.path) !== resolve(sockets[named])) {
      throw new VirtqError('INVALID_ARG', `socket activation: file descriptor ${p.fd} is named ${named} but bound to ${p.path}, not to ${daemon}'s ${named} socket ${sockets[named]}; clients of this layout (--root, --system, --session) would not find it: bind it there (ListenStream=)`);
    }
    const earlier = out[which];
    if (earlier !== undefined) throw new VirtqError('INVALID_ARG', `socket activation: file descriptors ${earlier} and ${p.fd} were both passed for ${daemon}'s ${which} socket`);
    out[which] = p.fd;
  }
  return out;
}

function describe(p: PassedSocket): string {
  const parts = [p.name === undefined ? undefined : `named "${p.name}"`, p.path === undefined ? 'bound to no path' : `bound to ${p.path}`].filter((x) => x !== undefined);
  return ` (${parts.join(', ')})`;
}
