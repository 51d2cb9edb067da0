// The path a unix socket of this process was bound to, read from /proc (Node has no
// getsockname for unix sockets): the descriptor's socket inode from /proc/self/fd, then that
// inode's line in /proc/net/unix. It is the path as given to bind(2), which is what systemd
// socket units bind; a socket bound elsewhere and linked into place shows its first name.
import { readFileSync, readlinkSync } from 'node:fs';

/** The inode of the socket open as `fd` in this process, or undefined when `fd` is no socket. */
export function socketInode(fd: number): number | undefined {
  let target: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
  const m = /^socket:\[(\d+)\]$/.exec(target);
  return m === null ? undefined : Number(m[1]);
}

/** The bound path of each unix socket inode in a /proc/net/unix table (abstract names start with `@`). */
export function parseProcNetUnix(text: string): Map<number, string> {
  const paths = new Map<number, string>();
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode [Path]: the path may hold spaces.
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const inode = Number(fields[6]);
    if (Number.isInteger(inode)) paths.set(inode, fields.slice(7).join(' '));
  }
  return paths;
}

/** The path the unix socket open as `fd` is bound to, or undefined (no socket, unbound, not unix). */
export function boundUnixPath(fd: number, procNetUnix = (): string => readFileSync('/proc/self/net/unix', 'utf8')): string | undefined {
  const inode = socketInode(fd);
  if (inode === undefined) return undefined;
  try {
    return parseProcNetUnix(procNetUnix()).get(inode);
  } catch {
    return undefined;
  }
}
