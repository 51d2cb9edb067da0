// The uid, gid and pid of the process at the other end of an accepted unix-socket connection,
// without SO_PEERCRED (Node has no getsockopt): the kernel's sock_diag, through `ss -xp`, gives
// the peer socket's inode and the processes holding it; /proc/PID/status gives their effective
// uid and gid. Decision 0029 says what this costs and what it cannot know.
import { execFile } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import type { Socket } from 'node:net';

/** A unix peer's credentials. */
export interface UnixPeerCreds {
  uid: number;
  gid: number;
  pid: number;
}

/** One unix socket as `ss -xpnH` prints it. */
interface SsRow {
  inode: number;
  peer: number;
  pids: number[];
}

// u_str ESTAB 0 0 /run/x.sock 3938408 * 3938407 users:(("node",pid=16894,fd=21))
const ROW = /^\S+\s+\S+\s+\d+\s+\d+\s+.*?\s(\d+)\s+\S+\s+(\d+)(?:\s+users:\((.*)\))?\s*$/;

/** Parses `ss -xpnH` output. */
export function parseSs(text: string): Map<number, SsRow> {
  const rows = new Map<number, SsRow>();
  for (const line of text.split('\n')) {
    const m = ROW.exec(line);
    if (m === null) continue;
    const pids = [...(m[3] ?? '').matchAll(/pid=(\d+)/g)].map((p) => Number(p[1]));
    rows.set(Number(m[1]), { inode: Number(m[1]), peer: Number(m[2]), pids });
  }
  return rows;
}

/** The effective uid and gid in a /proc/PID/status text. */
export function statusIds(text: string): { uid: number; gid: number } | undefined {
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(text);
  return uid === null || gid === null ? undefined : { uid: Number(uid[1]), gid: Number(gid[1]) };
}

/** Runs `ss -xpnH` (every unix socket of this network namespace, with the processes holding it). */
export function runSs(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ss', ['-xpnH'], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err === null ? resolve(stdout) : reject(err)));
  });
}

/**
 * The credentials of `socket`'s peer, or undefined when they cannot be known for certain: the
 * peer is gone, lives in another pid namespace, or its socket is held by processes of different
 * users (an fd passed on or inherited). `ss` is injectable for tests.
 */
export async function unixPeerCreds(socket: Socket, ss: () => Promise<string> = runSs, proc = '/proc'): Promise<UnixPeerCreds | undefined> {
  // libuv's handle keeps the accepted socket's fd; Node exposes no other way to it.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`${proc}/self/fd/${fd}`));
    if (inode === null) return undefined;
    const rows = parseSs(await ss());
    const peer = rows.get(Number(inode[1]))?.peer;
    const pids = peer === undefined ? [] : rows.get(peer)?.pids ?? [];
    if (pids.length === 0) return undefined;
    const ids = await Promise.all(pids.map(async (pid) => statusIds(await readFile(`${proc}/${pid}/status`, 'utf8').catch(() => ''))));
    const first = ids[0];
    if (first === undefined || ids.some((i) => i === undefined || i.uid !== first.uid || i.gid !== first.gid)) return undefined;
    return { ...first, pid: Math.min(...pids) };
  } catch {
    return undefined;
  }
}
